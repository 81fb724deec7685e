//! Cookie exchange (README: Cookies, CORS) in front of a real nginx: a navigation with a
//! URL credential lands on the clean URL with a cookie that grants exactly
//! what the URL granted; sub-resources are served directly; the cookie never
//! reaches nginx and grants nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Http, Nginx, Tollgate, sign, sign_path};

const NAVIGATE: [(&str, &str); 2] = [("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")];

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    secret: Vec<u8>,
    http: Http,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let nginx = Nginx::start(&[
        ("media/u1/page.html", b"<img src=img.svg>"),
        ("media/u1/img.svg", b"<svg/>"),
        ("media/u1/deep/x.txt", b"deep"),
        ("media/u10/x.txt", b"sibling"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    common::write_file(dir.path(), "cookie.key", &common::random_secret());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
  cookies: {{ hmac: {{ secret_file: cookie.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
routes:
  - name: media
    prefix: /media/
    upstream: nginx
    methods: [GET, HEAD, DELETE]
    auth:
      signed_url: {{ keys: [media], path_tokens: true }}
      cookie_exchange: {{ key: cookies }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { nginx, tg, secret, http: Http::h1(), _dir: dir }
}

/// `name=value` of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_navigation_is_exchanged_for_a_prefix_cookie() {
    let s = setup().await;
    let url = sign(&s.secret, "GET", "/media/u1/page.html?lang=en", 600, None, Some("/media/u1/"));
    let r = s.http.get_with(&s.tg.url(&url), &NAVIGATE).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/media/u1/page.html?lang=en"), "the clean URL, other params kept");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(set.starts_with("tg_grant_"), "{set}");
    for attr in ["; Path=/media/u1/;", "; HttpOnly", "; Secure", "; SameSite=Lax"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let max_age: u64 = set.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
    assert!((590..=600).contains(&max_age), "Max-Age {max_age} must not outlive the link");
    assert_eq!(s.nginx.line_count(), 0, "the exchange itself reaches nothing upstream");

    // The page and its relative image load through the cookie alone.
    let cookie = cookie_pair(&set);
    for (path, body) in [("/media/u1/page.html?lang=en", "<img src=img.svg>"), ("/media/u1/deep/x.txt", "deep")] {
        let r = s.http.get_with(&s.tg.url(path), &[("cookie", &cookie)]).await;
        assert_eq!((r.status, r.text().as_str()), (200, body), "{path}");
    }
    let log = s.nginx.access_log();
    assert!(log.contains("cookie=-|") || log.contains("cookie=|"), "the cookie reached nginx:\n{log}");
    assert!(!log.contains(cookie.split('=').nth(1).unwrap()), "{log}");

    // Nothing outside the prefix, no other method, no use as a URL signature.
    let r = s.http.get_with(&s.tg.url("/media/u10/x.txt"), &[("cookie", &cookie)]).await;
    assert_eq!((r.status, r.code().as_str()), (401, "missing_credential"));
    let r = s.http.send("DELETE", &s.tg.url("/media/u1/img.svg"), &[("cookie", &cookie)], bytes::Bytes::new()).await;
    assert_eq!((r.status, r.code().as_str()), (403, "wrong_method"));
    let value = cookie.split_once('=').unwrap().1;
    let (exp, sig) = (value.split('.').next().unwrap(), value.rsplit('.').next().unwrap());
    let forged = format!("/media/u1/img.svg?exp={exp}&prefix=%2Fmedia%2Fu1%2F&sig={sig}");
    let r = s.http.get(&s.tg.url(&forged)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "bad_signature"));
    let tampered = cookie.replacen(".p.", ".e.", 1);
    let r = s.http.get_with(&s.tg.url("/media/u1/img.svg"), &[("cookie", &tampered)]).await;
    assert_eq!(r.status, 401, "a tampered cookie that no longer covers the path is not a credential");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_resources_and_one_path_links_are_served_as_granted() {
    let s = setup().await;
    // An <img>, a fetch, a Range request: never redirected.
    let url = sign(&s.secret, "GET", "/media/u1/img.svg", 600, None, None);
    for headers in [vec![], vec![("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "image")]] {
        let r = s.http.get_with(&s.tg.url(&url), &headers).await;
        assert_eq!((r.status, r.text().as_str()), (200, "<svg/>"));
    }
    // A one-path link's cookie covers that path only.
    let r = s.http.get_with(&s.tg.url(&url), &NAVIGATE).await;
    assert_eq!(r.status, 303);
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(set.contains("; Path=/media/u1/img.svg;"), "{set}");
    let cookie = cookie_pair(&set);
    let r = s.http.get_with(&s.tg.url("/media/u1/img.svg"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200);
    let r = s.http.get_with(&s.tg.url("/media/u1/page.html"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 401);
    // A HEAD navigation is not exchanged; a path token is, for its prefix.
    let token_url = sign_path(&s.secret, "/media/u1/page.html", 600, Some("/media/u1/"));
    let r = s.http.get_with(&s.tg.url(&token_url), &NAVIGATE).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/media/u1/page.html")));
    assert!(r.header("set-cookie").unwrap().contains("; Path=/media/u1/;"));
    // A cookie next to a URL credential: the URL's credential decides.
    let both = s.http.get_with(&s.tg.url(&url), &[("cookie", &cookie)]).await;
    assert_eq!(both.status, 200);
}

/// A one-time or revocable link must not be exchangeable for a cookie that
/// carries no id: the configuration is refused, naming the field.
#[test]
fn cookie_exchange_with_use_limits_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "k.key", &common::random_secret());
    let metrics = std::sync::Arc::new(tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap());
    let yaml = r#"
keys: { k: { hmac: { secret_file: k.key } } }
upstreams: { u: { url: "http://127.0.0.1:1" } }
routes:
  - name: dl
    prefix: /dl/
    upstream: u
    auth: { signed_url: { keys: [k] }, cookie_exchange: { key: k }, use_limit: { uses: 1 } }
"#;
    let err = tollgate::config::compile_str(yaml, dir.path(), &metrics).err().unwrap().to_string();
    assert!(err.contains("routes[0].auth.cookie_exchange: cannot be combined with use_limit"), "{err}");
}
