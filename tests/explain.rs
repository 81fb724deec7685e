//! `tollgate explain`: one case per refusal reason, each naming the check
//! that failed, exit 1 when refused and 0 when allowed, and never a byte of
//! key material in the output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{hs256, sign, sign_path};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

struct Setup {
    dir: tempfile::TempDir,
    media: Vec<u8>,
    app: Vec<u8>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (media, app) = (common::random_secret(), common::random_secret());
    common::write_file(dir.path(), "media.key", &media);
    common::write_file(dir.path(), "app.key", &app);
    let yaml = r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: { hmac: { secret_file: media.key } }
  app: { hmac: { secret_file: app.key } }
upstreams:
  nginx: { url: "http://127.0.0.1:9" }
routes:
  - name: media
    prefix: /media/
    upstream: nginx
    methods: [GET, HEAD, PUT]
    auth: { signed_url: { keys: [media], max_ttl: 1h, path_tokens: true } }
  - name: api
    prefix: /api/
    upstream: nginx
    auth: { jwt: { keys: [app], audience: files, path_claim: path, leeway: 0s } }
"#;
    common::write_file(dir.path(), "tollgate.yaml", yaml.as_bytes());
    Setup { dir, media, app }
}

impl Setup {
    /// Runs `tollgate explain`; returns (exit code, output).
    fn explain(&self, url: &str, extra: &[&str]) -> (i32, String) {
        let out = Command::new(BIN)
            .arg("explain")
            .arg("--config")
            .arg(self.dir.path().join("tollgate.yaml"))
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
        for secret in [&self.media, &self.app] {
            assert!(!text.contains(std::str::from_utf8(secret).unwrap()), "key material in the output:\n{text}");
        }
        (out.status.code().unwrap(), text)
    }

    /// Asserts a refusal with `result` and a failed `check` line.
    fn refused(&self, url: &str, extra: &[&str], check: &str, result: &str) -> String {
        let (code, text) = self.explain(url, extra);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(check) && l.contains("FAIL")),
            "no failed {check}:\n{text}"
        );
        assert!(text.contains(&format!("result       refused: {result}")), "{text}");
        text
    }
}

#[test]
fn an_allowed_link_exits_0_and_shows_what_is_forwarded() {
    let s = setup();
    let url = sign(&s.media, "GET", "/media/a.jpg?w=1", 300, None, None);
    let (code, text) = s.explain(&format!("https://files.example{url}"), &[]);
    assert_eq!(code, 0, "{text}");
    for line in [
        "route        ok",
        "credential   ok   signed_url",
        "  signature  ok",
        "allowed: forwarded upstream as /media/a.jpg?w=1",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
}

#[test]
fn a_signature_mismatch_shows_the_string_to_sign() {
    let s = setup();
    let url = sign(&s.media, "GET", "/media/a.jpg?w=1", 300, None, None).replace("a.jpg", "b%20c.jpg");
    let text = s.refused(&url, &[], "signature", "403 bad_signature");
    let exp = url.split("exp=").nth(1).unwrap().split('&').next().unwrap();
    let expected = format!(
        "| TOLLGATE-HMAC-SHA256\\n\n      | GET\\n\n      | {exp}\\n\n      | \\n\n      | /media/b c.jpg\\n\n      | w=1\n"
    );
    assert!(text.contains(&expected), "{text}");
}

#[test]
fn every_refusal_reason_names_its_check() {
    let s = setup();
    let good = sign(&s.media, "GET", "/media/a.jpg", 300, None, None);
    s.refused("/media/a.jpg", &[], "credential", "401 missing_credential");
    s.refused(&format!("{good}&sig=x"), &[], "credential", "400 malformed");
    s.refused(&good.replace("exp=", "exp=0"), &[], "parameters", "400 malformed");
    s.refused(&sign(&s.media, "GET", "/media/a.jpg", -5, None, None), &[], "expiry", "403 expired");
    s.refused(&sign(&s.media, "GET", "/media/a.jpg", 7200, None, None), &[], "expiry", "403 claim_mismatch");
    s.refused(&sign(&s.media, "GET", "/media/a.jpg", 300, Some("other"), None), &[], "key", "403 unknown_key");
    s.refused(&good, &["-X", "PUT"], "method", "403 wrong_method");
    let prefixed = sign(&s.media, "GET", "/media/u1/a.jpg", 300, None, Some("/media/u1/"));
    s.refused(&prefixed.replace("/u1/a.jpg", "/u2/a.jpg"), &[], "prefix", "403 wrong_resource");
    let token = sign_path(&s.media, "/media/u1/seg.ts", 300, Some("/media/u1/"));
    s.refused(&token.replace("/media/u1/", "/media/u2/"), &[], "signature", "403 bad_signature");
    s.refused("/media/../etc/passwd", &[], "normal form", "400 malformed");
    s.refused("/nowhere/x", &[], "route", "404 no_route");
    s.refused(&good, &["-X", "DELETE"], "method", "405 method_not_allowed");

    let bearer = |claims| format!("Authorization: Bearer {}", hs256(&s.app, claims));
    let now = tollgate::auth::unix_now();
    let h = bearer(json!({"aud": "files", "path": "/api/x", "nbf": now + 600}));
    s.refused("/api/x", &["-H", &h], "not before", "401 not_yet_valid");
    let h = bearer(json!({"aud": "other", "path": "/api/x"}));
    s.refused("/api/x", &["-H", &h], "audience", "403 claim_mismatch");
    let h = bearer(json!({"aud": "files", "path": "/api/y"}));
    s.refused("/api/x", &["-H", &h], "path", "403 wrong_resource");
    let h = bearer(json!({"aud": "files", "path": "/api/x", "exp": now - 5}));
    s.refused("/api/x", &["-H", &h], "expiry", "401 expired");
    let h =
        format!("Authorization: Bearer {}", hs256(b"not-the-key-not-the-key-not-the-key!", json!({"aud": "files"})));
    s.refused("/api/x", &["-H", &h], "signature", "401 bad_signature");
    let (code, text) = s.explain("/api/x", &["-H", &bearer(json!({"aud": "files", "path": "/api/*"}))]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("  path       ok   \"/api/*\" grants \"/api/x\""), "{text}");
}
