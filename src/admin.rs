//! The admin listener: `/metrics`, `/healthz` (the process serves),
//! `/readyz` (start-up done and not shutting down). Kept off the proxy port
//! so probes and scrapes never pass through authentication or routing.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::proxy::Shared;
use crate::proxy::body::ResponseBody;
use crate::proxy::respond::error_response;
use crate::server::Lifecycle;

/// Serves the admin endpoints until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, lifecycle: Arc<Lifecycle>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(std::time::Duration::from_secs(10));
    let builder = Arc::new(builder);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        let lifecycle = lifecycle.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = answer(&req, &shared, &lifecycle);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer(req: &Request<Incoming>, shared: &Shared, lifecycle: &Lifecycle) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut resp = Response::new(ResponseBody::full(shared.metrics.render()));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if lifecycle.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" if lifecycle.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        _ => error_response(StatusCode::NOT_FOUND, "no_route"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
