//! The request body and the crate's one boxed error type. A leaf: it imports
//! nothing of the crate.
//!
//! `RequestBody` passes the client's body to the upstream frame by frame,
//! never collected, and fails the stream as soon as it exceeds the route's
//! limit. (What tollgate answers with is `proxy::answers::ResponseBody`.)

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Why a request body stream failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the route's limit")]
    TooLarge,
    #[error("client body: {0}")]
    Client(#[from] hyper::Error),
}

/// The client's body on its way upstream, with an optional size limit.
pub struct RequestBody {
    inner: Option<Incoming>,
    /// Bytes still allowed; `u64::MAX` when unlimited.
    remaining: u64,
}

impl RequestBody {
    /// Wraps a client body; `limit` 0 means unlimited.
    pub fn new(inner: Incoming, limit: u64) -> Self {
        RequestBody { inner: Some(inner), remaining: if limit == 0 { u64::MAX } else { limit } }
    }

    /// An empty body.
    pub fn empty() -> Self {
        RequestBody { inner: None, remaining: u64::MAX }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.inner = None;
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// The error a response body fails with (hyper's, or a splice's I/O error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
