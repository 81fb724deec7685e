//! CORS (README: Cookies, CORS) in front of a real nginx that sends CORS headers of its
//! own: preflights answered by tollgate and never forwarded, every answer to
//! a listed origin readable (refusals too), nothing for other origins, and
//! the upstream's headers replaced rather than doubled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Http, Nginx, Resp, Tollgate};

const APP: &str = "http://app.example:8080";

struct Setup {
    nginx: Nginx,
    tg: Tollgate,
    secret: Vec<u8>,
    http: Http,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    // nginx answers every origin with `*`, as a bucket or file server often does.
    let nginx = Nginx::start_with(
        &[("files/a.txt", b"private"), ("nocors/a.txt", b"plain")],
        r#"add_header Access-Control-Allow-Origin "*" always; add_header Vary "Accept-Encoding" always;"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "app.key", &secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  app: {{ hmac: {{ secret_file: app.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
routes:
  - name: files
    prefix: /files/
    upstream: nginx
    auth: {{ jwt: {{ keys: [app], from: [header] }} }}
    cors: {{ origins: ["{APP}"], max_age: 5m }}
  - {{ name: nocors, prefix: /nocors/, upstream: nginx, auth: {{ jwt: {{ keys: [app], from: [header] }} }} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { nginx, tg, secret, http: Http::h1(), _dir: dir }
}

fn cors_headers(r: &Resp) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("access-control-"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn preflight(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_without_a_credential_and_never_forwarded() {
    let s = setup().await;
    let r = s.http.send("OPTIONS", &s.tg.url("/files/a.txt"), &preflight(APP), bytes::Bytes::new()).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(r.header("access-control-allow-headers"), Some("authorization, range"));
    assert_eq!(r.header("access-control-max-age"), Some("300"));
    assert_eq!(r.header("vary"), Some("Origin"));

    let r =
        s.http.send("OPTIONS", &s.tg.url("/files/a.txt"), &preflight("http://evil.example"), bytes::Bytes::new()).await;
    assert_eq!(r.status, 204);
    assert!(cors_headers(&r).is_empty(), "{:?}", cors_headers(&r));

    // Without CORS rules a preflight is an ordinary request: refused.
    let r = s.http.send("OPTIONS", &s.tg.url("/nocors/a.txt"), &preflight(APP), bytes::Bytes::new()).await;
    assert_eq!(r.status, 405);
    assert_eq!(s.nginx.line_count(), 0, "a preflight reached nginx:\n{}", s.nginx.access_log());
    let m = common::metrics(&s.http.get(&s.tg.admin_url("/metrics")).await.text());
    assert_eq!(m[r#"tollgate_requests_total{outcome="answered",route="files"}"#], 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_a_listed_origin_are_readable_and_replace_the_upstreams() {
    let s = setup().await;
    let token = common::hs256(&s.secret, serde_json::json!({"sub": "alice"}));
    let bearer = format!("Bearer {token}");
    let r = s.http.get_with(&s.tg.url("/files/a.txt"), &[("origin", APP), ("authorization", &bearer)]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "private"));
    assert_eq!(r.headers.get_all("access-control-allow-origin").iter().collect::<Vec<_>>(), [APP]);
    assert_eq!(r.header("access-control-expose-headers"), Some("content-length, content-range, accept-ranges, etag"));
    let vary: Vec<_> = r.headers.get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);

    // A refusal carries the headers too, so the page can read the code.
    let r = s.http.get_with(&s.tg.url("/files/a.txt"), &[("origin", APP), ("authorization", "Bearer x.y.z")]).await;
    assert_eq!((r.status, r.code().as_str()), (401, "bad_signature"));
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));

    // Another origin gets no CORS header, not even the upstream's `*`.
    let r = s
        .http
        .get_with(&s.tg.url("/files/a.txt"), &[("origin", "http://evil.example"), ("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 200);
    assert!(cors_headers(&r).is_empty(), "{:?}", cors_headers(&r));
    let r = s.http.get_with(&s.tg.url("/files/a.txt"), &[("authorization", &bearer)]).await;
    assert!(cors_headers(&r).is_empty(), "{:?}", cors_headers(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_config_errors_name_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = std::sync::Arc::new(tollgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap());
    let yaml = r#"
upstreams: { u: { url: "http://127.0.0.1:1" } }
routes:
  - { name: a, prefix: /a/, upstream: u, auth: none, cors: { origins: ["*", "https://ok.example", "https://x.example/path"], headers: ["bad header"] } }
  - { name: b, prefix: /b/, upstream: u, auth: none, cors: { origins: [], credential: true } }
"#;
    let err = tollgate::config::compile_str(yaml, dir.path(), &metrics).err().unwrap().to_string();
    assert!(err.contains("routes[0].cors.origins[0]"), "{err}");
    assert!(err.contains("routes[0].cors.origins[2]"), "{err}");
    assert!(!err.contains("routes[0].cors.origins[1]"), "{err}");
    assert!(err.contains("routes[0].cors.headers[0]"), "{err}");
    assert!(err.contains("routes[1].cors") && err.contains("credential"), "{err}");
}
