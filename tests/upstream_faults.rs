//! Upstream failures: refused, too slow, and cut off mid-body — each must
//! reach the client as the docs/reference.md: Answers answer (or an aborted response), never
//! with an address or an OS error in the body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Http, Tollgate};
use http_body_util::BodyExt;

fn config(dead: u16, slow: u16, cut: u16) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  dead: {{ url: "http://127.0.0.1:{dead}", connect_timeout: 1s }}
  slow: {{ url: "http://127.0.0.1:{slow}", response_timeout: 500ms }}
  cut: {{ url: "http://127.0.0.1:{cut}" }}
routes:
  - {{ name: dead, prefix: /dead/, upstream: dead, auth: none }}
  - {{ name: slow, prefix: /slow/, upstream: slow, auth: none }}
  - {{ name: cut, prefix: /cut/, upstream: cut, auth: none }}
log: {{ access_log: false }}
"#
    )
}

/// Accepts connections and never answers.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Announces 10 MiB, sends 64 KiB, then closes.
fn cutting_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\nContent-Type: application/octet-stream\r\n\r\n",
            );
            let _ = stream.write_all(&[b'x'; 65536]);
            let _ = stream.flush();
            drop(stream);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_slow_and_cut_upstreams() {
    let dead = common::free_port();
    let slow = silent_server();
    let cut = cutting_server();
    let dir = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&config(dead, slow, cut), dir.path()).await;
    let http = Http::h1();

    let r = http.get(&tg.url("/dead/x")).await;
    assert_eq!((r.status, r.code().as_str()), (502, "upstream_unavailable"));
    let body = r.text();
    for leak in ["127.0.0.1", &dead.to_string(), "refused", "os error", "Connection"] {
        assert!(!body.contains(leak), "502 body leaks {leak:?}: {body}");
    }

    let started = Instant::now();
    let r = http.get(&tg.url("/slow/x")).await;
    let took = started.elapsed();
    assert_eq!((r.status, r.code().as_str()), (504, "upstream_timeout"));
    assert!(took < Duration::from_millis(1500), "504 after {took:?}, timeout is 500ms");

    // The client must see an aborted response, never a complete 200.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client.get(tg.url("/cut/big.bin").parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "10485760");
    let read = resp.into_body().collect().await;
    assert!(read.is_err(), "a truncated upstream body must abort the client's response");

    // A client that gives up before the answer is counted and leaves no
    // request "in flight" behind.
    let aborted = tokio::time::timeout(Duration::from_millis(200), http.get(&tg.url("/slow/abandoned"))).await;
    assert!(aborted.is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let m = common::metrics(&http.get(&tg.admin_url("/metrics")).await.text());
        if m[r#"tollgate_requests_total{outcome="client_aborted",route="slow"}"#] == 1.0 || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(m[r#"tollgate_requests_total{outcome="client_aborted",route="slow"}"#], 1.0);
    assert_eq!(m["tollgate_inflight_requests"], 0.0);
    assert_eq!(m[r#"tollgate_upstream_errors_total{kind="connect",route="dead"}"#], 1.0);
    assert_eq!(m[r#"tollgate_upstream_errors_total{kind="timeout",route="slow"}"#], 1.0);
    assert_eq!(m[r#"tollgate_requests_total{outcome="upstream_error",route="slow"}"#], 1.0);
}

/// Answers every request with the given raw response head and body.
fn scripted_server(response: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(response);
            let _ = stream.flush();
        }
    });
    port
}

/// An upstream answer whose length two parsers could read differently is
/// never relayed: 502 `upstream_unavailable`, counted as a protocol error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_upstream_framing_is_refused() {
    let cases: [(&str, &'static [u8]); 5] = [
        (
            "cl_and_te",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        ("two_lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ("te_gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nabc"),
        ("te_gzip_chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        (
            "two_te",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
    ];
    let good: [(&str, &'static [u8]); 2] = [
        ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("same_length_twice", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
    ];
    let mut upstreams = String::new();
    let mut routes = String::new();
    for (name, response) in cases.iter().chain(good.iter()) {
        let port = scripted_server(response);
        upstreams += &format!("  {name}: {{ url: \"http://127.0.0.1:{port}\" }}\n");
        routes += &format!("  - {{ name: {name}, prefix: /{name}/, upstream: {name}, auth: none }}\n");
    }
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nupstreams:\n{upstreams}routes:\n{routes}log: {{ access_log: false }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&yaml, dir.path()).await;
    let http = Http::h1();
    for (name, _) in cases {
        let r = http.get(&tg.url(&format!("/{name}/x"))).await;
        assert_eq!((r.status, r.code().as_str()), (502, "upstream_unavailable"), "{name}");
    }
    for (name, _) in good {
        let r = http.get(&tg.url(&format!("/{name}/x"))).await;
        assert_eq!((r.status, r.text().as_str()), (200, "abc"), "{name}");
    }
    let m = common::metrics(&http.get(&tg.admin_url("/metrics")).await.text());
    for (name, _) in cases {
        assert_eq!(m[&format!(r#"tollgate_upstream_errors_total{{kind="protocol",route="{name}"}}"#)], 1.0, "{name}");
    }
}
