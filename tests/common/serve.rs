//! `tollgate serve` as a child process with its stderr collected: the
//! real binary, logging set up as in production.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::Http;

/// The binary under test (the test binaries' own `CARGO_BIN_EXE_tollgate`).
pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// A `tollgate serve` child process with its stderr collected.
pub struct Serve {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Writes the config through `write` (given the two ports) and starts.
    pub fn start(config_path: &Path, write: impl Fn(u16, u16) -> String) -> Serve {
        for _ in 0..5 {
            let (p, a) = (super::free_port(), super::free_port());
            std::fs::write(config_path, write(p, a)).unwrap();
            if let Some(s) = Self::spawn(config_path, p, a) {
                return s;
            }
        }
        panic!("tollgate serve would not start");
    }

    /// Starts against an existing config file whose ports are known.
    pub fn spawn(config_path: &Path, proxy_port: u16, admin_port: u16) -> Option<Serve> {
        Self::spawn_with(config_path, proxy_port, admin_port, None)
    }

    /// Like [`Serve::spawn`], with `TOLLGATE_LOG` set to `log_filter`.
    pub fn spawn_with(config_path: &Path, proxy_port: u16, admin_port: u16, log_filter: Option<&str>) -> Option<Serve> {
        let mut command = Command::new(BIN);
        command.args(["serve", "--config"]).arg(config_path).env_remove("TOLLGATE_LOG");
        if let Some(filter) = log_filter {
            command.env("TOLLGATE_LOG", filter);
        }
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        if !super::wait_for_port(admin, &mut child, "tollgate serve") {
            return None;
        }
        Some(Serve { child, proxy: format!("127.0.0.1:{proxy_port}").parse().unwrap(), admin, logs })
    }

    pub fn url(&self, target: &str) -> String {
        format!("http://{}{target}", self.proxy)
    }

    pub fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap().success()
        );
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub async fn metric(&self, http: &Http, name: &str) -> f64 {
        let text = http.get(&format!("http://{}/metrics", self.admin)).await.text();
        super::metrics(&text).get(name).copied().unwrap_or(0.0)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// The whole output once a line containing `needle` has been written
    /// (lines arrive from the child's stderr on another thread).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(std::time::Instant::now() < deadline, "no log line with {needle:?}:\n{logs}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The whole output once `n` access-log lines have been written.
    pub fn wait_for_log_lines(&self, n: usize) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if logs.matches("tollgate::access").count() >= n {
                return logs;
            }
            assert!(std::time::Instant::now() < deadline, "fewer than {n} access lines:\n{logs}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
