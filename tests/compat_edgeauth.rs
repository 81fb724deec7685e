//! Akamai EdgeAuth tokens made by the real libraries — PyPI
//! `akamai-edgeauth` and npm `akamai-edgeauth` — in ACL and URL mode, with
//! and without `escape_early`, salt and IP, verified by tollgate in front of
//! a real nginx. The key is generated per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::signers;
use common::{Http, Nginx, Tollgate};
use serde_json::{Value, json};

const FILES: &[(&str, &[u8])] = &[
    ("e/a.txt", b"ea"),
    ("e/sub/b.txt", b"eb"),
    ("u/a b.txt", b"u space"),
    ("u/x.txt", b"ux"),
    ("p/a b.txt", b"p space"),
    ("p/x.txt", b"px"),
    ("s1/a.txt", b"sha1"),
    ("m5/a.txt", b"md5"),
];

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    http: Http,
    key: String,
    _dir: tempfile::TempDir,
}

async fn setup_with(extra: &str) -> Setup {
    // An nginx location that says which `__token__` header reached it.
    let echo = r#"underscores_in_headers on;
    location /echo/ { return 200 "header=[$http___token__]"; }"#;
    let nginx = Nginx::start_with(FILES, echo);
    let dir = tempfile::tempdir().unwrap();
    let key = String::from_utf8(common::random_secret()).unwrap();
    common::write_file(dir.path(), "ea.key", key.as_bytes());
    common::write_file(dir.path(), "salt.txt", b"pepper-salt");
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  ea: {{ edgeauth: {{ secret_file: ea.key }} }}
upstreams:
  nginx: {{ url: "http://{addr}" }}
routes:
  - {{ name: e, prefix: /e/, upstream: nginx, auth: {{ edgeauth: {{ keys: [ea] }} }} }}
  - name: u
    prefix: /u/
    upstream: nginx
    auth:
      edgeauth: {{ keys: [ea], salt: {{ secret_file: salt.txt }}, escape_early: true }}
  - {{ name: p, prefix: /p/, upstream: nginx, auth: {{ edgeauth: {{ keys: [ea] }} }} }}
  - {{ name: s1, prefix: /s1/, upstream: nginx, auth: {{ edgeauth: {{ keys: [ea], algorithm: sha1 }} }} }}
  - {{ name: m5, prefix: /m5/, upstream: nginx, auth: {{ edgeauth: {{ keys: [ea], algorithm: md5 }} }} }}
  - {{ name: echo, prefix: /echo/, upstream: nginx, auth: {{ edgeauth: {{ keys: [ea] }} }} }}
log: {{ access_log: false }}
{extra}
"#,
        addr = nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { nginx, tg, http: Http::h1(), key, _dir: dir }
}

async fn setup() -> Setup {
    setup_with("").await
}

/// Percent-encodes what a query value cannot hold as is.
fn query_value(token: &str) -> String {
    token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~=*!/:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Setup {
    fn python(&self, options: Value) -> String {
        let mut o = options;
        o["key"] = self.key.clone().into();
        o.as_object_mut().unwrap().entry("window_seconds").or_insert(300.into());
        signers::py(&["edgeauth", &o.to_string()])
    }

    fn node(&self, options: Value) -> String {
        let mut o = options;
        o["key"] = self.key.clone().into();
        o.as_object_mut().unwrap().entry("windowSeconds").or_insert(300.into());
        signers::node("edgeauth", &o)
    }

    async fn query(&self, path: &str, token: &str) -> common::Resp {
        self.http.get(&self.tg.url(&format!("{path}?w=1&__token__={}&z=%7e", query_value(token)))).await
    }

    /// The line nginx logged for a request (waiting for nginx to write it).
    fn logged(&self, request_line: &str) -> String {
        self.nginx.wait_for_line(&format!("{request_line} HTTP/1.1|"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_acl_tokens_from_query_cookie_and_header() {
    let s = setup().await;
    let token = s.python(json!({"acl": "/e/*", "payload": "opaque", "session_id": "s1"}));
    assert!(token.contains("acl=/e/*") && token.contains("~hmac="), "{token}");
    let r = s.query("/e/sub/b.txt", &token).await;
    assert_eq!((r.status, r.text().as_str()), (200, "eb"));
    s.logged("GET /e/sub/b.txt?w=1&z=%7e");

    let cookie = format!("a=1; __token__={token}; b=2");
    let r = s.http.get_with(&s.tg.url("/e/a.txt"), &[("cookie", &cookie)]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ea"));
    s.nginx.wait_for_line("|cookie=a=1; b=2|");

    let r = s.http.get_with(&s.tg.url("/e/a.txt"), &[("__token__", &token)]).await;
    assert_eq!(r.status, 200);
    // The header never reaches the upstream, which is shown to read it.
    let echo = s.python(json!({"acl": "/echo/*"}));
    let r = s.http.get_with(&s.tg.url("/echo/x"), &[("__token__", &echo)]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "header=[]"));
    let direct = s.http.get_with(&format!("http://{}/echo/x", s.nginx.addr), &[("__token__", "seen")]).await;
    assert_eq!(direct.text(), "header=[seen]");

    // Refusals name the failing check.
    let r = s.query("/p/x.txt", &token).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_resource"), "the ACL is /e/* only");
    let list = s.python(json!({"acl": ["/x/*", "/e/a.txt"]}));
    assert_eq!(s.query("/e/a.txt", &list).await.status, 200, "!-separated ACLs");
    assert_eq!(s.query("/e/sub/b.txt", &list).await.code(), "wrong_resource");
    let expired = s.python(json!({"acl": "/e/*", "end_time": tollgate::auth::unix_now() - 10}));
    assert_eq!(s.query("/e/a.txt", &expired).await.code(), "expired");
    let later = tollgate::auth::unix_now() + 600;
    let future = s.python(json!({"acl": "/e/*", "start_time": later, "end_time": later + 60}));
    assert_eq!(s.query("/e/a.txt", &future).await.code(), "not_yet_valid");
    let widened = token.replace("acl=/e/*", "acl=/*");
    assert_eq!(s.query("/p/x.txt", &widened).await.code(), "bad_signature");
    let r = s.http.get(&s.tg.url(&format!("/e/a.txt?__token__={0}&__token__={0}", query_value(&token)))).await;
    assert_eq!((r.status, r.code().as_str()), (400, "malformed"));
    let r = s.http.get_with(&s.tg.url("/e/a.txt"), &[("__token__", "exp=1~hmac=00")]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"), "a header token is refused with 403");
    let log = s.nginx.settled_log();
    assert!(!log.contains("hmac") && !log.contains("__token__"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_url_tokens_with_and_without_escape_early_salt_and_ip() {
    let s = setup().await;
    // /u/: escape_early and a salt; the path has a space.
    let opts = json!({"url": "/u/a b.txt", "escape_early": true, "salt": "pepper-salt", "ip": "127.0.0.1"});
    let token = s.python(opts.clone());
    assert!(!token.contains("url=") && token.contains("ip=127.0.0.1"), "{token}");
    let r = s.query("/u/a%20b.txt", &token).await;
    assert_eq!((r.status, r.text().as_str()), (200, "u space"));
    s.logged("GET /u/a%20b.txt?w=1&z=%7e");
    assert_eq!(s.query("/u/x.txt", &token).await.code(), "bad_signature", "URL mode binds the path");
    let unsalted = s.python(json!({"url": "/u/x.txt", "escape_early": true}));
    assert_eq!(s.query("/u/x.txt", &unsalted).await.code(), "bad_signature", "the salt is bound");
    let elsewhere =
        s.python(json!({"url": "/u/x.txt", "escape_early": true, "salt": "pepper-salt", "ip": "192.0.2.1"}));
    assert_eq!(s.query("/u/x.txt", &elsewhere).await.code(), "claim_mismatch");
    let v6 = s.python(json!({"url": "/u/x.txt", "escape_early": true, "salt": "pepper-salt", "ip": "2001:db8::1"}));
    assert!(v6.contains("ip=2001%3adb8%3a%3a1"), "escaped early: {v6}");
    assert_eq!(s.query("/u/x.txt", &v6).await.code(), "claim_mismatch");

    // /p/: no escape_early, no salt.
    let plain = s.python(json!({"url": "/p/a b.txt"}));
    assert_eq!(s.query("/p/a%20b.txt", &plain).await.text(), "p space", "the decoded path as signed");
    let encoded = s.python(json!({"url": "/p/a%20b.txt"}));
    assert_eq!(s.query("/p/a%20b.txt", &encoded).await.text(), "p space", "the path as sent");
    let early = s.python(json!({"url": "/p/x.txt", "escape_early": true}));
    assert_eq!(s.query("/p/x.txt", &early).await.code(), "bad_signature", "the route says how paths were hashed");
    assert!(!s.nginx.settled_log().contains("hmac"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_tokens_in_acl_and_url_mode() {
    let s = setup().await;
    let acl = s.node(json!({"acl": ["/e/*"], "payload": "p", "sessionId": "id-1"}));
    assert_eq!(s.query("/e/sub/b.txt", &acl).await.text(), "eb");
    let url = s.node(json!({"url": "/u/a b.txt", "escapeEarly": true, "salt": "pepper-salt", "ip": "127.0.0.1"}));
    assert_eq!(s.query("/u/a%20b.txt", &url).await.text(), "u space", "Node's encodeURIComponent form");
    let plain = s.node(json!({"url": "/p/x.txt"}));
    assert_eq!(s.query("/p/x.txt", &plain).await.text(), "px");
    let sha1 = s.node(json!({"acl": "/s1/*", "algorithm": "sha1"}));
    assert_eq!(s.query("/s1/a.txt", &sha1).await.text(), "sha1");
    let md5 = s.node(json!({"acl": "/m5/*", "algorithm": "md5"}));
    assert_eq!(s.query("/m5/a.txt", &md5).await.text(), "md5");
    assert_eq!(s.query("/e/a.txt", &sha1.replace("/s1/*", "/e/*")).await.code(), "bad_signature");
    let sha256_on_md5 = s.node(json!({"acl": "/m5/*"}));
    assert_eq!(s.query("/m5/a.txt", &sha256_on_md5).await.code(), "bad_signature", "the algorithm is the route's");
    let python_md5 = s.python(json!({"acl": "/m5/*", "algorithm": "md5"}));
    assert_eq!(s.query("/m5/a.txt", &python_md5).await.text(), "md5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tollgate_sign_edgeauth_tokens() {
    let s = setup().await;
    let key = tollgate::normalize::decode_hex(s.key.as_bytes()).unwrap();
    let exp = tollgate::auth::unix_now() + 60;
    let sign = |target: &str, acl: Option<&str>, salt: Option<&[u8]>| {
        tollgate::auth::kinds::edgeauth::sign_edgeauth(
            &key,
            &tollgate::auth::kinds::edgeauth::EdgeAuthSign {
                target,
                algorithm: tollgate::auth::kinds::edgeauth::Algorithm::Sha256,
                salt,
                token_name: "__token__",
                ip: Some("127.0.0.1"),
                start: None,
                exp,
                acl,
            },
        )
        .unwrap()
    };
    let acl = sign("/e/a.txt?w=1", Some("/e/*"), None);
    assert_eq!(s.http.get(&s.tg.url(&acl)).await.text(), "ea");
    s.logged("GET /e/a.txt?w=1");
    let url = sign("/p/x.txt", None, None);
    assert_eq!(s.http.get(&s.tg.url(&url)).await.text(), "px");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_field_uses_the_trusted_forwarded_address_only_when_trusted() {
    for (extra, trusted) in [("", false), ("trust_forwarded_headers: true", true)] {
        let s = setup_with(extra).await;
        let token = s.python(json!({"acl": "/e/*", "ip": "203.0.113.5"}));
        let url = s.tg.url(&format!("/e/a.txt?__token__={}", query_value(&token)));
        let r = s.http.get_with(&url, &[("x-forwarded-for", "203.0.113.5")]).await;
        assert_eq!(r.status == 200, trusted, "trusted: {trusted}: {}", r.text());
        if !trusted {
            assert_eq!(r.code(), "claim_mismatch");
        }
    }
}
