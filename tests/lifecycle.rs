//! `tollgate serve` as a process: hot reload (file change with a
//! Kubernetes-style symlink swap, SIGHUP, invalid files, rotated keys) under
//! load, and graceful shutdown on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::serve::Serve;
use common::{Http, Nginx, sign};

fn config(proxy: u16, admin: u16, upstream: SocketAddr, extra_routes: &str, reload: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{proxy}
admin: 127.0.0.1:{admin}
keys:
  k: {{ hmac: {{ secret_file: ../k.key }} }}
upstreams:
  n: {{ url: "http://{upstream}" }}
routes:
  - {{ name: a, prefix: /a/, upstream: n, auth: {{ signed_url: {{ keys: [k] }}, jwt: {{ keys: [k] }} }} }}
{extra_routes}
reload: {reload}
log: {{ format: json }}
shutdown: {{ grace: 1s, drain_timeout: 20s }}
"#
    )
}

/// A Kubernetes ConfigMap volume: `tollgate.yaml -> ..data/tollgate.yaml`,
/// `..data -> ..<version>`; an update swaps `..data` atomically.
struct ConfigMapDir {
    root: PathBuf,
    version: usize,
}

impl ConfigMapDir {
    fn new(root: &Path) -> ConfigMapDir {
        std::fs::create_dir_all(root).unwrap();
        let dir = ConfigMapDir { root: root.to_path_buf(), version: 0 };
        std::os::unix::fs::symlink("..data/tollgate.yaml", root.join("tollgate.yaml")).unwrap();
        dir
    }

    fn path(&self) -> PathBuf {
        self.root.join("tollgate.yaml")
    }

    fn publish(&mut self, content: &str) {
        self.version += 1;
        let name = format!("..v{}", self.version);
        std::fs::create_dir(self.root.join(&name)).unwrap();
        std::fs::write(self.root.join(&name).join("tollgate.yaml"), content).unwrap();
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request() {
    let nginx = Nginx::start(&[("a/x.txt", b"a"), ("b/x.txt", b"b")]);
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "k.key", &secret);
    let mut cm = ConfigMapDir::new(&dir.path().join("cm"));
    let ports = (common::free_port(), common::free_port());
    let v1 = config(ports.0, ports.1, nginx.addr, "", "{ interval: 200ms }");
    cm.publish(&v1);
    let serve = Serve::spawn(&cm.path(), ports.0, ports.1).expect("start");
    let http = Arc::new(Http::h1());

    // Continuous load on /a/ over keep-alive connections, bounded in time.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let url = serve.url(&sign(&secret, "GET", "/a/x.txt", 600, None, None));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, url, stop, ok, failed) = (http.clone(), url.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                let r = http.get(&url).await;
                if r.status == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let b_route = "  - { name: b, prefix: /b/, upstream: n, auth: none }";
    cm.publish(&config(ports.0, ports.1, nginx.addr, b_route, "{ interval: 200ms }"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(&serve.url("/b/x.txt")).await.status != 200 {
        assert!(Instant::now() < deadline, "the new route never appeared:\n{}", serve.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Remove it again, and check the old route keeps serving throughout.
    cm.publish(&v1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(&serve.url("/b/x.txt")).await.status != 404 {
        assert!(Instant::now() < deadline, "the route was never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("reload under load: {ok} requests served, {failed} failed, across 2 reloads");
    assert_eq!(failed, 0);
    assert!(ok > 100, "too little load to mean anything: {ok}");
    assert!(serve.metric(&http, r#"tollgate_config_reloads_total{result="ok"}"#).await >= 2.0);

    // One JSON access-log line per request, without credentials.
    let logs = serve.logs();
    let access: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "tollgate::access")
        .collect();
    assert!(access.len() >= ok, "{} access lines for {ok} requests", access.len());
    assert_eq!(access[0]["route"], "a");
    assert!(access[0]["latency_ms"].is_number() && access[0]["status"] == 200);
    assert!(!logs.contains("sig=") && !logs.contains("exp="), "a credential reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_sighup_and_key_rotation() {
    let nginx = Nginx::start(&[("a/x.txt", b"a"), ("b/x.txt", b"b")]);
    let dir = tempfile::tempdir().unwrap();
    let secret_a = common::random_secret();
    common::write_file(dir.path(), "k.key", &secret_a);
    std::fs::create_dir(dir.path().join("cfg")).unwrap();
    let path = dir.path().join("cfg/tollgate.yaml");
    let serve = Serve::start(&path, |p, a| config(p, a, nginx.addr, "", "{ watch: false }"));
    let ports = (serve.proxy.port(), serve.admin.port());
    let http = Http::h1();
    let signed = serve.url(&sign(&secret_a, "GET", "/a/x.txt", 600, None, None));
    assert_eq!(http.get(&signed).await.status, 200);

    // An invalid file: every error logged with its path, the old config serves.
    std::fs::write(&path, "routes:\n  - { name: a, prefix: /a/, upstream: gone, auth: none, colour: red }\n").unwrap();
    serve.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while serve.metric(&http, r#"tollgate_config_reloads_total{result="error"}"#).await < 1.0 {
        assert!(Instant::now() < deadline, "the invalid reload was not counted:\n{}", serve.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http.get(&signed).await.status, 200, "the old routes must keep serving");
    // The log line is read from the child's stderr by another thread.
    while !serve.logs().contains("routes[0].colour") {
        assert!(Instant::now() < deadline, "{}", serve.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // SIGHUP applies a valid change (file watching is off here).
    let b_route = "  - { name: b, prefix: /b/, upstream: n, auth: none }";
    std::fs::write(&path, config(ports.0, ports.1, nginx.addr, b_route, "{ watch: false }")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(http.get(&serve.url("/b/x.txt")).await.status, 404, "no reload without SIGHUP when watch is off");
    serve.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while http.get(&serve.url("/b/x.txt")).await.status != 200 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A rotated secret file: verdicts cached under the old key stop counting.
    let token_a = common::hs256(&secret_a, serde_json::json!({"sub": "u"}));
    let bearer = format!("Bearer {token_a}");
    assert_eq!(http.get_with(&serve.url("/a/x.txt"), &[("authorization", &bearer)]).await.status, 200);
    let secret_b = common::random_secret();
    common::write_file(dir.path(), "k.key", &secret_b);
    serve.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while http.get_with(&serve.url("/a/x.txt"), &[("authorization", &bearer)]).await.status != 401 {
        assert!(Instant::now() < deadline, "a token under the removed key is still honoured");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token_b = common::hs256(&secret_b, serde_json::json!({"sub": "u"}));
    let r = http.get_with(&serve.url("/a/x.txt"), &[("authorization", &format!("Bearer {token_b}"))]).await;
    assert_eq!(r.status, 200);
}

/// A ConfigMap update can name a Secret entry that lands a moment later:
/// the failed reload is retried by itself, and applies once the file exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_is_retried_until_its_files_exist() {
    let nginx = Nginx::start(&[("a/x.txt", b"a"), ("b/x.txt", b"b")]);
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "k.key", &common::random_secret());
    std::fs::create_dir(dir.path().join("cfg")).unwrap();
    let path = dir.path().join("cfg/tollgate.yaml");
    let serve = Serve::start(&path, |p, a| config(p, a, nginx.addr, "", "{ interval: 200ms }"));
    let ports = (serve.proxy.port(), serve.admin.port());
    let http = Http::h1();
    let b_route = "  - { name: b, prefix: /b/, upstream: n, auth: { signed_url: { keys: [k2] } } }";
    let with_k2 = config(ports.0, ports.1, nginx.addr, b_route, "{ interval: 200ms }")
        .replace("keys:\n", "keys:\n  k2: { hmac: { secret_file: ../k2.key } }\n");
    std::fs::write(&path, with_k2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while serve.metric(&http, r#"tollgate_config_reloads_total{result="error"}"#).await < 1.0 {
        assert!(Instant::now() < deadline, "the reload without its key should fail first");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let k2 = common::random_secret();
    common::write_file(dir.path(), "k2.key", &k2);
    let url = serve.url(&sign(&k2, "GET", "/b/x.txt", 600, None, None));
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(&url).await.status != 200 {
        assert!(Instant::now() < deadline, "the reload was never retried:\n{}", serve.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        serve.metric(&http, r#"tollgate_config_reloads_total{result="error"}"#).await,
        1.0,
        "retries are counted once"
    );
    let logged = serve.logs().matches("k2.key").count();
    assert_eq!(logged, 1, "the same error is logged once:\n{}", serve.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_slow_download() {
    let big = vec![b'z'; 1 << 20];
    let nginx =
        Nginx::start_with(&[("a/big.bin", &big), ("a/x.txt", b"a")], "location /a/big.bin { limit_rate 384k; }");
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "k.key", &secret);
    std::fs::create_dir(dir.path().join("cfg")).unwrap();
    let path = dir.path().join("cfg/tollgate.yaml");
    let mut serve = Serve::start(&path, |p, a| config(p, a, nginx.addr, "", "{ watch: false }"));
    let http = Http::h1();
    let big_url = sign(&secret, "GET", "/a/big.bin", 600, None, None);
    let small_url = serve.url(&sign(&secret, "GET", "/a/x.txt", 600, None, None));
    assert_eq!(http.get(&format!("http://{}/readyz", serve.admin)).await.status, 200);

    // A download that takes ~2.7 s at nginx's rate limit.
    let proxy = serve.proxy;
    let download = std::thread::spawn(move || {
        let mut s = TcpStream::connect(proxy).unwrap();
        s.write_all(format!("GET {big_url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    serve.signal("TERM");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(http.get(&format!("http://{}/readyz", serve.admin)).await.status, 503, "readyz must fail at once");

    // During the grace delay (1 s) new connections are still served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(Http::h1().get(&small_url).await.status, 200);

    // After it, the listener is closed while the download continues.
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(t0.elapsed())).await;
    assert!(
        TcpStream::connect_timeout(&proxy, Duration::from_millis(500)).is_err(),
        "listener still open after the grace delay"
    );

    let answer = tokio::task::spawn_blocking(move || download.join().unwrap()).await.unwrap();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert_eq!(answer.len() - head_end, 1 << 20, "the in-flight download must complete");
    let status = serve.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean drain exits 0:\n{}", serve.logs());
}

/// `serve` exports the process metrics every Prometheus exporter has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_process_metrics() {
    let nginx = Nginx::start(&[("a/x.txt", b"a")]);
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "k.key", &common::random_secret());
    std::fs::create_dir(dir.path().join("cfg")).unwrap();
    let path = dir.path().join("cfg/tollgate.yaml");
    let serve = Serve::start(&path, |p, a| config(p, a, nginx.addr, "", "{ watch: false }"));
    let http = Http::h1();
    assert!(serve.metric(&http, "process_resident_memory_bytes").await > 1e6);
    assert!(serve.metric(&http, "process_open_fds").await >= 3.0);
    assert!(serve.metric(&http, "process_max_fds").await > 0.0);
    assert!(serve.metric(&http, "process_start_time_seconds").await > 1.7e9);
}
