//! Use-limited links and revocation across replicas (README: One-time and limited links): two
//! tollgate replicas in this process share one real `redis-server`, in
//! front of a real nginx. Every link is fired at both replicas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Http, Nginx, Tollgate, hs256};
use redis_server::Redis;
use serde_json::json;
use tollgate::auth::unix_now;

const FILE: &[u8] = b"0123456789abcdefghij";

/// An upstream that accepts connections and never answers.
fn silent_upstream() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    addr
}

/// The routes every test here uses; `{store}` is the `store.redis` entry.
fn config(nginx: &Nginx, store: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
workers: 2
log: {{ access_log: false }}
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  files: {{ url: "http://{nginx}" }}
  silent: {{ url: "http://{silent}" }}
store:
  redis: {{ {store}, timeout: 250ms }}
routes:
  - name: once
    prefix: /once/
    upstream: files
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      jwt: {{ keys: [media], from: [header, query], path_claim: path, max_lifetime: 1h }}
      use_limit: {{ uses: 1 }}
      revocation: true
  - name: grace
    prefix: /grace/
    upstream: files
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      jwt: {{ keys: [media], from: [header], max_lifetime: 1h }}
      use_limit: {{ uses: 1, grace: 3s }}
  - name: open
    prefix: /open/
    upstream: files
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      use_limit: {{ uses: 1, on_store_error: allow }}
  - name: plain
    prefix: /plain/
    upstream: files
    auth: {{ signed_url: {{ keys: [media] }} }}
  - name: silent
    prefix: /silent/
    upstream: silent
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      use_limit: {{ uses: 1 }}
"#,
        nginx = nginx.addr,
        silent = silent_upstream(),
    )
}

struct Setup {
    redis: Redis,
    _nginx: Nginx,
    a: Tollgate,
    b: Tollgate,
    secret: Vec<u8>,
    http: Arc<Http>,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let redis = Redis::start();
    let nginx = Nginx::start(&[
        ("once/file.txt", FILE),
        ("once/jwt.txt", FILE),
        ("grace/file.txt", FILE),
        ("open/file.txt", FILE),
        ("plain/file.txt", FILE),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    common::write_file(dir.path(), "redis.url", redis.url().as_bytes());
    // The CLI reads the same routes with the URL from the environment.
    common::write_file(dir.path(), "cli.yaml", config(&nginx, "url_env: TOLLGATE_REDIS_URL").as_bytes());
    let yaml = config(&nginx, "url_file: redis.url");
    let a = Tollgate::start(&yaml, dir.path()).await;
    let b = Tollgate::start(&yaml, dir.path()).await;
    Setup { redis, _nginx: nginx, a, b, secret, http: Arc::new(Http::h1()), dir }
}

impl Setup {
    fn link(&self, path: &str, jti: &str) -> String {
        let target = tollgate::tools::with_id(path, jti).unwrap();
        common::sign(&self.secret, "GET", &target, 600, None, None)
    }

    fn replica(&self, i: usize) -> &Tollgate {
        if i.is_multiple_of(2) { &self.a } else { &self.b }
    }

    /// Fires `n` requests at once, alternating replicas; returns the statuses.
    async fn fire(&self, n: usize, target: &str, headers: &[(&str, &str)]) -> Vec<u16> {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let (http, url) = (self.http.clone(), self.replica(i).url(target));
            let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            set.spawn(async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                http.get_with(&url, &h).await.status
            });
        }
        let mut statuses = Vec::new();
        while let Some(s) = set.join_next().await {
            statuses.push(s.unwrap());
        }
        statuses.sort_unstable();
        statuses
    }

    fn revoke(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("revoke")
            .arg("--config")
            .arg(self.dir.path().join("cli.yaml"))
            .args(args)
            .env("TOLLGATE_REDIS_URL", self.redis.url())
            .output()
            .unwrap();
        assert!(out.status.success(), "revoke failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn jwt(&self, claims: serde_json::Value) -> String {
        hs256(&self.secret, claims)
    }
}

fn metric(tg: &Tollgate, name: &str) -> f64 {
    common::metrics(&tg.metrics.render()).get(name).copied().unwrap_or(0.0)
}

fn first_uses(s: &Setup, route: &str) -> f64 {
    let name = format!(r#"tollgate_use_limit_total{{result="first_use",route="{route}"}}"#);
    metric(&s.a, &name) + metric(&s.b, &name)
}

/// One one-time link, fired 50 times at once at two replicas: exactly one
/// download, 49 × 410 `replayed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_signed_link_fired_at_two_replicas_succeeds_once() {
    let s = setup().await;
    let link = s.link("/once/file.txt", "order-1");
    let statuses = s.fire(50, &link, &[]).await;
    assert_eq!(statuses.iter().filter(|&&c| c == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&c| c == 410).count(), 49, "{statuses:?}");
    assert_eq!(first_uses(&s, "once"), 1.0);
    let again = s.http.get(&s.b.url(&link)).await;
    assert_eq!((again.status, again.code().as_str()), (410, "replayed"));
    // Another id cannot be swapped in (signed) or added (one id per link).
    let swapped = s.http.get(&s.a.url(&link.replace("jti=order-1", "jti=order-2"))).await;
    assert_eq!((swapped.status, swapped.code().as_str()), (403, "bad_signature"));
    let doubled = s.http.get(&s.a.url(&format!("{link}&jti=order-2"))).await;
    assert_eq!((doubled.status, doubled.code().as_str()), (400, "malformed"));
}

/// The same for a JWT carrying a `jti`, from the Authorization header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_jwt_fired_at_two_replicas_succeeds_once() {
    let s = setup().await;
    let token = s.jwt(json!({"jti": "jwt-1", "sub": "alice", "iat": unix_now(), "path": "/once/jwt.txt"}));
    let auth = format!("Bearer {token}");
    let statuses = s.fire(50, "/once/jwt.txt", &[("authorization", &auth)]).await;
    assert_eq!(statuses.iter().filter(|&&c| c == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&c| c == 410).count(), 49, "{statuses:?}");
    // The verdict cache holds the token's verification, never its use.
    let hits: f64 = [&s.a, &s.b].iter().map(|t| metric(t, r#"tollgate_verify_cache_total{result="hit"}"#)).sum();
    assert!(hits > 0.0, "the verdict cache answered some of them");
}

/// Inside the grace window, Range requests (at either replica) are the same
/// use; after it, the link is spent. HEAD never counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests_inside_the_grace_window_pass_then_410() {
    let s = setup().await;
    let link = s.link("/grace/file.txt", "grace-1");
    let token = s.jwt(json!({"jti": "grace-jwt", "iat": unix_now()}));
    let bearer = format!("Bearer {token}");
    for _ in 0..3 {
        let head = s.http.send("HEAD", &s.a.url(&link), &[], Default::default()).await;
        assert_eq!(head.status, 200, "HEAD looks, never counts");
    }
    let start = Instant::now();
    let first = s.http.get_with(&s.a.url(&link), &[("range", "bytes=0-4")]).await;
    assert_eq!((first.status, first.body.as_ref()), (206, &FILE[..5]));
    let by_jwt = s.http.get_with(&s.b.url("/grace/file.txt"), &[("authorization", &bearer)]).await;
    assert_eq!(by_jwt.status, 200);
    for (i, replica) in [&s.b, &s.a, &s.b].into_iter().enumerate() {
        let range = format!("bytes={}-{}", 5 * (i + 1), 5 * (i + 1) + 4);
        let r = s.http.get_with(&replica.url(&link), &[("range", &range)]).await;
        assert_eq!(r.status, 206, "resume {i} inside the window");
        let r = s.http.get_with(&replica.url("/grace/file.txt"), &[("authorization", &bearer)]).await;
        assert_eq!(r.status, 200, "JWT re-fetch {i} inside the window");
    }
    assert!(start.elapsed() < Duration::from_secs(3), "the window must still be open here");
    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(start.elapsed())).await;
    let late = s.http.get_with(&s.a.url(&link), &[("range", "bytes=0-4")]).await;
    assert_eq!((late.status, late.code().as_str()), (410, "replayed"));
    let late = s.http.get_with(&s.b.url("/grace/file.txt"), &[("authorization", &bearer)]).await;
    assert_eq!((late.status, late.code().as_str()), (410, "replayed"));
    let head = s.http.send("HEAD", &s.b.url(&link), &[], Default::default()).await;
    assert_eq!(head.status, 410, "HEAD sees a spent link");
    assert_eq!(first_uses(&s, "grace"), 2.0, "one use per credential");
}

/// A use whose answer is not a success is given back (the Lua give-back),
/// and a credential without an id is refused on a use-limited route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_answers_give_the_use_back() {
    let s = setup().await;
    let missing = s.link("/once/missing.txt", "gone-1");
    for replica in [&s.a, &s.b, &s.a] {
        assert_eq!(s.http.get(&replica.url(&missing)).await.status, 404, "404 is not a use");
    }
    let link = s.link("/once/file.txt", "after-404");
    assert_eq!(s.http.get(&s.a.url(&link)).await.status, 200);
    let no_id = common::sign(&s.secret, "GET", "/once/file.txt", 600, None, None);
    let r = s.http.get(&s.b.url(&no_id)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "claim_mismatch"));
    let given_back = r#"tollgate_use_limit_total{result="given_back",route="once"}"#;
    assert_eq!(metric(&s.a, given_back) + metric(&s.b, given_back), 3.0);
}

/// A client that leaves before the answer took no use: its use is given
/// back in Redis (the record's count returns to 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_the_answer_takes_no_use() {
    let s = setup().await;
    let link = s.link("/silent/file.txt", "left-early");
    let key = format!(
        "tollgate:{{{}}}:use:{}",
        tollgate::store::Digest::id("left-early").hex(),
        &tollgate::store::Digest::route("silent").hex()[..32]
    );
    let (http, url) = (s.http.clone(), s.a.url(&link));
    let request = tokio::spawn(async move { http.get(&url).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.redis.cli(&["hget", &key, "n"]).trim() != "1" {
        assert!(Instant::now() < deadline, "the use never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client leaves while the upstream is still silent.
    request.abort();
    assert!(request.await.is_err(), "the silent upstream answered");
    while s.redis.cli(&["hget", &key, "n"]).trim() != "0" {
        assert!(Instant::now() < deadline, "the use was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let name = r#"tollgate_use_limit_total{result="given_back",route="silent"}"#;
    assert_eq!(metric(&s.a, name), 1.0);
}

/// `tollgate revoke` (the binary, Redis URL from the environment) is
/// honoured by both replicas at once, for signed URLs and JWTs, by id and
/// by subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_written_by_the_cli_reach_both_replicas() {
    let s = setup().await;
    // On /plain/ nothing is checked: the same link keeps working there.
    let rev = s.link("/once/file.txt", "leaked-1");
    let issued = unix_now() - 10;
    let token = s.jwt(json!({"jti": "jwt-leak", "sub": "bob", "iat": issued, "path": "/once/*"}));
    let carol_old = s.jwt(json!({"jti": "c-1", "sub": "carol", "iat": issued, "path": "/once/*"}));
    let carol_new = s.jwt(json!({"jti": "c-2", "sub": "carol", "iat": unix_now() + 5, "path": "/once/*"}));

    let line = s.revoke(&["--jti", "leaked-1"]);
    assert!(line.contains("revoked until"), "{line}");
    s.revoke(&["--jti", "jwt-leak"]);
    s.revoke(&["--sub", "carol", "--before", &(issued + 5).to_string()]);
    for replica in [&s.a, &s.b] {
        let r = s.http.get(&replica.url(&rev)).await;
        assert_eq!((r.status, r.code().as_str()), (403, "revoked"));
        let r = s.http.get_with(&replica.url("/once/jwt.txt"), &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!((r.status, r.code().as_str()), (401, "revoked"));
        assert_eq!(r.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
        let q = s.http.get(&replica.url(&format!("/once/jwt.txt?token={carol_old}"))).await;
        assert_eq!((q.status, q.code().as_str()), (403, "revoked"), "issued before the subject's revocation");
    }
    let fresh = s.http.get(&s.b.url(&format!("/once/jwt.txt?token={carol_new}"))).await;
    assert_eq!(fresh.status, 200, "issued after it");
    // The revocation is not a use: the link was never downloaded.
    assert_eq!(first_uses(&s, "once"), 1.0);
    // Keys are digests: no id or subject appears in Redis.
    let keys = s.redis.cli(&["--scan", "--pattern", "*"]);
    for secret in ["leaked-1", "jwt-leak", "carol", "bob"] {
        assert!(!keys.contains(secret), "{secret} in {keys}");
    }
    assert!(keys.contains(":revoked"), "{keys}");
}

/// Redis killed mid-run: use-limited routes answer 503 `store_unavailable`
/// with Retry-After at once (not a hung request), routes without a store
/// keep serving, a fail-open route serves unchecked, `/readyz` reports the
/// store without taking the replica out; Redis back on the same port, the
/// routes recover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_closed_and_recovers() {
    let mut s = setup().await;
    let ready = s.http.get(&s.a.admin_url("/readyz")).await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\nstore: redis ok\n"));
    assert_eq!(s.http.get(&s.a.url(&s.link("/once/file.txt", "before"))).await.status, 200);

    s.redis.kill();
    for (i, replica) in [&s.a, &s.b, &s.a, &s.b].into_iter().enumerate() {
        let started = Instant::now();
        let r = s.http.get(&replica.url(&s.link("/once/file.txt", &format!("down-{i}")))).await;
        assert_eq!((r.status, r.code().as_str()), (503, "store_unavailable"));
        assert_eq!(r.header("retry-after"), Some("5"));
        // Bounded by the 250ms store timeout; the bound here only tells a
        // hung request from an answered one.
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        let plain = common::sign(&s.secret, "GET", "/plain/file.txt", 600, None, None);
        assert_eq!(s.http.get(&replica.url(&plain)).await.status, 200, "routes without a store serve");
        let open = s.http.get(&replica.url(&s.link("/open/file.txt", &format!("open-{i}")))).await;
        assert_eq!(open.status, 200, "fail open serves unchecked");
    }
    let ready = s.http.get(&s.b.admin_url("/readyz")).await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\nstore: redis unreachable\n"));
    for (name, at_least) in [
        (r#"tollgate_use_limit_total{result="fail_closed",route="once"}"#, 4.0),
        (r#"tollgate_use_limit_total{result="fail_open",route="open"}"#, 4.0),
        (r#"tollgate_store_errors_total{op="admit"}"#, 8.0),
        (r#"tollgate_auth_denied_total{reason="store_unavailable",route="once"}"#, 4.0),
    ] {
        assert!(metric(&s.a, name) + metric(&s.b, name) >= at_least, "{name}");
    }

    s.redis.restart();
    for replica in [&s.a, &s.b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        loop {
            n += 1;
            let r = s.http.get(&replica.url(&s.link("/once/file.txt", &format!("back-{n}")))).await;
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503);
            assert!(Instant::now() < deadline, "no recovery after Redis came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let spent = s.link("/once/file.txt", "after-restart");
    assert_eq!(s.fire(10, &spent, &[]).await.iter().filter(|&&c| c == 200).count(), 1);
}

/// `tollgate revoke` refuses to write what no route would read.
#[test]
fn revoke_without_a_revocation_route_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "k", &common::random_secret());
    let yaml = "keys: { k: { hmac: { secret_file: k } } }\nupstreams: { u: { url: \"http://127.0.0.1:9\" } }\n\
                routes: [ { name: r, prefix: /r/, upstream: u, auth: { signed_url: { keys: [k] } } } ]\n";
    let path = common::write_file(dir.path(), "t.yaml", yaml.as_bytes());
    let out =
        Command::new(env!("CARGO_BIN_EXE_tollgate")).args(["revoke", "--jti", "x", "--config"]).arg(&path).output();
    let out = out.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no route checks revocations"));
}

// The memory store: the same semantics on one replica, revocations through
// the file that `tollgate revoke` writes.

struct Single {
    _nginx: Nginx,
    tg: Tollgate,
    secret: Vec<u8>,
    http: Http,
    dir: tempfile::TempDir,
}

async fn single() -> Single {
    let nginx = Nginx::start(&[("m/file.txt", FILE), ("g/file.txt", FILE)]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
log: {{ access_log: false }}
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  files: {{ url: "http://{nginx}" }}
  dead: {{ url: "http://127.0.0.1:{dead}", connect_timeout: 1s }}
store:
  memory: {{ revocations_file: revocations }}
routes:
  - name: m
    prefix: /m/
    upstream: files
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      jwt: {{ keys: [media], from: [header], max_lifetime: 1h }}
      use_limit: {{ uses: 2 }}
      revocation: true
  - name: g
    prefix: /g/
    upstream: files
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      use_limit: {{ uses: 1, grace: 1s }}
  - name: dead
    prefix: /dead/
    upstream: dead
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      use_limit: {{ uses: 1 }}
"#,
        nginx = nginx.addr,
        dead = common::free_port(),
    );
    let path = common::write_file(dir.path(), "tollgate.yaml", yaml.as_bytes());
    let tg = Tollgate::start(&std::fs::read_to_string(path).unwrap(), dir.path()).await;
    Single { _nginx: nginx, tg, secret, http: Http::h1(), dir }
}

impl Single {
    fn link(&self, path: &str, jti: &str) -> String {
        common::sign(&self.secret, "GET", &tollgate::tools::with_id(path, jti).unwrap(), 600, None, None)
    }
}

/// Two uses allowed: 30 requests at once get exactly two 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_counts_concurrent_uses_exactly() {
    let s = single().await;
    let url = s.tg.url(&s.link("/m/file.txt", "mem-1"));
    let http = Arc::new(Http::h1());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (http, url) = (http.clone(), url.clone());
        set.spawn(async move { http.get(&url).await.status });
    }
    let mut statuses = Vec::new();
    while let Some(status) = set.join_next().await {
        statuses.push(status.unwrap());
    }
    assert_eq!(statuses.iter().filter(|&&c| c == 200).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&c| c == 410).count(), 28, "{statuses:?}");
}

/// HEAD never counts; a failed upstream gives the use back; Range inside
/// the grace window is the same use, after it the link is spent; a JWT
/// without `jti` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_head_failures_and_grace() {
    let s = single().await;
    let link = s.tg.url(&s.link("/m/file.txt", "mem-2"));
    for _ in 0..3 {
        assert_eq!(s.http.send("HEAD", &link, &[], Default::default()).await.status, 200);
    }
    assert_eq!(s.http.get(&link).await.status, 200);
    assert_eq!(s.http.get(&link).await.status, 200);
    let spent = s.http.get(&link).await;
    assert_eq!((spent.status, spent.code().as_str()), (410, "replayed"));

    let dead = s.tg.url(&s.link("/dead/file.txt", "mem-dead"));
    for _ in 0..3 {
        assert_eq!(s.http.get(&dead).await.status, 502, "an upstream failure is never a use");
    }

    let no_jti = hs256(&s.secret, json!({"sub": "x", "iat": unix_now()}));
    let r = s.http.get_with(&s.tg.url("/m/file.txt"), &[("authorization", &format!("Bearer {no_jti}"))]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "claim_mismatch"));

    let grace = s.tg.url(&s.link("/g/file.txt", "mem-grace"));
    let start = Instant::now();
    assert_eq!(s.http.get_with(&grace, &[("range", "bytes=0-9")]).await.status, 206);
    assert_eq!(s.http.get_with(&grace, &[("range", "bytes=10-")]).await.status, 206);
    assert!(start.elapsed() < Duration::from_secs(1), "the window must still be open here");
    tokio::time::sleep(Duration::from_millis(1200).saturating_sub(start.elapsed())).await;
    assert_eq!(s.http.get_with(&grace, &[("range", "bytes=10-")]).await.status, 410);
    let m = common::metrics(&s.tg.metrics.render());
    assert_eq!(m[r#"tollgate_use_limit_total{result="given_back",route="dead"}"#], 3.0);
    assert_eq!(m[r#"tollgate_use_limit_total{result="not_counted",route="m"}"#], 3.0);
    assert_eq!(m[r#"tollgate_use_limit_total{result="same_use",route="g"}"#], 1.0);
}

/// `tollgate revoke` writes the revocations file; the running process
/// picks it up (no write endpoint anywhere), by id and by subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_reads_revocations_written_by_the_cli() {
    let s = single().await;
    let link = s.tg.url(&s.link("/m/file.txt", "mem-leak"));
    let bob = hs256(&s.secret, json!({"jti": "bob-1", "sub": "bob", "iat": unix_now() - 5}));
    assert_eq!(s.http.get(&link).await.status, 200);
    for args in [&["--jti", "mem-leak"][..], &["--sub", "bob"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("revoke")
            .arg("--config")
            .arg(s.dir.path().join("tollgate.yaml"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let file = std::fs::read_to_string(s.dir.path().join("revocations")).unwrap();
    assert!(!file.contains("mem-leak") && !file.contains("bob"), "digests only:\n{file}");
    let deadline = Instant::now() + Duration::from_secs(5);
    // HEAD looks without using the link up while the file is being read.
    while s.http.send("HEAD", &link, &[], Default::default()).await.status == 200 {
        assert!(Instant::now() < deadline, "the revocation was never read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = s.http.get(&link).await;
    assert_eq!((r.status, r.code().as_str()), (403, "revoked"));
    let r = s.http.get_with(&s.tg.url("/m/file.txt"), &[("authorization", &format!("Bearer {bob}"))]).await;
    assert_eq!((r.status, r.code().as_str()), (401, "revoked"));
}

/// `tollgate explain` runs the admit phase as the proxy does, read-only:
/// the id rule, a revocation, a spent link, an unreachable store (503), and
/// explaining a link never takes its use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_the_store_without_taking_a_use() {
    let mut s = setup().await;
    let explain = |s: &Setup, target: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("explain")
            .arg("--config")
            .arg(s.dir.path().join("cli.yaml"))
            .arg(target)
            .env("TOLLGATE_REDIS_URL", s.redis.url())
            .output()
            .unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
    };
    let link = s.link("/once/file.txt", "explained-1");
    for _ in 0..2 {
        let (code, text) = explain(&s, &link);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("admit        ok   use limit (1 use(s)"), "{text}");
    }
    assert_eq!(s.http.get(&s.a.url(&link)).await.status, 200, "explain took the link's only use");
    let (code, text) = explain(&s, &link);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("admit        FAIL") && text.contains("uses are spent"), "{text}");
    assert!(text.contains("result       refused: 410 replayed"), "{text}");

    let revoked = s.link("/once/file.txt", "explained-2");
    s.revoke(&["--jti", "explained-2"]);
    let (_, text) = explain(&s, &revoked);
    assert!(text.contains("result       refused: 403 revoked"), "{text}");

    let no_id = common::sign(&s.secret, "GET", "/once/file.txt", 600, None, None);
    let (_, text) = explain(&s, &no_id);
    assert!(text.contains("id           FAIL") && text.contains("no id to count"), "{text}");
    assert!(text.contains("result       refused: 403 claim_mismatch"), "{text}");

    s.redis.kill();
    let fresh = s.link("/once/file.txt", "explained-3");
    let (code, text) = explain(&s, &fresh);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cannot be reached"), "{text}");
    assert!(text.contains("result       refused: 503 store_unavailable"), "{text}");
}
