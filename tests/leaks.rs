//! Leaked links (README: Leaked links): share detection across two
//! replicas sharing a real redis-server, from distinct client networks
//! (client sockets bound to other loopback addresses, and a trusted
//! `X-Forwarded-For`), report-only rollout, the store down, and the
//! download records the replicas write. No log line or record holds a
//! credential.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::net::IpAddr;

use common::serve::Serve;
use common::{Http, Nginx, sign_path};
use redis_server::Redis;
use serde_json::Value;

const FILE: &[u8] = b"a private video segment";

struct Setup {
    redis: Redis,
    nginx: Nginx,
    replicas: [Serve; 2],
    secret: Vec<u8>,
    _dir: tempfile::TempDir,
}

/// Two replicas of one config: `/v/` has `share_limit` with `share` as
/// its fields and records downloads; `/plain/` has neither.
fn setup(share: &str, trust_forwarded: bool) -> Setup {
    setup_auth(&format!("share_limit: {{ {share} }}"), trust_forwarded)
}

/// A megabyte nginx sends at 100 KB/s: a download that stays in flight.
const SLOW: &str = "location /v/u1/slow/ { limit_rate 100k; }";

/// [`setup`] with `auth_extra` as the `/v/` route's rules beside its
/// signed URLs.
fn setup_auth(auth_extra: &str, trust_forwarded: bool) -> Setup {
    let redis = Redis::start();
    let big = vec![b'x'; 1 << 20];
    let nginx =
        Nginx::start_with(&[("v/u1/seg.ts", FILE), ("v/u1/slow/big.bin", &big), ("plain/a.txt", b"plain")], SLOW);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    common::write_file(dir.path(), "redis.url", redis.url().as_bytes());
    let replicas = [0, 1].map(|i| {
        let path = dir.path().join(format!("replica-{i}.yaml"));
        Serve::start(&path, |proxy, admin| {
            format!(
                r#"
listen: 127.0.0.1:{proxy}
admin: 127.0.0.1:{admin}
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  files: {{ url: "http://{nginx}" }}
store:
  redis: {{ url_file: redis.url, timeout: 200ms }}
trust_forwarded_headers: {trust_forwarded}
log: {{ format: json }}
routes:
  - name: video
    prefix: /v/
    upstream: files
    download_records: true
    auth:
      signed_url: {{ keys: [media], path_tokens: true, max_ttl: 1h }}
      {auth_extra}
  - name: plain
    prefix: /plain/
    upstream: files
    auth: {{ signed_url: {{ keys: [media] }} }}
"#,
                nginx = nginx.addr
            )
        })
    });
    Setup { redis, nginx, replicas, secret, _dir: dir }
}

impl Setup {
    /// GET `target` on replica `i % 2` from client address `from`.
    async fn get_from(&self, i: usize, from: &str, target: &str, headers: &[(&str, &str)]) -> common::Resp {
        let http = Http::h1_from(from.parse::<IpAddr>().unwrap());
        http.get_with(&self.replicas[i % 2].url(target), headers).await
    }

    /// The replicas' log lines on `target`, as JSON.
    fn lines(&self, target: &str) -> Vec<Value> {
        self.replicas
            .iter()
            .flat_map(|r| r.logs().lines().map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter(|v| v["target"] == target)
            .collect()
    }

    /// The sum over both replicas of one metric.
    async fn metric(&self, name: &str) -> f64 {
        let http = Http::h1();
        let mut sum = 0.0;
        for r in &self.replicas {
            sum += r.metric(&http, name).await;
        }
        sum
    }

    /// Waits until `n` download records have been written (bodies end after
    /// the client read them; the record follows).
    async fn records(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let records = self.lines("tollgate::download");
            if records.len() >= n || std::time::Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The issue's run: a link used from 5 networks with `max_networks: 3` is
/// refused from the 4th on, on either replica; the first networks keep
/// working; every answered download has a record naming the credential by
/// digest, never by its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_used_from_five_networks_is_refused_from_the_fourth() {
    let s = setup("max_networks: 3", false);
    let link = sign_path(&s.secret, "/v/u1/seg.ts", 600, Some("/v/u1/"));
    let token = link.split('/').find(|p| p.starts_with("tg~")).unwrap().to_owned();
    let mut answers = Vec::new();
    for (i, from) in ["127.0.1.2", "127.0.2.2", "127.0.3.2", "127.0.4.2", "127.0.5.2"].iter().enumerate() {
        let r = s.get_from(i, from, &link, &[]).await;
        answers.push((from.to_string(), r.status, r.code()));
    }
    for (from, status, code) in &answers {
        eprintln!("{from}: {status} {code}");
    }
    let codes: Vec<(u16, &str)> = answers.iter().map(|(_, s, c)| (*s, c.as_str())).collect();
    assert_eq!(codes, vec![(200, ""), (200, ""), (200, ""), (403, "shared"), (403, "shared")], "{answers:?}");
    // The first networks keep working (another address in the first /24).
    assert_eq!(s.get_from(1, "127.0.1.77", &link, &[]).await.status, 200);
    assert_eq!(s.metric(r#"tollgate_shared_credentials_total{mode="refused",route="video"}"#).await, 2.0);
    assert_eq!(s.metric(r#"tollgate_auth_denied_total{reason="shared",route="video"}"#).await, 2.0);

    let records = s.records(4).await;
    for r in &records {
        eprintln!("{r}");
    }
    assert_eq!(records.len(), 4, "one record per answered download: {records:#?}");
    let credential = records[0]["credential"].as_str().unwrap().to_owned();
    assert!(credential.starts_with("digest:"), "{credential}");
    for r in &records {
        let f = r;
        assert_eq!(f["credential"], credential.as_str(), "one credential: {r}");
        assert_eq!((f["status"].as_u64(), f["bytes"].as_u64()), (Some(200), Some(FILE.len() as u64)), "{r}");
        assert_eq!(f["complete"], true, "{r}");
        assert_eq!(f["route"], "video");
    }
    let clients: Vec<&str> = records.iter().map(|r| r["client"].as_str().unwrap()).collect();
    for from in ["127.0.1.2", "127.0.2.2", "127.0.3.2", "127.0.1.77"] {
        assert!(clients.contains(&from), "{from} not recorded: {clients:?}");
    }
    let shared = s.lines("tollgate::proxy::admit");
    assert_eq!(shared.len(), 2, "one warning per refused network: {shared:#?}");
    assert_eq!(shared[0]["credential"], credential.as_str());

    let logs: String = s.replicas.iter().map(|r| r.logs()).collect::<Vec<_>>().join("\n");
    let sig = token.rsplit('~').next().unwrap();
    assert!(!logs.contains(sig), "the credential reached tollgate's logs");
    let nginx = s.nginx.settled_log();
    assert!(!nginx.contains(sig) && !nginx.contains("tg~"), "the credential reached nginx:\n{nginx}");
}

/// Behind a trusted proxy, the network is the `X-Forwarded-For` address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_come_from_a_trusted_forwarded_for() {
    let s = setup("max_networks: 1", true);
    let link = sign_path(&s.secret, "/v/u1/seg.ts", 600, Some("/v/u1/"));
    let via = |addr: &'static str| [("x-forwarded-for", addr)];
    assert_eq!(s.get_from(0, "127.0.0.1", &link, &via("203.0.113.7")).await.status, 200);
    assert_eq!(s.get_from(1, "127.0.0.1", &link, &via("203.0.113.99")).await.status, 200, "same /24");
    let r = s.get_from(0, "127.0.0.1", &link, &via("198.51.100.7")).await;
    assert_eq!((r.status, r.code().as_str()), (403, "shared"));
}

/// Report-only: the network past the limit is served, counted and logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_serves_and_counts_what_it_would_refuse() {
    let s = setup("max_networks: 1, report_only: true", false);
    let link = sign_path(&s.secret, "/v/u1/seg.ts", 600, Some("/v/u1/"));
    assert_eq!(s.get_from(0, "127.0.1.2", &link, &[]).await.status, 200);
    assert_eq!(s.get_from(1, "127.0.2.2", &link, &[]).await.status, 200);
    assert_eq!(s.get_from(0, "127.0.3.2", &link, &[]).await.status, 200);
    assert_eq!(s.metric(r#"tollgate_shared_credentials_total{mode="reported",route="video"}"#).await, 2.0);
    assert_eq!(s.metric(r#"tollgate_shared_credentials_total{mode="refused",route="video"}"#).await, 0.0);
    let warned = s.lines("tollgate::proxy::admit");
    assert!(warned.len() == 2 && warned.iter().all(|w| w["report_only"] == true), "{warned:#?}");
}

/// With the store down the route fails closed (503) and says so; a route
/// without share detection keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_fails_closed_and_other_routes_stay_up() {
    let mut s = setup("max_networks: 3", false);
    let link = sign_path(&s.secret, "/v/u1/seg.ts", 600, Some("/v/u1/"));
    assert_eq!(s.get_from(0, "127.0.1.2", &link, &[]).await.status, 200);
    s.redis.kill();
    let r = s.get_from(1, "127.0.1.2", &link, &[]).await;
    assert_eq!((r.status, r.code().as_str()), (503, "store_unavailable"));
    let plain = common::sign(&s.secret, "GET", "/plain/a.txt", 600, None, None);
    assert_eq!(s.get_from(0, "127.0.1.2", &plain, &[]).await.status, 200);
}

/// Starts a download on replica `i` and reads only its head: the answer
/// stays in flight (nginx sends the rest slowly) until the socket is dropped.
async fn hold_download(s: &Setup, i: usize, target: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(s.replicas[i].proxy).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: files.example\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 512];
    let n = socket.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    socket
}

/// Polls `target` on replica `i` until it is answered 200 (within 5 s);
/// the small file under the same token: the same credential.
async fn until_served(s: &Setup, i: usize, target: &str) {
    let target = &target.replace("slow/big.bin", "seg.ts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let http = Http::h1();
    loop {
        let r = http.get(&s.replicas[i].url(target)).await;
        if r.status == 200 {
            return;
        }
        assert_eq!((r.status, r.code().as_str()), (429, "too_many_streams"));
        assert!(std::time::Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One download at a time across both replicas: a second one is answered
/// 429 with `Retry-After` while the first is in flight, and served once the
/// first client left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stream_waits_for_the_first_across_replicas() {
    let s = setup_auth("stream_limit: { max_streams: 1 }", false);
    let link = sign_path(&s.secret, "/v/u1/slow/big.bin", 600, Some("/v/u1/"));
    let first = hold_download(&s, 0, &link).await;
    assert_eq!(s.metric("tollgate_streams_in_use{route=\"video\"}").await, 1.0);
    let r = Http::h1().get(&s.replicas[1].url(&link)).await;
    assert_eq!((r.status, r.code().as_str()), (429, "too_many_streams"));
    assert_eq!(r.header("retry-after"), Some("5"));
    // Another credential is not limited by this one's streams.
    let other = sign_path(&s.secret, "/v/u1/seg.ts", 900, Some("/v/u1/"));
    assert_eq!(Http::h1().get(&s.replicas[1].url(&other)).await.status, 200);
    drop(first); // the client leaves: the slot is given back
    until_served(&s, 1, &link).await;
}

/// A replica that dies holding a slot leaves it to the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_held_by_a_killed_replica_is_freed_by_its_lease() {
    let mut s = setup_auth("stream_limit: { max_streams: 1, lease: 2s }", false);
    let link = sign_path(&s.secret, "/v/u1/slow/big.bin", 600, Some("/v/u1/"));
    let _first = hold_download(&s, 0, &link).await;
    s.replicas[0].child.kill().unwrap();
    let r = Http::h1().get(&s.replicas[1].url(&link)).await;
    assert_eq!((r.status, r.code().as_str()), (429, "too_many_streams"), "the dead replica's slot is still leased");
    until_served(&s, 1, &link).await;
}

/// A byte quota counts the bytes actually sent (a range counts its own),
/// across replicas, and refuses the credential once it is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_quota_counts_bytes_sent_and_refuses_once_spent() {
    let s = setup_auth("byte_quota: { bytes: 30 }", false);
    let link = sign_path(&s.secret, "/v/u1/seg.ts", 600, Some("/v/u1/"));
    let full = FILE.len() as u64; // 23 bytes
    assert_eq!(s.get_from(0, "127.0.1.2", &link, &[]).await.status, 200);
    let range = s.get_from(1, "127.0.1.2", &link, &[("range", "bytes=0-3")]).await;
    assert_eq!((range.status, range.body.len()), (206, 4));
    // 23 + 4 = 27 bytes sent: under 30, so one more answer (which finishes).
    // Both answers' charges are written once the store saw four byte
    // operations (a read and a charge each) across the replicas.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.metric(r#"tollgate_store_duration_seconds_count{op="bytes"}"#).await < 4.0 {
        assert!(std::time::Instant::now() < deadline, "the charges were not written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let third = s.get_from(0, "127.0.1.2", &link, &[]).await;
    assert_eq!(third.status, 200, "27 of 30 bytes sent: the range counted 4 bytes, not {full}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = s.get_from(1, "127.0.1.2", &link, &[]).await;
        if r.status == 403 {
            assert_eq!(r.code(), "quota_exceeded");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the quota was never spent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `response_rate`: the burst goes at once, the rest at the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_paced_after_its_burst() {
    let big = vec![b'y'; 300 << 10];
    let nginx = Nginx::start(&[("v/big.bin", &big)]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys: {{ media: {{ hmac: {{ secret_file: media.key }} }} }}
upstreams: {{ files: {{ url: "http://{}" }} }}
routes:
  - name: video
    prefix: /v/
    upstream: files
    response_rate: {{ rate: 100KiB, burst: 100KiB }}
    auth: {{ signed_url: {{ keys: [media] }} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    let tg = common::Tollgate::start(&yaml, dir.path()).await;
    let link = common::sign(&secret, "GET", "/v/big.bin", 600, None, None);
    let start = std::time::Instant::now();
    let r = Http::h1().get(&tg.url(&link)).await;
    assert_eq!((r.status, r.body.len()), (200, big.len()));
    // 200 KiB past the burst at 100 KiB/s: two seconds at the least.
    assert!(start.elapsed() >= std::time::Duration::from_millis(1900), "{:?}", start.elapsed());
}
