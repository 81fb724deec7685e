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

/// A key the config reads as hex, used as text by the signer: explain says
/// how the config reads the key and the flag that matches it.
#[test]
fn a_mismatch_names_how_the_config_reads_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = common::random_secret().iter().take(32).map(|b| format!("{b:02x}")).collect();
    common::write_file(dir.path(), "media.key", text.as_bytes());
    let yaml = r#"
keys:
  media: { hmac: { secret_file: media.key, encoding: hex } }
upstreams:
  nginx: { url: "http://127.0.0.1:9" }
routes:
  - { name: media, prefix: /media/, upstream: nginx, auth: { signed_url: { keys: [media] } } }
"#;
    common::write_file(dir.path(), "tollgate.yaml", yaml.as_bytes());
    // Signed with the file's 64 characters as the key, as `sign --key-file` does by default.
    let url = sign(text.as_bytes(), "GET", "/media/a.jpg", 300, None, None);
    let out = Command::new(BIN).arg("explain").arg("--config").arg(dir.path().join("tollgate.yaml")).arg(&url).output();
    let out = out.unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("the config decodes it from hex (`encoding: hex`)"), "{report}");
    assert!(report.contains("needs `--key-encoding hex`"), "{report}");
    assert!(!report.contains(&text), "key material in the output:\n{report}");
}

/// `explain` and the proxy, on one config and the same links: every answer
/// agrees (status and error code), the id rule and a revocation included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_the_proxy_answer_every_link_alike() {
    let nginx =
        common::Nginx::start(&[("media/a.jpg", b"a"), ("media/u1/a.jpg", b"u"), ("once/f.txt", b"f"), ("api/x", b"x")]);
    let dir = tempfile::tempdir().unwrap();
    let (media, app) = (common::random_secret(), common::random_secret());
    common::write_file(dir.path(), "media.key", &media);
    common::write_file(dir.path(), "app.key", &app);
    let yaml = format!(
        r#"
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
  app: {{ hmac: {{ secret_file: app.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
store:
  memory: {{ revocations_file: revocations }}
reload: {{ interval: 100ms }}
routes:
  - name: media
    prefix: /media/
    upstream: nginx
    methods: [GET, HEAD, PUT]
    auth: {{ signed_url: {{ keys: [media], max_ttl: 1h, path_tokens: true }} }}
  - name: api
    prefix: /api/
    upstream: nginx
    auth: {{ jwt: {{ keys: [app], audience: files, path_claim: path, leeway: 0s }} }}
  - name: once
    prefix: /once/
    upstream: nginx
    auth: {{ signed_url: {{ keys: [media], max_ttl: 1h }}, revocation: true }}
"#,
        nginx.addr
    );
    let config = common::write_file(dir.path(), "tollgate.yaml", yaml.as_bytes());
    let tg = common::Tollgate::start(&yaml, dir.path()).await;
    let http = common::Http::h1();
    let explain = |target: &str, extra: &[&str]| {
        let out = Command::new(BIN).arg("explain").arg("--config").arg(&config).args(extra).arg(target).output();
        String::from_utf8(out.unwrap().stdout).unwrap()
    };
    // explain's verdict as (status, code): "allowed" is the upstream's 200.
    let verdict = |report: &str| -> (u16, String) {
        let result = report.lines().find(|l| l.starts_with("result")).unwrap_or_default();
        match result.split_once("refused: ") {
            Some((_, answer)) => {
                let (status, code) = answer.split_once(' ').unwrap_or((answer, ""));
                (status.parse().unwrap_or(0), code.split_whitespace().next().unwrap_or("").to_owned())
            }
            None if result.contains("allowed") => (200, String::new()),
            None => (0, report.to_owned()),
        }
    };

    let good = sign(&media, "GET", "/media/a.jpg", 300, None, None);
    let prefixed = sign(&media, "GET", "/media/u1/a.jpg", 300, None, Some("/media/u1/"));
    let bearer = |claims| format!("Bearer {}", hs256(&app, claims));
    let now = tollgate::auth::unix_now();
    let cases: Vec<(String, &str, Option<String>)> = vec![
        (good.clone(), "GET", None),
        ("/media/a.jpg".into(), "GET", None),
        (format!("{good}&sig=x"), "GET", None),
        (good.replace("exp=", "exp=0"), "GET", None),
        (sign(&media, "GET", "/media/a.jpg", -5, None, None), "GET", None),
        (sign(&media, "GET", "/media/a.jpg", 7200, None, None), "GET", None),
        (sign(&media, "GET", "/media/a.jpg", 300, Some("other"), None), "GET", None),
        (good.clone(), "PUT", None),
        (good.clone(), "DELETE", None),
        (prefixed.clone(), "GET", None),
        (prefixed.replace("/u1/a.jpg", "/u2/a.jpg"), "GET", None),
        (sign_path(&media, "/media/u1/a.jpg", 300, Some("/media/u1/")), "GET", None),
        (
            sign_path(&media, "/media/u1/a.jpg", 300, Some("/media/u1/")).replace("/media/u1/", "/media/u2/"),
            "GET",
            None,
        ),
        ("/media/../etc/passwd".into(), "GET", None),
        ("/nowhere/x".into(), "GET", None),
        ("/api/x".into(), "GET", Some(bearer(json!({"aud": "files", "path": "/api/*"})))),
        ("/api/x".into(), "GET", Some(bearer(json!({"aud": "files", "path": "/api/x", "nbf": now + 600})))),
        ("/api/x".into(), "GET", Some(bearer(json!({"aud": "other", "path": "/api/x"})))),
        ("/api/x".into(), "GET", Some(bearer(json!({"aud": "files", "path": "/api/y"})))),
        ("/api/x".into(), "GET", Some(bearer(json!({"aud": "files", "path": "/api/x", "exp": now - 5})))),
        ("/api/x".into(), "GET", Some(format!("Bearer {}", hs256(b"not-the-key-not-the-key-not-the-key!", json!({}))))),
        (sign(&media, "GET", "/once/f.txt", 300, None, None), "GET", None),
    ];
    let compare = async |target: &str, method: &str, auth: Option<&str>| {
        let mut extra = vec!["-X", method];
        let header = auth.map(|a| format!("Authorization: {a}"));
        if let Some(h) = &header {
            extra.extend(["-H", h.as_str()]);
        }
        let said = verdict(&explain(target, &extra));
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = http.send(method, &tg.url(target), &headers, bytes::Bytes::new()).await;
        let answered = (r.status, if r.status == 200 { String::new() } else { r.code() });
        assert_eq!(said, answered, "{method} {target}: explain said {said:?}, the proxy answered {answered:?}");
    };
    for (target, method, auth) in &cases {
        compare(target, method, auth.as_deref()).await;
    }

    // A revoked link: `tollgate revoke` writes the file both read.
    let kept = sign_with_jti(&media, "/once/f.txt", "kept");
    let revoked = sign_with_jti(&media, "/once/f.txt", "gone");
    let out = Command::new(BIN).args(["revoke", "--jti", "gone", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while http.get(&tg.url(&revoked)).await.status != 403 {
        assert!(std::time::Instant::now() < deadline, "the proxy did not read the revocation");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    compare(&revoked, "GET", None).await;
    compare(&kept, "GET", None).await;
}

/// A one-file link carrying a signed `jti`.
fn sign_with_jti(secret: &[u8], path: &str, jti: &str) -> String {
    sign(secret, "GET", &format!("{path}?jti={jti}"), 300, None, None)
}

/// `auth.report_only`: what verification refuses is served (credential
/// parameters still stripped), counted as the refusal and logged; explain
/// says the same; a path token is never served this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_routes_serve_what_they_would_refuse_and_explain_agrees() {
    let nginx = common::Nginx::start(&[("media/a.jpg", b"a")]);
    let dir = tempfile::tempdir().unwrap();
    let media = common::random_secret();
    common::write_file(dir.path(), "media.key", &media);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
routes:
  - name: media
    prefix: /media/
    upstream: nginx
    auth: {{ signed_url: {{ keys: [media], path_tokens: true }}, report_only: true }}
"#,
        nginx.addr
    );
    let config = common::write_file(dir.path(), "tollgate.yaml", yaml.as_bytes());
    let tg = common::Tollgate::start(&yaml, dir.path()).await;
    let http = common::Http::h1();
    let expired = sign(&media, "GET", "/media/a.jpg", -5, None, None);
    for target in ["/media/a.jpg".to_owned(), expired.clone()] {
        let r = http.get(&tg.url(&target)).await;
        assert_eq!((r.status, r.text().as_str()), (200, "a"), "{target}");
        let out = Command::new(BIN).arg("explain").arg("--config").arg(&config).arg(&target).output().unwrap();
        let report = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{report}");
        assert!(report.contains("report-only  ok   the route serves it anyway"), "{report}");
    }
    let text = http.get(&tg.admin_url("/metrics")).await.text();
    let m = common::metrics(&text);
    assert_eq!(m[r#"tollgate_auth_denied_total{reason="missing_credential",route="media"}"#], 1.0);
    assert_eq!(m[r#"tollgate_auth_denied_total{reason="expired",route="media"}"#], 1.0);
    let log = nginx.settled_log();
    assert!(!log.contains("sig=") && !log.contains("exp="), "the refused credential reached nginx:\n{log}");
    // A broken path token is refused as always: it would reach the upstream.
    let token = sign_path(&media, "/media/a.jpg", -5, Some("/media/"));
    assert_eq!(http.get(&tg.url(&token)).await.status, 403);
}
