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
    let redis = Redis::start();
    let nginx = Nginx::start(&[("v/u1/seg.ts", FILE), ("plain/a.txt", b"plain")]);
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
      share_limit: {{ {share} }}
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
    let codes: Vec<(u16, &str)> = answers.iter().map(|(_, s, c)| (*s, c.as_str())).collect();
    assert_eq!(codes, vec![(200, ""), (200, ""), (200, ""), (403, "shared"), (403, "shared")], "{answers:?}");
    // The first networks keep working (another address in the first /24).
    assert_eq!(s.get_from(1, "127.0.1.77", &link, &[]).await.status, 200);
    assert_eq!(s.metric(r#"tollgate_shared_credentials_total{mode="refused",route="video"}"#).await, 2.0);
    assert_eq!(s.metric(r#"tollgate_auth_denied_total{reason="shared",route="video"}"#).await, 2.0);

    let records = s.records(4).await;
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
