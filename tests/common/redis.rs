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
    extra: Vec<String>,
}

impl Redis {
    /// Starts a standalone server.
    pub fn start() -> Redis {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut r = Redis { addr: "127.0.0.1:0".parse().unwrap(), dir, child: None, extra };
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
