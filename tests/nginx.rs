//! tollgate in front of a real nginx (Debian nginx-light): signed URLs,
//! tokens from every carrier, refusals, stripping — checked against what
//! nginx itself logged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Http, Nginx, Tollgate, hs256, raw, raw_status, sign};
use serde_json::json;

const FILES: &[(&str, &[u8])] = &[
    ("media/cat.jpg", b"cat-bytes"),
    ("media/a.txt", b"file a"),
    ("media/b.txt", b"file b"),
    ("media/u1/x.txt", b"u1 x"),
    ("media/u10/x.txt", b"u10 x"),
    ("media/caf\u{e9} noir.jpg", b"coffee"),
    ("public/hello.txt", b"hello"),
];

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    secret: Vec<u8>,
    old_secret: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let nginx = Nginx::start(FILES);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    let old_secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    common::write_file(dir.path(), "old.key", &old_secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
  old: {{ hmac: {{ secret_file: old.key }} }}
upstreams:
  nginx: {{ url: "http://{addr}" }}
routes:
  - name: media
    prefix: /media/
    upstream: nginx
    methods: [GET, HEAD, PUT]
    auth:
      signed_url: {{ keys: [media, old], max_ttl: 1d }}
      jwt:
        keys: [media]
        from: [header, query, cookie]
        path_claim: path
        forward_claims: {{ sub: X-Auth-Subject }}
  - name: public
    prefix: /public/
    upstream: nginx
    auth: none
log: {{ access_log: false }}
"#,
        addr = nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { nginx, tg, secret, old_secret, _dir: dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_url_is_served_and_head_shares_its_signature() {
    let s = setup().await;
    let http = Http::h1();
    let good = sign(&s.secret, "GET", "/media/cat.jpg", 300, None, None);
    let r = http.get(&s.tg.url(&good)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "cat-bytes"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "URL credentials must not leak via Referer");
    let r = http.send("HEAD", &s.tg.url(&good), &[], Bytes::new()).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    // The same over HTTP/2 (cleartext, prior knowledge).
    let r = Http::h2c().get(&s.tg.url(&good)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "cat-bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tampered_moved_and_reverbed_links_are_refused() {
    let s = setup().await;
    let http = Http::h1();
    let url = |target: &str| s.tg.url(target);
    let good = sign(&s.secret, "GET", "/media/cat.jpg", 300, None, None);
    let expired = sign(&s.secret, "GET", "/media/cat.jpg", -10, None, None);
    let r = http.get(&url(&expired)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = http.get(&url(&tampered)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"));
    let for_a = sign(&s.secret, "GET", "/media/a.txt", 300, None, None);
    let r = http.get(&url(&for_a.replace("/media/a.txt", "/media/b.txt"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"));
    let r = http.send("PUT", &url(&for_a), &[], Bytes::from_static(b"x")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_method"));
    assert_refused_never_reached_nginx(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_grants_stop_at_the_slash() {
    let s = setup().await;
    let http = Http::h1();
    let prefixed = sign(&s.secret, "GET", "/media/u1/x.txt", 300, None, Some("/media/u1/"));
    let r = http.get(&s.tg.url(&prefixed)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "u1 x"));
    let r = http.get(&s.tg.url(&prefixed.replace("/media/u1/x.txt", "/media/u10/x.txt"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_kid_and_lifetimes_are_capped() {
    let s = setup().await;
    let http = Http::h1();
    let rotated = sign(&s.old_secret, "GET", "/media/a.txt", 300, Some("old"), None);
    assert_eq!(http.get(&s.tg.url(&rotated)).await.status, 200);
    let unknown = sign(&s.old_secret, "GET", "/media/a.txt", 300, Some("gone"), None);
    assert_eq!(http.get(&s.tg.url(&unknown)).await.code(), "unknown_key");
    let too_long = sign(&s.secret, "GET", "/media/a.txt", 3 * 86_400, None, None);
    assert_eq!(http.get(&s.tg.url(&too_long)).await.code(), "claim_mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_parameters_are_signed_and_arrive_byte_for_byte() {
    let s = setup().await;
    let http = Http::h1();
    let with_params = sign(&s.secret, "GET", "/media/cat.jpg?w=200&format=web+p&a=%7e", 300, None, None);
    assert_eq!(http.get(&s.tg.url(&with_params)).await.status, 200);
    let line = s.nginx.wait_for_line("GET /media/cat.jpg?");
    assert!(line.starts_with("GET /media/cat.jpg?w=200&format=web+p&a=%7e HTTP/1.1|"), "{line}");
    let added = format!("{with_params}&response-content-type=text/html");
    assert_eq!(http.get(&s.tg.url(&added)).await.code(), "bad_signature");
    let log = s.nginx.settled_log();
    for secret_marker in ["sig=", "exp=", "kid=", "prefix="] {
        assert!(!log.contains(secret_marker), "nginx logged {secret_marker}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_unicode_path_is_signed_decoded_and_forwarded_as_sent() {
    let s = setup().await;
    let cafe = sign(&s.secret, "GET", "/media/caf%C3%A9%20noir.jpg", 300, None, None);
    let r = Http::h1().get(&s.tg.url(&cafe)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "coffee"));
    assert!(s.nginx.wait_for_line("GET /media/caf%C3%A9%20noir.jpg HTTP/1.1|").contains("|200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_twice_or_an_exp_that_is_not_plain_is_malformed() {
    let s = setup().await;
    let http = Http::h1();
    let good = sign(&s.secret, "GET", "/media/cat.jpg", 300, None, None);
    let twice = format!("{good}&sig=AAAA");
    assert_eq!(http.get(&s.tg.url(&twice)).await.status, 400);
    let exp_plus = good.replacen("exp=", "exp=%2B", 1);
    assert_eq!(http.get(&s.tg.url(&exp_plus)).await.code(), "malformed");
    assert_refused_never_reached_nginx(&s);
}

/// Nothing was answered by nginx but 200s: every refused request stayed in
/// tollgate.
fn assert_refused_never_reached_nginx(s: &Setup) {
    let log = s.nginx.settled_log();
    let reached: Vec<&str> = log.lines().filter(|l| !l.contains("GET /settle-")).collect();
    assert!(reached.iter().all(|l| l.contains("|200")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_every_carrier() {
    let s = setup().await;
    let http = Http::h1();
    let url = |target: &str| s.tg.url(target);
    let token = hs256(&s.secret, json!({"sub": "alice", "path": ["/media/*"]}));
    let bearer = format!("Bearer {token}");

    // Header: forwarded without Authorization, with the subject header set
    // by tollgate and the client's forged copy dropped.
    let before = s.nginx.line_count();
    let r = http.get_with(&url("/media/a.txt"), &[("authorization", &bearer), ("x-auth-subject", "mallory")]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "file a"));
    let line = s.nginx.lines_after(before).pop().unwrap();
    assert!(line.contains("|auth=-|") && line.contains("|subject=alice|"), "{line}");
    assert!(r.header("referrer-policy").is_none(), "only URL credentials get Referrer-Policy");

    // Query: the token parameter is stripped, the others stay in order.
    let before = s.nginx.line_count();
    let r = http.get(&url(&format!("/media/a.txt?x=1&token={token}&y=%20"))).await;
    assert_eq!(r.status, 200);
    let line = s.nginx.lines_after(before).pop().unwrap();
    assert!(line.starts_with("GET /media/a.txt?x=1&y=%20 HTTP/1.1|"), "{line}");

    // Cookie: only the credential cookie is removed.
    let before = s.nginx.line_count();
    let cookie = format!("theme=dark; tollgate_token={token}; lang=en");
    let r = http.get_with(&url("/media/b.txt"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200);
    let line = s.nginx.lines_after(before).pop().unwrap();
    assert!(line.contains("|cookie=theme=dark; lang=en|"), "{line}");

    // A signed URL request's forged subject header is removed too.
    let before = s.nginx.line_count();
    let signed = sign(&s.secret, "GET", "/media/a.txt", 300, None, None);
    let r = http.get_with(&url(&signed), &[("x-auth-subject", "mallory")]).await;
    assert_eq!(r.status, 200);
    assert!(s.nginx.lines_after(before)[0].contains("|subject=-|"));

    // Refusals.
    let r = http.get(&url("/media/a.txt")).await;
    assert_eq!((r.status, r.code().as_str()), (401, "missing_credential"));
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="tollgate""#));
    let r = http.get_with(&url("/media/a.txt"), &[("authorization", "Bearer not.a.jwt")]).await;
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some(r#"Bearer error="invalid_token""#)));
    let narrow = hs256(&s.secret, json!({"sub": "bob", "path": "/media/a.txt"}));
    let r = http.get_with(&url("/media/b.txt"), &[("authorization", &format!("Bearer {narrow}"))]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"));
    let expired = hs256(&s.secret, json!({"path": "/media/*", "exp": tollgate::auth::unix_now() - 120}));
    let r = http.get(&url(&format!("/media/a.txt?token={expired}"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "expired"));
    let forged = hs256(b"some-other-secret-some-other-secret!", json!({"path": "/media/*"}));
    let r = http.get_with(&url("/media/a.txt"), &[("cookie", &format!("tollgate_token={forged}"))]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"));

    // Two credentials, or one twice: 400.
    let r = http.get_with(&url(&format!("/media/a.txt?token={token}")), &[("authorization", &bearer)]).await;
    assert_eq!((r.status, r.code().as_str()), (400, "malformed"));
    let r = http.get(&url(&format!("/media/a.txt?token={token}&token={token}"))).await;
    assert_eq!(r.status, 400);
    let r = http.get_with(&url(&signed), &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 400);

    let log = s.nginx.access_log();
    assert_eq!(log.lines().count(), 4, "only the four verified requests reached nginx:\n{log}");
    for needle in ["token=", "eyJ", "Bearer", &token[..20]] {
        assert!(!log.contains(needle), "nginx logged {needle}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_normal_form() {
    let s = setup().await;
    let http = Http::h1();
    let before = s.nginx.line_count();

    let r = http.get(&s.tg.url("/public/hello.txt")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let r = http.get(&s.tg.url("/elsewhere/x")).await;
    assert_eq!((r.status, r.code().as_str()), (404, "no_route"));
    let r = http.send("POST", &s.tg.url("/media/a.txt"), &[], Bytes::new()).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD, PUT")));

    for target in [
        "/public/../media/a.txt",
        "/public/%2e%2e/media/a.txt",
        "/public/.%2E/media/a.txt",
        "/public//hello.txt",
        "/public/a%2Fb",
        "/public/a%5Cb",
        "/public/a\\b",
        "/public/a%00b",
        "/public/%c0%af",
        "/public/%zz",
        "/nowhere//x",
        "/nowhere/a%2Fb",
        "http://evil.example/public/hello.txt",
    ] {
        let answer = raw(
            s.tg.handle.proxy_addr,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(raw_status(&answer), 400, "{target}: {answer}");
    }
    assert_eq!(s.nginx.lines_after(before).len(), 1, "only the public request reached nginx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_traffic_pass_promtool() {
    let s = setup().await;
    let http = Http::h1();
    let token = hs256(&s.secret, json!({"sub": "alice", "path": ["/media/*"]}));
    let bearer = format!("Bearer {token}");
    for _ in 0..3 {
        assert_eq!(http.get_with(&s.tg.url("/media/a.txt"), &[("authorization", &bearer)]).await.status, 200);
    }
    let expired = sign(&s.secret, "GET", "/media/a.txt", -5, None, None);
    assert_eq!(http.get(&s.tg.url(&expired)).await.status, 403);
    assert_eq!(http.get(&s.tg.url("/nowhere")).await.status, 404);

    let text = http.get(&s.tg.admin_url("/metrics")).await.text();
    let m = common::metrics(&text);
    assert_eq!(m[r#"tollgate_requests_total{outcome="forwarded",route="media"}"#], 3.0);
    assert_eq!(m[r#"tollgate_requests_total{outcome="denied",route="media"}"#], 1.0);
    assert_eq!(m[r#"tollgate_requests_total{outcome="no_route",route="(none)"}"#], 1.0);
    assert_eq!(m[r#"tollgate_auth_denied_total{reason="expired",route="media"}"#], 1.0);
    assert_eq!(m[r#"tollgate_verify_cache_total{result="miss"}"#], 1.0);
    assert_eq!(m[r#"tollgate_verify_cache_total{result="hit"}"#], 2.0);
    assert_eq!(m[r#"tollgate_request_duration_seconds_count{route="media"}"#], 4.0);
    assert_eq!(m["tollgate_inflight_requests"], 0.0);
    assert!(text.contains("tollgate_build_info{version="));
    assert!(!text.contains(&token[..16]) && !text.contains("/media/a.txt"), "labels must be bounded");

    let promtool = common::require("promtool", &["/usr/bin/promtool"]);
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool rejected the exposition: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let r = http.get(&s.tg.admin_url("/healthz")).await;
    assert_eq!(r.status, 200);
    let r = http.get(&s.tg.admin_url("/readyz")).await;
    assert_eq!(r.status, 200);
}
