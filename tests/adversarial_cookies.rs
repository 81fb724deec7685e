//! Exchanged cookies (README: Cookies, CORS) tried from outside: a cookie opens exactly
//! the route and the scope of the link it replaced, never a neighbour that
//! shares its key; it dies with the key that verified that link; and a
//! navigation inside a token's leeway lands on the file, not on a cookie
//! that has already expired. In front of a real nginx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Http, Nginx, Tollgate};
use serde_json::json;

const NAVIGATE: [(&str, &str); 2] = [("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")];

const FILES: &[(&str, &[u8])] = &[("docs/u1/a.txt", b"a"), ("docs/u1/admin/x.txt", b"admin"), ("rep/x.txt", b"rep")];

fn keys(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let (media, m2) = (common::random_secret(), common::random_secret());
    common::write_file(dir, "media.key", &media);
    common::write_file(dir, "m2.key", &m2);
    for name in ["ck.key", "ck2.key", "ck3.key"] {
        common::write_file(dir, name, &common::random_secret());
    }
    (media, m2)
}

const KEYS: &str = r#"
keys:
  media: { hmac: { secret_file: media.key } }
  m2: { hmac: { secret_file: m2.key } }
  ck: { hmac: { secret_file: ck.key } }
  ck2: { hmac: { secret_file: ck2.key } }
  ck3: { hmac: { secret_file: ck3.key } }
  same-as-media: { hmac: { secret_file: media.key } }
"#;

fn compile_errors(yaml: &str, dir: &std::path::Path) -> Vec<String> {
    let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
    match tollgate::config::compile_str(yaml, dir, &metrics) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Row 1: a prefix link for `/docs/u1/` signed with `media`, exchanged for
/// a cookie, opened `/docs/u1/admin/`, a nested route that accepts only
/// `m2` but had the same cookie key. One cookie key on two routes is now
/// refused when the configuration is compiled, naming both.
#[test]
fn a_cookie_key_shared_by_two_routes_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let yaml = format!(
        r#"{KEYS}
upstreams: {{ n: {{ url: "http://127.0.0.1:9" }} }}
routes:
  - {{ name: docs, prefix: /docs/, upstream: n, auth: {{ signed_url: {{ keys: [media] }}, cookie_exchange: {{ key: ck }} }} }}
  - {{ name: admin, prefix: /docs/u1/admin/, upstream: n, auth: {{ signed_url: {{ keys: [m2] }}, cookie_exchange: {{ key: ck }} }} }}
"#
    );
    let errors = compile_errors(&yaml, dir.path());
    assert!(
        errors.iter().any(|e| e.starts_with("routes[1].auth.cookie_exchange.key: ")
            && e.contains("routes[0]")
            && e.contains("a cookie key of its own")),
        "{errors:#?}"
    );
}

/// Row 1's cause, the other half: `cookie_exchange: {key: media}` reused
/// the URL key, and a second name for the same secret hid it.
#[test]
fn a_cookie_key_used_for_anything_else_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    for (cookie_key, why) in [("media", "also verifies"), ("same-as-media", "same secret as key \"media\"")] {
        let yaml = format!(
            r#"{KEYS}
upstreams: {{ n: {{ url: "http://127.0.0.1:9" }} }}
routes:
  - {{ name: docs, prefix: /docs/, upstream: n, auth: {{ signed_url: {{ keys: [media] }}, cookie_exchange: {{ key: {cookie_key} }} }} }}
"#
        );
        let errors = compile_errors(&yaml, dir.path());
        assert!(
            errors.iter().any(|e| e.starts_with("routes[0].auth.cookie_exchange.key: ") && e.contains(why)),
            "{cookie_key}: {errors:#?}"
        );
    }
}

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    media: Vec<u8>,
    m2: Vec<u8>,
    http: Http,
    dir: tempfile::TempDir,
}

fn routes(upstream: std::net::SocketAddr, docs_keys: &str) -> String {
    format!(
        r#"{KEYS}
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: {{ n: {{ url: "http://{upstream}" }} }}
routes:
  - name: docs
    prefix: /docs/
    upstream: n
    auth:
      signed_url: {{ keys: [{docs_keys}] }}
      jwt: {{ keys: [media], from: [query], path_claim: path, leeway: 30s }}
      cookie_exchange: {{ key: ck }}
  - name: admin
    prefix: /docs/u1/admin/
    upstream: n
    auth: {{ signed_url: {{ keys: [m2] }}, cookie_exchange: {{ key: ck2 }} }}
  - name: rep
    prefix: /rep/
    upstream: n
    auth: {{ signed_url: {{ keys: [m2] }}, cookie_exchange: {{ key: ck3 }} }}
log: {{ access_log: false }}
"#
    )
}

async fn setup() -> Setup {
    let nginx = Nginx::start(FILES);
    let dir = tempfile::tempdir().unwrap();
    let (media, m2) = keys(dir.path());
    let tg = Tollgate::start(&routes(nginx.addr, "media, m2"), dir.path()).await;
    Setup { nginx, tg, media, m2, http: Http::h1(), dir }
}

impl Setup {
    async fn exchange(&self, url: &str) -> String {
        let r = self.http.get_with(&self.tg.url(url), &NAVIGATE).await;
        assert_eq!(r.status, 303, "{url}: {}", r.text());
        r.header("set-cookie").unwrap().to_owned()
    }

    async fn with_cookie(&self, path: &str, cookie: &str) -> (u16, String) {
        let r = self.http.get_with(&self.tg.url(path), &[("cookie", cookie)]).await;
        (r.status, r.text())
    }
}

/// Row 2: a query JWT whose path claim is `/*`, exchanged on `/docs/`, got
/// a cookie for `Path=/`: every route of the host received it. Its scope
/// is now clipped to the route that minted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_token_is_exchanged_for_a_cookie_of_its_route_only() {
    let s = setup().await;
    let token = common::hs256(&s.media, json!({"path": "/*"}));
    let set = s.exchange(&format!("/docs/u1/a.txt?token={token}")).await;
    assert!(set.contains("; Path=/docs/;"), "the cookie's scope is the route's prefix: {set}");
    let cookie = cookie_pair(&set);
    assert_eq!(s.with_cookie("/docs/u1/a.txt", &cookie).await, (200, "a".to_owned()));
    for other in ["/rep/x.txt", "/docs/u1/admin/x.txt"] {
        let (status, _) = s.with_cookie(other, &cookie).await;
        assert_eq!(status, 401, "{other} opened with /docs/'s cookie");
    }
}

/// A cookie names the key that verified its link: when that key leaves the
/// route (a rotation, a leak), the cookies it minted stop working too,
/// while those of the route's other keys keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_dies_with_the_key_that_verified_its_link() {
    let s = setup().await;
    let by_media = cookie_pair(
        &s.exchange(&common::sign(&s.media, "GET", "/docs/u1/a.txt", 600, Some("media"), Some("/docs/u1/"))).await,
    );
    let by_m2 =
        cookie_pair(&s.exchange(&common::sign(&s.m2, "GET", "/docs/u1/a.txt", 600, Some("m2"), Some("/docs/"))).await);
    assert_eq!(s.with_cookie("/docs/u1/a.txt", &by_media).await.0, 200);
    assert_eq!(s.with_cookie("/docs/u1/a.txt", &by_m2).await.0, 200);

    let metrics = tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
    let rotated = tollgate::config::compile_str(&routes(s.nginx.addr, "m2"), s.dir.path(), &metrics).unwrap();
    s.tg.handle.swap(rotated);
    let (status, body) = s.with_cookie("/docs/u1/a.txt", &by_media).await;
    assert_eq!(status, 403, "a cookie minted by a key the route dropped: {body}");
    assert_eq!(s.with_cookie("/docs/u1/a.txt", &by_m2).await.0, 200);
}

/// Row 7: a JWT inside its leeway (exp = now - 10, leeway 30 s) as a
/// navigation got a 303 and a cookie of `Max-Age=0`: the user landed on a
/// refusal. It is now served as the sub-resource is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_navigation_inside_the_leeway_is_served_not_exchanged() {
    let s = setup().await;
    let exp = tollgate::auth::unix_now() - 10;
    let token = common::hs256(&s.media, json!({"path": "/docs/u1/a.txt", "exp": exp}));
    let r = s.http.get_with(&s.tg.url(&format!("/docs/u1/a.txt?token={token}")), &NAVIGATE).await;
    assert_eq!((r.status, r.text().as_str()), (200, "a"), "{:?}", r.headers);
    assert!(r.header("set-cookie").is_none());
}
