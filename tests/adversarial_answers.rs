//! tollgate's own answers tried from outside: origins match exactly, and a
//! request too large for any buffer gets the documented JSON answer, not
//! the HTTP library's bare one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Http, Nginx, Tollgate};

async fn start(nginx: &Nginx, dir: &std::path::Path) -> Tollgate {
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: {{ n: {{ url: "http://{}" }} }}
routes:
  - {{ name: public, prefix: /public/, upstream: n, auth: none, cors: {{ origins: ["https://app.example"] }} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    Tollgate::start(&yaml, dir).await
}

/// Row 8: a preflight from `HTTPS://APP.EXAMPLE` got its origin echoed
/// although only `https://app.example` is listed. Browsers serialize
/// origins in lower case; anything else is another string, not the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_match_byte_for_byte() {
    let nginx = Nginx::start(&[("public/x.txt", b"x")]);
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&nginx, dir.path()).await;
    let http = Http::h1();
    for origin in ["HTTPS://APP.EXAMPLE", "https://App.example"] {
        let preflight = [("origin", origin), ("access-control-request-method", "GET")];
        let r = http.send("OPTIONS", &tg.url("/public/x.txt"), &preflight, bytes::Bytes::new()).await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin} was echoed");
        let r = http.get_with(&tg.url("/public/x.txt"), &[("origin", origin)]).await;
        assert_eq!((r.status, r.header("access-control-allow-origin")), (200, None), "{origin}");
    }
    let r = http.get_with(&tg.url("/public/x.txt"), &[("origin", "https://app.example")]).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
}

/// The status line, headers and body of a raw answer.
fn parse(answer: &str) -> (u16, String, String) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    (common::raw_status(answer), head.to_ascii_lowercase(), body.to_owned())
}

/// Row 9: a 65,535-byte target and a ~200 KB header block are past the
/// HTTP library's own buffers; they got its empty 414/431. They now get
/// tollgate's JSON answer, never stored, and nothing reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_every_buffer_get_the_documented_answers() {
    let nginx = Nginx::start(&[("public/x.txt", b"x")]);
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&nginx, dir.path()).await;
    let addr = tg.handle.proxy_addr;
    let long_target = format!("/public/{}", "a".repeat(65_535 - "/public/".len()));
    let header = format!("X-Big: {}\r\n", "b".repeat(8_000));
    let cases = [
        (format!("GET {long_target} HTTP/1.1\r\nHost: x\r\n\r\n"), 414, "uri_too_long"),
        (format!("GET /public/x.txt HTTP/1.1\r\nHost: x\r\n{}\r\n", header.repeat(25)), 431, "headers_too_large"),
        // Within the buffers: the same answers, from the request path.
        (
            format!("GET /public/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(9_000)),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /public/x.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n", header.repeat(5)),
            431,
            "headers_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let answer = common::raw(addr, request.as_bytes());
        let (got, head, body) = parse(&answer);
        assert_eq!(got, status, "{} bytes: {answer:.300}", request.len());
        assert_eq!(body, format!("{{\"error\":\"{code}\"}}\n"), "{} bytes: {head}", request.len());
        assert!(head.contains("\r\ncache-control: no-store"), "{head}");
        assert!(head.contains("\r\ncontent-type: application/json"), "{head}");
    }
    let log = nginx.settled_log();
    assert!(!log.contains("/public/aaaa") && !log.contains("bbbb"), "{log}");
}
