//! Test support: real upstreams started on ephemeral loopback ports and
//! stopped on drop, tollgate in-process, and small HTTP clients (hyper for
//! well-formed requests, raw TCP for bytes a client library would fix).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::Registry;
use tollgate::metrics::Metrics;

pub mod serve;
pub mod signers;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds a program the test suite depends on, or fails loudly: the test
/// command installs every dependency, so a missing one is a broken setup,
/// never a reason to skip.
pub fn require(program: &str, candidates: &[&str]) -> PathBuf {
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_file() {
            return p;
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':') {
            let p = Path::new(dir).join(program);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{program} is not installed: run `make test` (it installs the test dependencies)");
}

/// A free loopback port (racy by nature; callers retry on bind failure).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts on `addr`.
pub fn wait_for_port(addr: SocketAddr, child: &mut Child, what: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("{what} exited early: {status}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not start listening on {addr}");
}

/// A real nginx (Debian's nginx-light) serving `www` on a loopback port,
/// with its own access log recording what it received.
pub struct Nginx {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Runs as master + worker (as deployed), so a reload really replaces
    /// the worker and closes its idle keep-alive connections.
    master: bool,
}

impl Nginx {
    /// Starts nginx over the given files (`(relative path, content)`).
    pub fn start(files: &[(&str, &[u8])]) -> Nginx {
        Self::start_with(files, "")
    }

    /// Like `start`, with extra directives inside the `server` block.
    pub fn start_with(files: &[(&str, &[u8])], server_extra: &str) -> Nginx {
        Self::start_opts(files, "", server_extra, false)
    }

    /// Like `start_with`, with extra directives in the `http` block too
    /// (e.g. a `log_format`). A relative `access_log` path is in `dir`.
    pub fn start_full(files: &[(&str, &[u8])], http_extra: &str, server_extra: &str) -> Nginx {
        Self::start_opts(files, http_extra, server_extra, false)
    }

    /// Like `start`, with a master process and one worker, as nginx runs in
    /// production: `reload` then works as `nginx -s reload` does there.
    pub fn start_master(files: &[(&str, &[u8])]) -> Nginx {
        Self::start_opts(files, "", "", true)
    }

    fn start_opts(files: &[(&str, &[u8])], http_extra: &str, server_extra: &str, master: bool) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join("www").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        for attempt in 0..5 {
            let port = free_port();
            let d = dir.path().display();
            let master = if master { "on" } else { "off" };
            let conf = format!(
                r#"daemon off;
master_process {master};
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format tg '$request|auth=$http_authorization|cookie=$http_cookie|subject=$http_x_auth_subject|xff=$http_x_forwarded_for|host=$http_host|$status';
  access_log {d}/access.log tg;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  types {{ text/plain txt; image/svg+xml svg; application/octet-stream bin; }}
  {http_extra}
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
    location / {{ }}
    {server_extra}
  }}
}}
"#
            );
            std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
            let mut child = Self::spawn(dir.path());
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if wait_for_port(addr, &mut child, "nginx") {
                return Nginx { addr, dir, child: Some(child), master: master == "on" };
            }
            eprintln!("nginx attempt {attempt} failed; retrying on another port");
        }
        panic!("nginx would not start");
    }

    fn spawn(dir: &Path) -> Child {
        Command::new(require("nginx", &["/usr/sbin/nginx"]))
            .args(Self::args(dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx")
    }

    fn args(dir: &Path) -> Vec<PathBuf> {
        ["-p".into(), dir.into(), "-c".into(), dir.join("nginx.conf"), "-e".into(), dir.join("error.log")].into()
    }

    /// Sends `nginx -s <signal>` to this instance (it finds the master
    /// through the pid file named in the config).
    fn signal(&self, signal: &str) -> Result<(), String> {
        let out = Command::new(require("nginx", &["/usr/sbin/nginx"]))
            .args(Self::args(self.dir.path()))
            .args(["-s", signal])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("nginx -s {signal}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// The worker processes of a master-mode nginx.
    pub fn workers(&self) -> Vec<u32> {
        let master = self.child.as_ref().expect("nginx is running").id();
        let mut workers = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            if ppid == Some(master) {
                workers.push(pid);
            }
        }
        workers
    }

    /// A graceful reload (`nginx -s reload`), as when its configuration
    /// changes: a new worker starts, the old one closes its idle keep-alive
    /// connections, finishes what it is serving and exits. Returns once the
    /// new worker runs and the old one is gone.
    pub fn reload(&self) {
        assert!(self.master, "reload needs nginx started with start_master");
        let old = self.workers();
        assert!(!old.is_empty(), "nginx has no worker");
        self.signal("reload").unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.workers();
            if !now.is_empty() && now.iter().all(|w| !old.contains(w)) {
                return;
            }
            assert!(Instant::now() < deadline, "nginx reload did not complete: workers {old:?} -> {now:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops nginx (its connections close); `restart` brings it back on
    /// the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL to a master would orphan its worker; a fast shutdown
            // stops both.
            if !self.master || self.signal("stop").is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Starts a stopped nginx again with the same configuration and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nginx is still running");
        let mut child = Self::spawn(self.dir.path());
        assert!(wait_for_port(self.addr, &mut child, "nginx"), "nginx did not come back on {}", self.addr);
        self.child = Some(child);
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Access-log lines since the log was `skip` lines long.
    pub fn lines_after(&self, skip: usize) -> Vec<String> {
        self.access_log().lines().skip(skip).map(str::to_owned).collect()
    }

    pub fn line_count(&self) -> usize {
        self.access_log().lines().count()
    }

    /// The last access-log line containing `needle`, once nginx has written
    /// it (nginx logs a request after sending its answer, so a client can
    /// read the answer first).
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self.access_log().lines().rev().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "nginx logged no line with {needle:?}:\n{}", self.access_log());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The whole access log once every request answered so far is in it: a
    /// marker request sent now is logged after them (one worker, in order).
    pub fn settled_log(&self) -> String {
        let marker = format!("/settle-{}", self.line_count());
        raw(self.addr, format!("GET {marker} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        self.wait_for_line(&format!("GET {marker} "));
        self.access_log()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `content` to `name` inside `dir`, returning the path.
pub fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// A test-only HMAC secret, generated per test (64 hex characters, used as
/// raw bytes), never committed.
pub fn random_secret() -> Vec<u8> {
    let mut s = [0u8; 32];
    aws_lc_rs::rand::fill(&mut s).unwrap();
    s.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes()
}

/// tollgate running in-process.
pub struct Tollgate {
    pub handle: tollgate::Handle,
    pub metrics: Arc<Metrics>,
    pub dir: PathBuf,
}

impl Tollgate {
    /// Compiles `yaml` (relative paths resolve in `dir`) and starts it on
    /// ephemeral ports.
    pub async fn start(yaml: &str, dir: &Path) -> Tollgate {
        let metrics = Arc::new(Metrics::new(Registry::new()).unwrap());
        let config = tollgate::config::compile_str(yaml, dir, &metrics).unwrap_or_else(|e| panic!("config:\n{e}"));
        let handle = tollgate::start(config, metrics.clone()).await.unwrap();
        Tollgate { handle, metrics, dir: dir.to_path_buf() }
    }

    pub fn url(&self, target: &str) -> String {
        format!("http://{}{target}", self.handle.proxy_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.handle.admin_addr)
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` code of a JSON error body.
    pub fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// An HTTP/1.1 (or h2c prior-knowledge) client.
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn h1() -> Http {
        Http { client: Client::builder(TokioExecutor::new()).build_http() }
    }

    /// An HTTP/1.1 client whose connections come from `local` (another
    /// loopback address: another client network as tollgate sees it).
    pub fn h1_from(local: std::net::IpAddr) -> Http {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(local));
        Http { client: Client::builder(TokioExecutor::new()).build(connector) }
    }

    pub fn h2c() -> Http {
        Http { client: Client::builder(TokioExecutor::new()).http2_only(true).build_http() }
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.send("GET", url, &[], Bytes::new()).await
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", url, headers, Bytes::new()).await
    }

    pub async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Bytes) -> Resp {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(Full::new(body)).unwrap()).await.expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("read body").to_bytes();
        Resp { status, headers, body }
    }
}

/// Sends raw bytes and reads until the peer closes or goes quiet.
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code of the first response in a raw answer.
pub fn raw_status(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Signs a target with a raw secret, `ttl` seconds from now.
pub fn sign(secret: &[u8], method: &str, target: &str, ttl: i64, kid: Option<&str>, prefix: Option<&str>) -> String {
    let exp = (tollgate::auth::unix_now() as i64 + ttl) as u64;
    tollgate::tools::sign(secret, &tollgate::tools::SignRequest { target, method, exp, kid, prefix, path_token: None })
        .unwrap()
}

/// A path-token URL for `target` granting `prefix` (default: its directory).
pub fn sign_path(secret: &[u8], target: &str, ttl: i64, prefix: Option<&str>) -> String {
    let exp = (tollgate::auth::unix_now() as i64 + ttl) as u64;
    let req = tollgate::tools::SignRequest { target, method: "GET", exp, kid: None, prefix, path_token: Some("tg") };
    tollgate::tools::sign(secret, &req).unwrap()
}

/// Mints an HS256 JWT with `claims` (exp defaults to now + 300).
pub fn hs256(secret: &[u8], claims: serde_json::Value) -> String {
    let mut claims = claims.as_object().cloned().unwrap_or_default();
    claims.entry("exp").or_insert_with(|| (tollgate::auth::unix_now() + 300).into());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
}

/// Parses a Prometheus text exposition into `name{labels}` → value.
pub fn metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// A real S3-compatible server that verifies SigV4: moto_server from the
/// test venv, made private (authentication on) after seeding.
pub struct Moto {
    pub addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    child: Child,
}

impl Moto {
    /// Starts moto, creates `bucket` with the seed objects and an IAM user
    /// allowed `s3:*`, then switches authentication on.
    pub fn start(bucket: &str, seed: &[(&str, &str)]) -> Moto {
        let bin = repo().join(".venv/bin/moto_server");
        assert!(bin.is_file(), "{} is missing: run `make test` (it installs moto)", bin.display());
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if !wait_for_port(addr, &mut child, "moto_server") {
                continue;
            }
            let seed_json = serde_json::to_string(&seed.iter().cloned().collect::<HashMap<_, _>>()).unwrap();
            let out = Command::new(repo().join(".venv/bin/python"))
                .arg(repo().join("tests/py/moto_setup.py"))
                .arg(format!("http://{addr}"))
                .arg(bucket)
                .arg(seed_json)
                .output()
                .unwrap();
            assert!(out.status.success(), "moto setup failed: {}", String::from_utf8_lossy(&out.stderr));
            let creds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            return Moto {
                addr,
                access_key: creds["access_key"].as_str().unwrap().to_owned(),
                secret_key: creds["secret_key"].as_str().unwrap().to_owned(),
                child,
            };
        }
        panic!("moto_server would not start");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
