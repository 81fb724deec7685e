//! Large downloads spliced socket to socket (src/splice.rs), in front of a
//! real nginx: every byte arrives in order, only eligible answers are
//! spliced, and clients or upstreams that break off leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Http, Nginx, Tollgate, sign};

const BIG: usize = 3 * 1024 * 1024 + 12_345;
/// Below `splice::MIN_LEN` (1 MiB): streamed through hyper.
const SMALL: usize = 1024 * 1024 - 1;

/// Bytes that differ at every offset, so a lost, doubled or zeroed block
/// shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Setup {
    tg: Tollgate,
    secret: Vec<u8>,
    big: Vec<u8>,
    small: Vec<u8>,
    _nginx: Nginx,
    _dir: tempfile::TempDir,
}

async fn setup_with(upstream: &str, nginx: Nginx) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let secret = common::random_secret();
    common::write_file(dir.path(), "k.key", &secret);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys: {{ k: {{ hmac: {{ secret_file: k.key }} }} }}
upstreams: {{ up: {{ url: "{upstream}" }} }}
routes:
  - {{ name: f, prefix: /f/, upstream: up, auth: {{ signed_url: {{ keys: [k] }} }} }}
log: {{ access_log: false }}
"#
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    Setup { tg, secret, big: pattern(BIG, 7), small: pattern(SMALL, 11), _nginx: nginx, _dir: dir }
}

async fn setup() -> Setup {
    let big = pattern(BIG, 7);
    let small = pattern(SMALL, 11);
    let nginx = Nginx::start(&[("f/big.bin", &big), ("f/small.bin", &small)]);
    let upstream = format!("http://{}", nginx.addr);
    setup_with(&upstream, nginx).await
}

impl Setup {
    fn url(&self, file: &str) -> String {
        self.tg.url(&sign(&self.secret, "GET", file, 300, None, None))
    }

    fn spliced(&self) -> u64 {
        self.tg.metrics.spliced_bytes.get()
    }
}

/// Open file descriptors of this process (tollgate runs in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Reads one HTTP/1.1 response with a `Content-Length` body from `stream`.
fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("content-length");
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_downloads_are_spliced_byte_for_byte() {
    let s = setup().await;
    let http = Http::h1();

    // Twice on one keep-alive client connection, a small file between.
    for round in 0..2 {
        let before = s.spliced();
        let resp = http.get(&s.url("/f/big.bin")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length"), Some(BIG.to_string().as_str()));
        assert!(resp.body == s.big, "round {round}: the spliced body differs from the file");
        let moved = s.spliced() - before;
        // hyper may have read the first bytes before the handover (a read
        // buffer at most); the rest came through the pipe.
        assert!(
            moved as usize <= BIG && moved as usize >= BIG - 512 * 1024,
            "round {round}: {moved} of {BIG} bytes spliced"
        );

        let before = s.spliced();
        let resp = http.get(&s.url("/f/small.bin")).await;
        assert!(resp.status == 200 && resp.body == s.small);
        assert_eq!(s.spliced(), before, "a body under 1 MiB is streamed, not spliced");
    }

    // A range of the large file: 206, spliced, the exact slice.
    let before = s.spliced();
    let range = (100_000, 100_000 + 2 * 1024 * 1024);
    let resp = http.get_with(&s.url("/f/big.bin"), &[("range", &format!("bytes={}-{}", range.0, range.1 - 1))]).await;
    assert_eq!(resp.status, 206);
    assert!(resp.body[..] == s.big[range.0..range.1], "the spliced range differs");
    assert!(s.spliced() > before, "a 2 MiB range is spliced");

    // HEAD has no body to splice.
    let head = http.send("HEAD", &s.url("/f/big.bin"), &[], bytes::Bytes::new()).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_get_the_same_bytes_without_splicing() {
    let s = setup().await;
    let resp = Http::h2c().get(&s.url("/f/big.bin")).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body == s.big);
    assert_eq!(s.spliced(), 0, "HTTP/2 frames the body itself: never spliced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_large_answers_arrive_in_order() {
    let s = setup().await;
    let addr = s.tg.handle.proxy_addr;
    let target = |file| sign(&s.secret, "GET", file, 300, None, None);
    let requests = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\nGET {} HTTP/1.1\r\nHost: x\r\n\r\nGET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        target("/f/big.bin"),
        target("/f/small.bin"),
        target("/f/big.bin")
    );
    let bodies = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(requests.as_bytes()).unwrap();
        (0..3).map(|_| read_response(&mut stream)).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for ((head, body), want) in bodies.iter().zip([&s.big, &s.small, &s.big]) {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body == want, "a pipelined answer differs from its file");
    }
    assert!(s.spliced() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_midway_leaves_no_pipe_or_socket_behind() {
    let s = setup().await;
    let http = Http::h1();
    // Warm up: the upstream pool and every lazily made resource exist.
    assert!(http.get(&s.url("/f/big.bin")).await.body == s.big);
    assert!(http.get(&s.url("/f/small.bin")).await.body == s.small);
    // `http` stays open, so its idle connection is part of the baseline.
    let baseline = open_fds();
    let settle = |want: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = open_fds();
            if now <= want || Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    let addr = s.tg.handle.proxy_addr;
    for _ in 0..5 {
        let target = sign(&s.secret, "GET", "/f/big.bin", 300, None, None);
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            write!(stream, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut first = [0u8; 256 * 1024];
            stream.read_exact(&mut first).unwrap();
            // Gone with most of the body unread.
        })
        .await
        .unwrap();
    }
    let after = settle(baseline + 1).await;
    assert!(after <= baseline + 1, "{after} descriptors open, {baseline} before: a pipe or socket leaked");

    // And the proxy still serves.
    let resp = http.get(&s.url("/f/big.bin")).await;
    assert!(resp.status == 200 && resp.body == s.big);
}

/// An upstream that promises `len` bytes and closes after `sent`.
fn truncating_upstream(len: usize, sent: usize) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                let _ = stream.write_all(&pattern(sent, 3));
                // Dropped: the upstream closes with the body unfinished.
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_breaks_off_cuts_the_client_short_and_never_pads() {
    let addr = truncating_upstream(4 * 1024 * 1024, 2 * 1024 * 1024 + 77);
    let s = setup_with(&format!("http://{addr}"), Nginx::start(&[])).await;
    let target = sign(&s.secret, "GET", "/f/any.bin", 300, None, None);
    let proxy = s.tg.handle.proxy_addr;
    let (head, got) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(proxy).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(stream, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut all = Vec::new();
        // Ends with EOF (the connection is cut), not with a timeout.
        stream.read_to_end(&mut all).expect("the connection is closed, not left hanging");
        let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (String::from_utf8_lossy(&all[..at]).into_owned(), all[at..].to_vec())
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let sent = pattern(2 * 1024 * 1024 + 77, 3);
    assert_eq!(got.len(), sent.len(), "exactly the bytes the upstream sent, nothing made up");
    assert!(got == sent);
    assert!(s.spliced() > 0, "the body was being spliced when the upstream left");
}
