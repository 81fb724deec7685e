//! The use-limit and revocation store on Redis topologies other than one
//! server, all on loopback: a three-node Cluster (the admit script touches
//! an id's revocation and use record, which share a hash tag, so it runs on
//! one node) and a master behind a Sentinel (found through it). Counting
//! stays exact with two replicas firing one link at once, and `tollgate
//! revoke` reaches both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::process::Command;
use std::sync::Arc;

use common::{Http, Nginx, Tollgate};
use redis_server::{RedisCluster, RedisSentinel};

/// Two replicas on the store described by `store` (URLs in `urls`): one
/// link fired 50 times gives one 200; a revocation reaches both.
async fn exact_once_and_revocable(store: &str, urls: &str) {
    let nginx = Nginx::start(&[("once/file.txt", b"topology")]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "media.key", &secret);
    common::write_file(dir.path(), "redis.url", urls.as_bytes());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
log: {{ access_log: false }}
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  files: {{ url: "http://{}" }}
store:
  redis: {{ url_file: redis.url, {store}, timeout: 1s }}
routes:
  - name: once
    prefix: /once/
    upstream: files
    auth:
      signed_url: {{ keys: [media], max_ttl: 1h }}
      use_limit: {{ uses: 1 }}
      revocation: true
"#,
        nginx.addr
    );
    let config = common::write_file(dir.path(), "tollgate.yaml", yaml.as_bytes());
    let replicas = [Tollgate::start(&yaml, dir.path()).await, Tollgate::start(&yaml, dir.path()).await];
    let link = |jti: &str| {
        let target = tollgate::tools::with_id("/once/file.txt", jti).unwrap();
        common::sign(&secret, "GET", &target, 600, None, None)
    };

    let http = Arc::new(Http::h1());
    let once = link("topology-1");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (http, url) = (http.clone(), replicas[i % 2].url(&once));
        set.spawn(async move { http.get(&url).await.status });
    }
    let mut statuses = Vec::new();
    while let Some(s) = set.join_next().await {
        statuses.push(s.unwrap());
    }
    assert_eq!(statuses.iter().filter(|&&c| c == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&c| c == 410).count(), 49, "{statuses:?}");

    let leaked = link("topology-2");
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["revoke", "--jti", "topology-2", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for replica in &replicas {
        let r = http.get(&replica.url(&leaked)).await;
        assert_eq!((r.status, r.code().as_str()), (403, "revoked"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_link_on_a_redis_cluster_succeeds_once_and_revokes() {
    let cluster = RedisCluster::start();
    exact_once_and_revocable("mode: cluster", &cluster.urls()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_link_through_a_sentinel_succeeds_once_and_revokes() {
    let sentinel = RedisSentinel::start();
    exact_once_and_revocable("mode: sentinel, master_name: mymaster", &sentinel.sentinel.url()).await;
    // The counts live on the master the Sentinel named.
    assert!(sentinel.master.cli(&["--scan", "--pattern", "tollgate:*"]).contains(":use:"));
}
