//! The real signers of the CDN formats, run as the test suite's helpers:
//! botocore and akamai-edgeauth (PyPI) through `tests/py/cdn_sign.py`,
//! `@aws-sdk/cloudfront-signer` and `akamai-edgeauth` (npm) through
//! `tests/js/cdn.js`. Keys are generated at test time.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo;

/// The test venv's Python.
pub fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    assert!(venv.is_file(), "{} is missing: run `make test` (it creates the venv)", venv.display());
    venv
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run signer");
    assert!(out.status.success(), "signer failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Writes rsa/ec/ed private and public PEMs into `dir` (PyPI cryptography).
pub fn write_keys(dir: &Path) {
    run(Command::new(python()).arg(repo().join("tests/py/mint.py")).arg("keys").arg(dir));
}

/// `tests/py/cdn_sign.py <args>`.
pub fn py(args: &[&str]) -> String {
    run(Command::new(python()).arg(repo().join("tests/py/cdn_sign.py")).args(args))
}

/// `tests/js/cdn.js <command> <json>`.
pub fn node(command: &str, input: &serde_json::Value) -> String {
    let js = repo().join("tests/js");
    for package in ["@aws-sdk/cloudfront-signer", "akamai-edgeauth"] {
        assert!(js.join("node_modules").join(package).is_dir(), "npm {package} is missing: run `make test`");
    }
    let node = super::require("node", &["/usr/bin/node"]);
    run(Command::new(node).arg(js.join("cdn.js")).arg(command).arg(input.to_string()))
}

/// The path and query of a full URL (what a client sends on the wire).
pub fn target(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}
