//! A real `redis-server` (Debian's package) on a loopback ephemeral port,
//! without persistence, stopped on drop; it can be killed and started again
//! on the same port (the store outage tests). Included with
//! `#[path = "common/redis.rs"] mod redis_server;` next to `mod common;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::common::{free_port, require, wait_for_port};

pub struct Redis {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// A config file (redis-server reads it from its first argument).
    conf: Option<PathBuf>,
    extra: Vec<String>,
}

impl Redis {
    /// Starts a standalone server.
    pub fn start() -> Redis {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        Self::start_from(None, extra)
    }

    /// Starts a server from config text (written to its own directory) and
    /// extra arguments.
    pub fn start_from(conf: Option<&str>, extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf.map(|text| {
            let path = dir.path().join("redis.conf");
            std::fs::write(&path, text).unwrap();
            path
        });
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut r = Redis { addr: "127.0.0.1:0".parse().unwrap(), dir, child: None, conf, extra };
        for _ in 0..5 {
            r.addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            if r.spawn() {
                return r;
            }
        }
        panic!("redis-server would not start");
    }

    fn spawn(&mut self) -> bool {
        let bin = require("redis-server", &["/usr/bin/redis-server"]);
        let mut child = Command::new(bin)
            .args(&self.conf)
            .args(["--bind", "127.0.0.1", "--port", &self.addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        if wait_for_port(self.addr, &mut child, "redis-server") {
            self.child = Some(child);
            true
        } else {
            false
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server did not come back on {}", self.addr);
    }

    /// Runs `redis-cli` against it and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let bin = require("redis-cli", &["/usr/bin/redis-cli"]);
        let out = Command::new(bin)
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A three-node Redis Cluster on loopback (no replicas), every slot
/// assigned, stopped on drop.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                let bus = free_port().to_string();
                Redis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let bin = require("redis-cli", &["/usr/bin/redis-cli"]);
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
        let out = Command::new(bin)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        // Every node must agree the cluster is up before a client asks it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        for node in &nodes {
            while !node.cli(&["cluster", "info"]).contains("cluster_state:ok") {
                assert!(std::time::Instant::now() < deadline, "the cluster never came up");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// Seed URLs, comma-separated (`store.redis` with `mode: cluster`).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(Redis::url).collect::<Vec<_>>().join(",")
    }
}

/// A master and one Sentinel watching it as `mymaster` (quorum 1).
pub struct RedisSentinel {
    pub master: Redis,
    pub sentinel: Redis,
}

impl RedisSentinel {
    pub fn start() -> RedisSentinel {
        let master = Redis::start();
        let port = master.addr.port();
        // Sentinel rewrites its config file, so each gets its own copy.
        let conf =
            format!("sentinel monitor mymaster 127.0.0.1 {port} 1\nsentinel down-after-milliseconds mymaster 5000\n");
        let sentinel = Redis::start_from(Some(&conf), &["--sentinel"]);
        RedisSentinel { master, sentinel }
    }
}
