//! The config's JSON Schema (`tollgate schema`, committed as
//! `config/tollgate.schema.json`): the committed file is the command's
//! output, it is a valid draft-07 schema, every example config passes it
//! with PyPI `check-jsonschema` (the validator `tests/setup.sh` installs), a
//! misspelt field fails it, durations and sizes are described exactly as the
//! parser reads them, and the examples carry the editor modeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tollgate::config::duration::{parse_duration, parse_size};
use tollgate::config::file::ConfigFile;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
const SCHEMA: &str = "config/tollgate.schema.json";
const MODELINE: &str = "# yaml-language-server: $schema=./tollgate.schema.json";

fn check_jsonschema() -> PathBuf {
    let path = common::repo().join(".venv/bin/check-jsonschema");
    assert!(path.is_file(), "{} is missing: run `make test` (tests/setup.sh installs it)", path.display());
    path
}

/// Runs check-jsonschema on `files`; its JSON report.
fn validate(files: &[PathBuf]) -> (i32, serde_json::Value) {
    let out = Command::new(check_jsonschema())
        .arg("--schemafile")
        .arg(common::repo().join(SCHEMA))
        .args(["-o", "json"])
        .args(files)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check-jsonschema said: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// The example configs: every YAML file in config/.
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::repo().join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "config/ examples: {files:?}");
    files
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    common::write_file(dir, name, text.as_bytes())
}

#[test]
fn committed_schema_is_the_output_of_tollgate_schema() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(common::repo().join(SCHEMA)).unwrap();
    assert!(printed == committed, "{SCHEMA} is out of date: run `cargo run -- schema > {SCHEMA}` and commit it");
    // It is itself a valid draft-07 schema.
    let out =
        Command::new(check_jsonschema()).arg("--check-metaschema").arg(common::repo().join(SCHEMA)).output().unwrap();
    assert!(out.status.success(), "metaschema: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn every_example_config_passes_the_schema() {
    let (code, report) = validate(&examples());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["status"], "ok", "{report:#}");
}

/// A misspelt field anywhere (top level, in a route, in a key, in a nested
/// section) fails the schema, naming the field, as `tollgate check` fails.
#[test]
fn a_misspelt_field_fails_the_schema() {
    let reference = std::fs::read_to_string(common::repo().join("config/tollgate.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let typos = [
        ("trust_forwarded_headers:", "trust_forwarded_header:", "trust_forwarded_header"),
        ("    prefix: /media/", "    prefx: /media/", "prefx"),
        ("hmac: { secret_env: TOLLGATE_MEDIA_KEY }", "hmac: { secret_enf: TOLLGATE_MEDIA_KEY }", "secret_enf"),
        ("  negative_ttl:", "  negative_tll:", "negative_tll"),
    ];
    let mut files = Vec::new();
    for (i, (right, wrong, _)) in typos.iter().enumerate() {
        assert_eq!(reference.matches(right).count(), 1, "config/tollgate.yaml should contain {right:?} once");
        files.push(write(dir.path(), &format!("typo{i}.yaml"), &reference.replacen(right, wrong, 1)));
    }
    let (code, report) = validate(&files);
    assert_eq!(code, 1, "{report:#}");
    let errors = report["errors"].as_array().unwrap();
    for (file, (_, _, field)) in files.iter().zip(typos) {
        // The error (or, under an `anyOf`, its deepest match) names the field.
        let found: String =
            errors.iter().filter(|e| e["filename"] == file.to_str().unwrap()).map(|e| e.to_string()).collect();
        assert!(found.contains(&format!("'{field}' was unexpected")), "{field}: {report:#}");
    }
    // tollgate itself refuses the same file (the schema is not stricter or
    // looser than the parser on this).
    let out = Command::new(BIN).arg("check").arg("--config").arg(&files[1]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prefx"));
}

/// Durations and sizes are strings in the YAML; the schema's patterns accept
/// exactly what tollgate's parsers accept, on both sides of each rule.
#[test]
fn durations_and_sizes_in_the_schema_agree_with_the_parser() {
    let durations = [
        "500ms",
        "30s",
        "15m",
        "2h",
        "1d",
        "1h30m",
        "0s",
        " 15m",
        "999999999999s", // accepted
        "15",
        "",
        "m",
        "15x",
        "1.5h",
        "-1s",
        "1h 30m",
        "15 m",
        "1H",
        "9999999999999d",
        "PT15M", // refused
    ];
    let sizes = [
        "1048576",
        "64KiB",
        "10MiB",
        "1GiB",
        "5MB",
        "5kB",
        "512B",
        "10 MiB", // accepted
        "",
        "MiB",
        "10 parsecs",
        "1.5MiB",
        "-1",
        "10mib",
        "0x10", // refused
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for (i, d) in durations.iter().enumerate() {
        let file = write(dir.path(), &format!("d{i}.yaml"), &format!("cache: {{ ttl: {d:?} }}\n"));
        cases.push((file, format!("duration {d:?}"), parse_duration(d).is_ok()));
    }
    for (i, s) in sizes.iter().enumerate() {
        let file = write(dir.path(), &format!("s{i}.yaml"), &format!("limits: {{ max_body: {s:?} }}\n"));
        cases.push((file, format!("size {s:?}"), parse_size(s).is_ok()));
    }
    // Integers: a size may be one, a duration never (ambiguous unit).
    let file = write(dir.path(), "int-size.yaml", "limits: { max_body: 1048576 }\n");
    cases.push((file, "size 1048576 as an integer".into(), true));
    let file = write(dir.path(), "int-duration.yaml", "cache: { ttl: 900 }\n");
    cases.push((file, "duration 900 as an integer".into(), false));
    assert!(cases.iter().any(|c| c.2) && cases.iter().any(|c| !c.2));

    let files: Vec<PathBuf> = cases.iter().map(|c| c.0.clone()).collect();
    let (_, report) = validate(&files);
    let failed: Vec<&str> =
        report["errors"].as_array().unwrap().iter().filter_map(|e| e["filename"].as_str()).collect();
    for (file, what, parser_accepts) in &cases {
        let schema_accepts = !failed.contains(&file.to_str().unwrap());
        assert_eq!(schema_accepts, *parser_accepts, "{what}: schema and parser disagree\n{report:#}");
    }
    // What the parser accepts is what tollgate's config reader accepts: the
    // same files read into the raw config structs.
    for (file, what, accepted) in &cases {
        let text = std::fs::read_to_string(file).unwrap();
        let read = serde_yaml_ng::from_str::<ConfigFile>(&text);
        assert_eq!(read.is_ok(), *accepted, "{what}: {:?}", read.err());
    }
}

/// Editors find the schema through the modeline on the first line of every
/// example, and the path it names exists.
#[test]
fn example_configs_carry_the_schema_modeline() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().next(), Some(MODELINE), "{}", file.display());
        let target = MODELINE.split("$schema=").nth(1).unwrap();
        assert!(file.parent().unwrap().join(target).is_file(), "{}: {target} does not exist", file.display());
    }
}
