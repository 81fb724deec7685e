//! JWKS URLs against an identity-provider stand-in on loopback: readiness
//! waits for the first fetch, rotation is picked up on an unknown kid, an
//! outage keeps the last good keys, and a storm of random kids causes only a
//! handful of fetches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use common::{Http, Nginx, Tollgate};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

/// A JWKS endpoint whose answer the test controls.
#[derive(Clone)]
struct Idp {
    state: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
    addr: std::net::SocketAddr,
}

impl Idp {
    async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Idp {
            state: Arc::new(Mutex::new((503, String::new()))),
            hits: Arc::new(AtomicUsize::new(0)),
            addr: listener.local_addr().unwrap(),
        };
        let server = idp.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let s = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        s.hits.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = s.state.lock().unwrap().clone();
                        async move {
                            let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        idp
    }

    fn serve(&self, status: u16, body: String) {
        *self.state.lock().unwrap() = (status, body);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn secret(kid: &str) -> Vec<u8> {
    format!("test-only-jwks-secret-for-{kid}-0123456789abcdef").into_bytes()
}

fn jwks(kids: &[&str]) -> String {
    let keys: Vec<_> = kids
        .iter()
        .map(|kid| {
            json!({"kty": "oct", "kid": kid, "alg": "HS256",
                   "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret(kid))})
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

fn token(kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    let claims = json!({"sub": "u", "exp": tollgate::auth::unix_now() + 300});
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&secret(kid))).unwrap()
}

async fn start(idp: &Idp, nginx: &Nginx, cooldown: &str) -> (Tollgate, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  idp: {{ jwks_url: "http://{idp}/certs", refresh: 1h, refetch_cooldown: {cooldown} }}
upstreams: {{ n: {{ url: "http://{nginx}" }} }}
routes: [ {{ name: p, prefix: /p/, upstream: n, auth: {{ jwt: {{ keys: [idp] }} }} }} ]
log: {{ access_log: false }}
"#,
        idp = idp.addr,
        nginx = nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    (tg, dir)
}

async fn status(http: &Http, tg: &Tollgate, token: &str) -> u16 {
    http.get_with(&tg.url("/p/a.txt"), &[("authorization", &format!("Bearer {token}"))]).await.status
}

async fn wait_ready(http: &Http, tg: &Tollgate) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(&tg.admin_url("/readyz")).await.status != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_rotation_and_outage() {
    let nginx = Nginx::start(&[("p/a.txt", b"a")]);
    let idp = Idp::start().await;
    let (tg, _dir) = start(&idp, &nginx, "1s").await;
    let http = Http::h1();

    // Not ready while the identity provider fails.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(http.get(&tg.admin_url("/readyz")).await.status, 503);
    assert_eq!(status(&http, &tg, &token("k1")).await, 401);
    idp.serve(200, jwks(&["k1"]));
    wait_ready(&http, &tg).await;
    assert_eq!(status(&http, &tg, &token("k1")).await, 200);

    // Rotation: the first token with the new kid triggers a refetch and
    // passes; the old kid is gone with its cached verdict.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.serve(200, jwks(&["k2"]));
    assert_eq!(status(&http, &tg, &token("k2")).await, 200);
    assert_eq!(status(&http, &tg, &token("k1")).await, 401, "a dropped key must stop working at once");

    // Outage: fetches fail, the last good keys keep working.
    idp.serve(500, "down".into());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = idp.hits();
    assert_eq!(status(&http, &tg, &token("k-unknown")).await, 401);
    assert!(idp.hits() > before, "an unknown kid should have triggered a refetch");
    assert_eq!(status(&http, &tg, &token("k2")).await, 200);
    assert_eq!(http.get(&tg.admin_url("/readyz")).await.status, 200);

    let m = common::metrics(&http.get(&tg.admin_url("/metrics")).await.text());
    assert!(m[r#"tollgate_jwks_fetches_total{keyset="idp",result="error"}"#] >= 1.0);
    assert!(m[r#"tollgate_jwks_fetches_total{keyset="idp",result="ok"}"#] >= 2.0);
    assert!(m[r#"tollgate_jwks_last_success_timestamp_seconds{keyset="idp"}"#] > 1.0e9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_unknown_kids_causes_a_handful_of_fetches() {
    let nginx = Nginx::start(&[("p/a.txt", b"a")]);
    let idp = Idp::start().await;
    idp.serve(200, jwks(&["good"]));
    let (tg, _dir) = start(&idp, &nginx, "30s").await;
    let http = Arc::new(Http::h1());
    wait_ready(&http, &tg).await;
    let before = idp.hits();

    let url = tg.url("/p/a.txt");
    let mut tasks = Vec::new();
    for worker in 0..50 {
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..200 {
                let t = token(&format!("random-{worker}-{i}"));
                let r = http.get_with(&url, &[("authorization", &format!("Bearer {t}"))]).await;
                refused += usize::from(r.status == 401);
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap();
    }
    assert_eq!(refused, 10_000);
    let fetches = idp.hits() - before;
    assert!(fetches <= 3, "10 000 unknown kids caused {fetches} JWKS fetches");
    assert_eq!(status(&http, &tg, &token("good")).await, 200);
}
