//! The request body and the crate's one boxed error type. A leaf: it imports
//! nothing of the crate.
//!
//! `RequestBody` passes the client's body to the upstream frame by frame,
//! never collected, and fails the stream as soon as it exceeds the route's
//! limit. (What tollgate answers with is `proxy::answers::ResponseBody`.)
//! `Observed` wraps an answer's body to learn, once, how much of it went
//! out and whether it ended (download records); `Paced` holds an answer's
//! frames back to a byte rate after a burst (`response_rate`).

use std::future::Future as _;
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

/// What an [`Observed`] body reports when it ends or is dropped: the data
/// bytes it yielded, and whether it reached its end.
pub type OnEnd = Box<dyn FnOnce(u64, bool) + Send + Sync>;

/// A body that counts the data bytes it yields and calls its [`OnEnd`]
/// exactly once: at its end (`true`), on an error or when dropped first
/// (`false`: the client left, or the upstream broke off).
pub struct Observed<B> {
    inner: B,
    bytes: u64,
    on_end: Option<OnEnd>,
}

impl<B> Observed<B> {
    pub fn new(inner: B, on_end: OnEnd) -> Self {
        Observed { inner, bytes: 0, on_end: Some(on_end) }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(report) = self.on_end.take() {
            report(self.bytes, complete);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Observed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Observed<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// A body sent at no more than `rate` bytes a second once `burst` bytes
/// went out (nginx's `limit_rate_after` and `limit_rate`): a frame that
/// would run ahead is held until its time.
pub struct Paced<B> {
    inner: B,
    rate: u64,
    burst: u64,
    sent: u64,
    /// When the burst was used up (the rate counts from then).
    paced_from: Option<tokio::time::Instant>,
    /// A frame held back, and the sleep until it may go.
    held: Option<(Frame<Bytes>, Pin<Box<tokio::time::Sleep>>)>,
}

impl<B> Paced<B> {
    pub fn new(inner: B, rate: u64, burst: u64) -> Self {
        Paced { inner, rate: rate.max(1), burst, sent: 0, paced_from: None, held: None }
    }

    /// When a frame that brings the total to `total` bytes may go.
    fn due(&mut self, total: u64) -> Option<tokio::time::Instant> {
        let over = total.checked_sub(self.burst).filter(|o| *o > 0)?;
        let from = *self.paced_from.get_or_insert_with(tokio::time::Instant::now);
        let due = from + std::time::Duration::from_secs_f64(over as f64 / self.rate as f64);
        (due > tokio::time::Instant::now()).then_some(due)
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Paced<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if let Some((_, sleep)) = &mut this.held {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some((frame, _)) = this.held.take() {
                return Poll::Ready(Some(Ok(frame)));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                this.sent += len;
                match this.due(this.sent) {
                    Some(due) => {
                        let mut sleep = Box::pin(tokio::time::sleep_until(due));
                        if sleep.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        this.held = Some((frame, sleep));
                        Poll::Pending
                    }
                    None => Poll::Ready(Some(Ok(frame))),
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
