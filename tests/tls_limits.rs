//! TLS on the listener (real handshakes, certificates generated at test
//! time, rotation without dropping connections) and the limits that protect
//! against slow and oversized clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Http, Nginx, Tollgate};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "tollgate test CA");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
}

/// Writes a leaf for localhost/127.0.0.1 signed by `ca`; returns its DER.
fn write_leaf(ca: &Ca, dir: &Path, cn: &str) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    // Key first, then certificate: a reader never sees a new cert with the old key for long.
    std::fs::write(dir.join("tls.key.tmp"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("tls.crt.tmp"), cert.pem()).unwrap();
    std::fs::rename(dir.join("tls.key.tmp"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("tls.crt.tmp"), dir.join("tls.crt")).unwrap();
    cert.der().to_vec()
}

fn client_config(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let der = CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

use rustls::pki_types::pem::PemObject;

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

/// One HTTP/1.1 request on an open stream; returns (status, body).
async fn request(stream: &mut Tls, path: &str) -> (u16, String) {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body[..len].to_owned());
            }
        }
    }
}

fn tls_yaml(upstream: SocketAddr) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: {{ n: {{ url: "http://{upstream}" }} }}
routes: [ {{ name: p, prefix: /p/, upstream: n, auth: none }} ]
tls: {{ cert_file: tls.crt, key_file: tls.key, reload_interval: 100ms }}
log: {{ access_log: false }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_alpn_and_rotation() {
    let nginx = Nginx::start(&[("p/a.txt", b"over tls")]);
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let first = write_leaf(&ca, dir.path(), "first");
    let tg = Tollgate::start(&tls_yaml(nginx.addr), dir.path()).await;
    let addr = tg.handle.proxy_addr;
    let tls13 = client_config(&ca, &[&rustls::version::TLS13], &[b"http/1.1"]);

    let mut kept = connect(addr, tls13.clone()).await;
    assert_eq!(kept.get_ref().1.peer_certificates().unwrap()[0].as_ref(), &first[..]);
    assert_eq!(request(&mut kept, "/p/a.txt").await, (200, "over tls".to_owned()));

    // TLS 1.2 is accepted; ALPN offers h2.
    let tls12 = client_config(&ca, &[&rustls::version::TLS12], &[b"h2", b"http/1.1"]);
    let s = connect(addr, tls12).await;
    assert_eq!(s.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // A client that only speaks TLS 1.1 gets an alert, never a ServerHello.
    let answer = tokio::task::spawn_blocking(move || tls11_client_hello(addr)).await.unwrap();
    assert_eq!(answer.first(), Some(&0x15), "expected a TLS alert record, got {answer:02x?}");

    // Rotation: new handshakes get the new certificate; the open connection
    // keeps working.
    let second = write_leaf(&ca, dir.path(), "second");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = connect(addr, tls13.clone()).await;
        if s.get_ref().1.peer_certificates().unwrap()[0].as_ref() == &second[..] {
            break;
        }
        assert!(Instant::now() < deadline, "rotated certificate never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(request(&mut kept, "/p/a.txt").await, (200, "over tls".to_owned()));

    // A broken rotation (garbage files) keeps the current certificate.
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = connect(addr, tls13).await;
    assert_eq!(s.get_ref().1.peer_certificates().unwrap()[0].as_ref(), &second[..]);
}

/// Sends a ClientHello offering only TLS 1.1 and returns what comes back.
fn tls11_client_hello(addr: SocketAddr) -> Vec<u8> {
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[0x42; 32]);
    hello.push(0x00);
    hello.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]);
    hello.extend_from_slice(&[0x01, 0x00]);
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    stream.write_all(&record).unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

fn limits_yaml(upstream: SocketAddr) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: {{ n: {{ url: "http://{upstream}" }} }}
routes: [ {{ name: p, prefix: /p/, upstream: n, auth: none }} ]
limits: {{ header_read_timeout: 1s, idle_timeout: 3s, max_connections: 40, max_header_bytes: 16KiB, max_uri_bytes: 4KiB }}
log: {{ access_log: false }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_while_normal_requests_keep_their_latency() {
    let nginx = Nginx::start(&[("p/a.txt", b"a")]);
    let dir = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&limits_yaml(nginx.addr), dir.path()).await;
    let addr = tg.handle.proxy_addr;

    // 20 clients dribbling a request head, one byte every 200ms; half start
    // like the HTTP/2 preface, which must not switch the head deadline off.
    let slow: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let started = Instant::now();
                let head: &[u8] = if i % 2 == 0 {
                    b"GET /p/a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                } else {
                    b"PRI /p/a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                };
                for b in head {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    let mut buf = [0u8; 64];
                    if matches!(s.read(&mut buf), Ok(0)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                started.elapsed()
            })
        })
        .collect();

    let http = Http::h1();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(http.get(&tg.url("/p/a.txt")).await.status, 200);
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(worst < Duration::from_millis(500), "normal requests slowed to {worst:?}");
    for handle in slow {
        let lasted = handle.join().unwrap();
        assert!(lasted < Duration::from_millis(2500), "a slowloris connection lived {lasted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_idle_and_connection_limits() {
    let nginx = Nginx::start(&[("p/a.txt", b"a")]);
    let dir = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&limits_yaml(nginx.addr), dir.path()).await;
    let addr = tg.handle.proxy_addr;
    let http = Http::h1();

    let big_header = "x".repeat(64 * 1024);
    let r = http.get_with(&tg.url("/p/a.txt"), &[("authorization", &big_header)]).await;
    assert_eq!((r.status, r.code().as_str()), (431, "headers_too_large"));
    let long = format!("/p/a.txt?{}", "q".repeat(100 * 1024));
    let answer = common::raw(addr, format!("GET {long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(common::raw_status(&answer), 414, "{}", &answer[..answer.len().min(200)]);
    let r = http.get(&tg.url(&format!("/p/a.txt?{}", "q".repeat(5000)))).await;
    assert_eq!((r.status, r.code().as_str()), (414, "uri_too_long"));

    // Idle keep-alive lasts idle_timeout (3s), longer than the head timeout (1s).
    let t = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /p/a.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 2048];
        assert!(s.read(&mut buf).unwrap() > 0);
        std::thread::sleep(Duration::from_millis(1500));
        s.write_all(b"GET /p/a.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let idle = Instant::now();
        let n = s.read(&mut buf).unwrap_or(0);
        (n, idle.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(t.0, 0, "the idle connection should be closed");
    assert!(t.1 > Duration::from_millis(2500) && t.1 < Duration::from_millis(4500), "closed after {:?}", t.1);

    // Connections beyond max_connections (40) are closed at once: of 50
    // opened together, at most 40 are served.
    std::thread::sleep(Duration::from_millis(500));
    let outcome = tokio::task::spawn_blocking(move || {
        let mut conns: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut served = 0;
        for c in &mut conns {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            if c.write_all(b"GET /p/a.txt HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
                continue;
            }
            let mut buf = [0u8; 64];
            if matches!(c.read(&mut buf), Ok(n) if n > 0) {
                served += 1;
            }
        }
        served
    })
    .await
    .unwrap();
    assert!((30..=40).contains(&outcome), "{outcome} of 50 connections served with max_connections 40");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http.get(&tg.url("/p/a.txt")).await.status, 200, "capacity returns when connections close");
}

/// HTTP/2 over TLS, as browsers speak it: many streams on one connection,
/// small answers (held back and combined into shared TLS records) and
/// large ones (which pass straight through), each arriving whole and
/// on its own stream; a lone request on an idle connection is answered too,
/// as is one after the connection has been quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_answers_every_stream_whole() {
    use http_body_util::{BodyExt, Empty};
    let small: Vec<Vec<u8>> = (0..8).map(|i| (0..700 + 97 * i).map(|b| (b * 7 + i) as u8).collect()).collect();
    let large: Vec<u8> = (0..300_000u32).map(|b| (b % 251) as u8).collect();
    let mut files: Vec<(String, Vec<u8>)> =
        small.iter().enumerate().map(|(i, body)| (format!("p/s{i}.bin"), body.clone())).collect();
    files.push(("p/large.bin".to_owned(), large.clone()));
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let nginx = Nginx::start(&refs);
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    write_leaf(&ca, dir.path(), "h2");
    let tg = Tollgate::start(&tls_yaml(nginx.addr), dir.path()).await;
    let stream = connect(tg.handle.proxy_addr, client_config(&ca, &[&rustls::version::TLS13], &[b"h2"])).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let get = |path: String| {
        let mut sender = sender.clone();
        async move {
            let req =
                http::Request::get(format!("https://localhost{path}")).body(Empty::<bytes::Bytes>::new()).unwrap();
            let resp = sender.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
        }
    };
    let within = Duration::from_secs(20);

    // A lone request first: nothing else on the connection to wait for.
    let (status, body) = tokio::time::timeout(within, get("/p/s0.bin".to_owned())).await.expect("lone answer");
    assert_eq!((status, body), (200, small[0].clone()));

    // 200 streams at once, small and large interleaved.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200usize {
        let path = if n % 25 == 0 { "/p/large.bin".to_owned() } else { format!("/p/s{}.bin", n % 8) };
        let fut = get(path);
        tasks.spawn(async move { (n, fut.await) });
    }
    let all = tokio::time::timeout(within, tasks.join_all()).await.expect("every stream answered");
    assert_eq!(all.len(), 200);
    for (n, (status, body)) in all {
        assert_eq!(status, 200, "stream {n}");
        let want = if n % 25 == 0 { &large } else { &small[n % 8] };
        assert!(body == *want, "stream {n}: {} bytes, wanted {}", body.len(), want.len());
    }

    // After a quiet spell, the same connection answers again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = tokio::time::timeout(within, get("/p/s7.bin".to_owned())).await.expect("answer after quiet");
    assert_eq!((status, body), (200, small[7].clone()));
}
