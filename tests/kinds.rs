//! Every registered credential kind (`auth::kinds::REGISTRY`) is whole: its
//! section is in the config schema, its signer writes links its verifier
//! accepts, and `tollgate explain` shows its verifier's own checks, for an
//! accepted link and for one signed with another key. A kind registered
//! without a sample below fails `every_registered_kind_has_a_sample`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use tollgate::auth::kinds::REGISTRY;
use tollgate::auth::sign::{KeySource, SignInput, SignKey};
use tollgate::explain::{Probe, explain};

mod common;

/// A route of one kind, and what its signer needs.
struct Sample {
    /// The section under `routes[].auth`.
    section: &'static str,
    /// `keys:` entries; `KEY` is the key file written for the test.
    keys: &'static str,
    /// The section's YAML (flow style).
    rules: &'static str,
    /// What the key file holds.
    key: KeyFile,
    kid: Option<&'static str>,
    options: &'static [(&'static str, &'static str)],
    target: &'static str,
}

#[derive(Clone, Copy)]
enum KeyFile {
    /// Random bytes written as hex (`encoding: hex` in the config, or the
    /// format's own default).
    Hex(usize),
    /// Random bytes written as base64.
    Base64(usize),
    /// An ECDSA P-256 key pair: `KEY` is the public PEM, `KEY.priv` the private.
    EcPair,
}

const ORIGIN: &str = "https://media.example.com";

const SAMPLES: &[Sample] = &[
    Sample {
        section: "signed_url",
        keys: "k: { hmac: { secret_file: KEY, encoding: hex } }",
        rules: "{ keys: [k], path_tokens: true }",
        key: KeyFile::Hex(32),
        kid: None,
        options: &[],
        target: "/s/a.txt",
    },
    Sample {
        section: "jwt",
        keys: "k: { hmac: { secret_file: KEY, encoding: hex } }",
        rules: "{ keys: [k], from: [query], path_claim: path }",
        key: KeyFile::Hex(32),
        kid: None,
        options: &[],
        target: "/s/a.txt",
    },
    Sample {
        section: "cloudfront",
        keys: "cf: { public_key_file: KEY, kid: KTEST }",
        rules: "{ keys: [cf], origins: [\"https://media.example.com\"] }",
        key: KeyFile::EcPair,
        kid: Some("KTEST"),
        options: &[("private-key", "KEY.priv")],
        target: "https://media.example.com/s/a.txt",
    },
    Sample {
        section: "secure_link",
        keys: "sl: { secure_link: { secret_file: KEY, encoding: hex } }",
        rules: "{ keys: [sl], md5: \"$secure_link_expires$uri $secret\" }",
        key: KeyFile::Hex(16),
        kid: None,
        options: &[("md5", "$secure_link_expires$uri $secret")],
        target: "/s/a.txt",
    },
    Sample {
        section: "edgeauth",
        keys: "ea: { edgeauth: { secret_file: KEY } }",
        rules: "{ keys: [ea] }",
        key: KeyFile::Hex(32),
        kid: None,
        options: &[("acl", "/s/*")],
        target: "/s/a.txt",
    },
    Sample {
        section: "cloud_cdn",
        keys: "cdn: { cloud_cdn: { secret_file: KEY }, kid: test-key }",
        rules: "{ keys: [cdn], origins: [\"https://media.example.com\"] }",
        key: KeyFile::Base64(16),
        kid: Some("test-key"),
        options: &[],
        target: "https://media.example.com/s/a.txt",
    },
];

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}

/// Writes a fresh key of `kind` to `dir/name` (and its private half).
fn write_key(dir: &Path, name: &str, kind: KeyFile) {
    match kind {
        KeyFile::Hex(n) => common::write_file(dir, name, tollgate::normalize::encode_hex(&random(n)).as_bytes()),
        KeyFile::Base64(n) => {
            let text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, random(n));
            common::write_file(dir, name, text.as_bytes())
        }
        KeyFile::EcPair => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            common::write_file(dir, &format!("{name}.priv"), pair.serialize_pem().as_bytes());
            common::write_file(dir, name, pair.public_key_pem().as_bytes())
        }
    };
}

/// A link for the sample's target, signed with the key in `dir/key`.
fn sign(sample: &Sample, dir: &Path, key: &str) -> String {
    let signer = REGISTRY.iter().find(|k| k.section() == sample.section).unwrap().signer();
    let encoding = match sample.key {
        KeyFile::Hex(_) => Some(tollgate::auth::keys::SecretEncoding::Hex),
        _ => None,
    };
    let sign_key = SignKey { source: KeySource::File(dir.join(key)), encoding };
    let options: BTreeMap<&'static str, String> = sample
        .options
        .iter()
        .map(|(name, value)| (*name, value.replace("KEY", &dir.join(key).display().to_string())))
        .collect();
    let exp = tollgate::auth::unix_now() + 600;
    let input = SignInput { target: sample.target, exp, kid: sample.kid, key: &sign_key, options: &options };
    signer.sign(&input).unwrap_or_else(|e| panic!("{}: {e}", sample.section))
}

#[test]
fn every_registered_kind_has_a_sample() {
    let registered: Vec<&str> = REGISTRY.iter().map(|k| k.section()).collect();
    let sampled: Vec<&str> = SAMPLES.iter().map(|s| s.section).collect();
    assert_eq!(registered, sampled, "add a sample for each registered kind, in the registry's order");
}

#[test]
fn every_registered_kind_has_a_section_in_the_schema() {
    let schema = tollgate::config::schema::config_schema();
    for kind in REGISTRY {
        let section = &schema["definitions"]["AuthRulesFile"]["properties"][kind.section()];
        assert!(section.is_object(), "{} has no section in the schema", kind.section());
        if let Some(format) = kind.key_format() {
            let key = &schema["definitions"]["KeyFile"]["properties"][format.field];
            assert!(key.is_object(), "{}'s key format is not in the schema", kind.section());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_kind_signs_what_it_verifies_and_explains_both() {
    for sample in SAMPLES {
        let dir = tempfile::tempdir().unwrap();
        write_key(dir.path(), "key", sample.key);
        write_key(dir.path(), "other", sample.key);
        let yaml = format!(
            "keys:\n  {}\nupstreams: {{ u: {{ url: \"http://127.0.0.1:9\" }} }}\nroutes:\n  - {{ name: r, prefix: /s/, upstream: u, auth: {{ {}: {} }} }}\n",
            sample.keys.replace("KEY", "key"),
            sample.section,
            sample.rules
        );
        let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
        let config = tollgate::config::compile_str(&yaml, dir.path(), &metrics)
            .unwrap_or_else(|e| panic!("{}:\n{yaml}\n{e}", sample.section));
        for (key, allowed) in [("key", true), ("other", false)] {
            let link = sign(sample, dir.path(), key);
            let url = if link.starts_with("https://") { link.clone() } else { format!("{ORIGIN}{link}") };
            let probe = Probe { url: &url, method: "GET", headers: &[], client: None };
            let found = explain(&config, &metrics, &probe).await;
            assert_eq!(found.allowed, allowed, "{} with {key}:\n{}", sample.section, found.report);
            // The kind's own checks follow the credential line, indented.
            let own: Vec<&str> = found.report.lines().filter(|l| l.starts_with("  ")).collect();
            assert!(!own.is_empty(), "{} traced none of its checks:\n{}", sample.section, found.report);
            if !allowed {
                assert!(own.iter().any(|l| l.contains("FAIL")), "{}:\n{}", sample.section, found.report);
            }
        }
    }
}
