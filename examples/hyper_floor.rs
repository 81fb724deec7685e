//! The memory floor of an idle HTTP/1.1 keep-alive connection in the
//! stack tollgate is built on (tokio, hyper, hyper-util, mimalloc), without
//! anything of tollgate: `benches/scale.sh` runs it next to tollgate, so
//! the per-connection figures can be split into what the stack keeps and
//! what tollgate adds.
//!
//! Usage: hyper_floor <port> [auto|http1|headers]
//! Answers every request with 1 KiB on a single-threaded runtime; `headers`
//! adds the nine headers nginx sends with a file (hyper keeps the last
//! answer's header map for the next request, so their number shows).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(18082);
    let mode = args.get(2).map_or("auto", String::as_str);
    let auto = mode == "auto";
    let headers = mode == "headers";
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let body = Bytes::from(vec![b'x'; 1024]);
        loop {
            let (stream, _) = listener.accept().await?;
            let body = body.clone();
            let service = service_fn(move |_req| {
                let body = body.clone();
                async move {
                    let mut resp = http::Response::new(Full::new(body));
                    if headers {
                        for (name, value) in [
                            ("server", "nginx/1.22.1"),
                            ("date", "Sat, 05 Dec 2026 10:00:00 GMT"),
                            ("content-type", "application/octet-stream"),
                            ("content-length", "1024"),
                            ("last-modified", "Sat, 05 Dec 2026 09:00:00 GMT"),
                            ("etag", "\"6932c0c0-400\""),
                            ("accept-ranges", "bytes"),
                            ("referrer-policy", "no-referrer"),
                            ("cache-control", "private"),
                        ] {
                            resp.headers_mut().insert(name, http::HeaderValue::from_static(value));
                        }
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                if auto {
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(io, service).await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                }
            });
        }
    })
}
