//! Configuring the CDN formats: the README's migration example compiles
//! with its key files, mistakes are reported at their YAML path, and
//! `tollgate sign --format` works from the command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use prometheus::Registry;
use tollgate::metrics::Metrics;

fn compile(yaml: &str, dir: &Path) -> Result<tollgate::config::Config, Vec<String>> {
    let metrics = Metrics::new(Registry::new()).unwrap();
    tollgate::config::compile_str(yaml, dir, &metrics).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

/// The errors of a config that must not compile.
fn refused(yaml: &str, dir: &Path) -> Vec<String> {
    match compile(yaml, dir) {
        Ok(_) => panic!("the config compiled:\n{yaml}"),
        Err(errors) => errors,
    }
}

/// The README block tagged `cdn-migration`.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let mut lines = readme.lines().skip_while(|l| *l != "```yaml cdn-migration");
    assert!(lines.next().is_some(), "README has no cdn-migration example");
    lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n")
}

#[test]
fn readme_migration_example_compiles_with_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    common::signers::write_keys(&keys);
    std::fs::rename(keys.join("rsa.pub.pem"), keys.join("cloudfront-k1.pub.pem")).unwrap();
    common::write_file(&keys, "akamai.hex", &common::random_secret());
    common::write_file(&keys, "akamai-salt.txt", b"salt\n");
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    common::write_file(&keys, "gcdn.key", base64::engine::general_purpose::URL_SAFE.encode(raw).as_bytes());
    common::write_file(&keys, "secure-link.txt", &common::random_secret());
    let config = compile(&readme_example(), dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(config.routes.len(), 4);
    // Without the key files every key is an error at its path.
    let empty = tempfile::tempdir().unwrap();
    let errors = refused(&readme_example(), empty.path());
    for key in ["cf-k1", "akamai", "gcdn", "nginx-secret"] {
        assert!(errors.iter().any(|e| e.starts_with(&format!("keys.{key}."))), "{key}: {errors:#?}");
    }
}

#[test]
fn mistakes_are_reported_at_their_yaml_path() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "h.key", &common::random_secret());
    common::write_file(dir.path(), "not-hex.txt", b"xyz");
    common::write_file(dir.path(), "long.key", base64::engine::general_purpose::URL_SAFE.encode([1u8; 20]).as_bytes());
    common::write_file(dir.path(), "s.txt", b"secret");
    let yaml = r#"
keys:
  h: { hmac: { secret_file: h.key } }
  bad-hex: { edgeauth: { secret_file: not-hex.txt } }
  long: { cloud_cdn: { secret_file: long.key } }
  s: { secure_link: { secret_file: s.txt } }
upstreams:
  u: { url: "http://127.0.0.1:1" }
routes:
  - name: cf
    prefix: /cf/
    upstream: u
    auth:
      cloudfront: { keys: [h], origins: ["https://Media.example.com/"], from: [header] }
  - name: sl
    prefix: /sl/
    upstream: u
    auth:
      secure_link: { keys: [s], md5: "$uri $secret_word", hash_param: "a b" }
  - name: both
    prefix: /both/
    upstream: u
    auth:
      cloudfront: { keys: [], origins: ["https://a.example"] }
      cloud_cdn: { keys: [s], origins: [] }
  - name: sl2
    prefix: /sl2/
    upstream: u
    auth:
      secure_link: { keys: [s], md5: "$uri" }
      edgeauth: { keys: [h], token_name: "a;b" }
"#;
    let errors = refused(yaml, dir.path());
    let expect = [
        "keys.bad-hex.edgeauth.encoding: the secret is not valid in this encoding",
        "keys.long.cloud_cdn: a Cloud CDN key is 16 bytes; this one is 20",
        "routes[0].auth.cloudfront.keys[0]: key \"h\" is not a public_key_file key",
        "routes[0].auth.cloudfront.origins[0]: \"https://Media.example.com/\" is not an origin",
        "routes[0].auth.cloudfront.from[0]: this format is carried in the query or a cookie",
        "routes[1].auth.secure_link.md5: $secret_word is not supported",
        "routes[1].auth.secure_link.hash_param: must be a plain name",
        "routes[2].auth.cloudfront.keys: list at least one public_key_file key",
        "routes[2].auth.cloud_cdn.keys[0]: key \"s\" is not a cloud_cdn key",
        "routes[2].auth.cloud_cdn.origins: list at least one origin",
        "routes[3].auth.secure_link.md5: the expression must contain $secret",
        "routes[3].auth.secure_link.md5: the expression must contain $secure_link_expires",
        "routes[3].auth.edgeauth.keys[0]: key \"h\" is not an edgeauth key",
        "routes[3].auth.edgeauth.token_name: must be a plain name",
    ];
    for want in expect {
        assert!(errors.iter().any(|e| e.starts_with(want)), "missing {want:?} in {errors:#?}");
    }
    // Two kinds reading one parameter cannot share a route.
    let shared = r#"
keys:
  g: { cloud_cdn: { secret_file: g.key } }
upstreams:
  u: { url: "http://127.0.0.1:1" }
routes:
  - name: both
    prefix: /both/
    upstream: u
    auth:
      cloud_cdn: { keys: [g], origins: ["https://a.example"] }
      secure_link: { keys: [g], md5: "$secure_link_expires $secret", hash_param: Signature }
"#;
    common::write_file(dir.path(), "g.key", base64::engine::general_purpose::URL_SAFE.encode([2u8; 16]).as_bytes());
    let errors = refused(shared, dir.path());
    assert!(
        errors
            .iter()
            .any(|e| e
                .starts_with("routes[0].auth: cloud_cdn and secure_link both read the query parameter \"Signature\"")),
        "{errors:#?}"
    );
}

#[test]
fn sign_command_writes_each_format() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "secret.txt", b"secret");
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let run = |args: &[&str]| {
        let out = Command::new(bin).args(args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    };
    // nginx's documentation example: expires 2147483647, /s/link, 127.0.0.1, "secret".
    let link = run(&[
        "sign",
        "--format",
        "secure_link",
        "--key-file",
        "secret.txt",
        "--md5",
        "$secure_link_expires$uri$remote_addr $secret",
        "--remote-addr",
        "127.0.0.1",
        "--exp",
        "2147483647",
        "/s/link",
    ]);
    assert_eq!(link, "/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647");

    common::write_file(dir.path(), "akamai.hex", b"0123456789abcdef0123456789abcdef\n");
    let token = run(&[
        "sign",
        "--format",
        "edgeauth",
        "--key-file",
        "akamai.hex",
        "--acl",
        "/dl/*",
        "--exp",
        "2000000000",
        "/dl/a.zip",
    ]);
    assert!(token.starts_with("/dl/a.zip?__token__=exp=2000000000~acl=/dl/*~hmac="), "{token}");

    common::write_file(dir.path(), "gcdn.key", b"nZtRohdNF9m3cKM24IcK4w==\n");
    let url = run(&[
        "sign",
        "--format",
        "cloud_cdn",
        "--key-file",
        "gcdn.key",
        "--kid",
        "my-key",
        "--exp",
        "1549751401",
        "http://35.186.234.33/index.html",
    ]);
    assert!(url.starts_with("http://35.186.234.33/index.html?Expires=1549751401&KeyName=my-key&Signature="), "{url}");

    common::signers::write_keys(dir.path());
    let cf = run(&["sign", "--format", "cloudfront", "--private-key", "ec.pem", "--kid", "K1", "https://a.example/x"]);
    assert!(cf.contains("?Expires=") && cf.ends_with("&Key-Pair-Id=K1&Hash-Algorithm=SHA256"), "{cf}");
    let out =
        Command::new(bin).args(["sign", "--format", "cloudfront", "--private-key", "ec.pem", "/x"]).output().unwrap();
    assert!(!out.status.success(), "a CloudFront link needs the Key-Pair-Id");
}
