//! An upstream that records the exact bytes of every request it receives
//! and answers each with a small 200 (one request per connection).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every connection's bytes, in arrival order.
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<Mutex<usize>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let rec = Recorder { addr: listener.local_addr().unwrap(), seen: Arc::default(), connections: Arc::default() };
        let r = rec.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                *r.connections.lock().unwrap() += 1;
                let seen = r.seen.clone();
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut all = Vec::new();
                    let mut buf = [0u8; 8192];
                    while !complete(&all) {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => all.extend_from_slice(&buf[..n]),
                        }
                    }
                    // Anything sent after one complete request would be a
                    // smuggled or pipelined second one: record it too.
                    stream.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
                    if let Ok(n) = stream.read(&mut buf) {
                        all.extend_from_slice(&buf[..n]);
                    }
                    if !all.is_empty() {
                        seen.lock().unwrap().push(all);
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                });
            }
        });
        rec
    }

    /// Requests received so far, as text.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    /// Connections accepted so far (including empty ones).
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// Whether `bytes` hold one complete request (head plus framed body).
fn complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let body = &bytes[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        return body.windows(5).any(|w| w == b"0\r\n\r\n");
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= len
}
