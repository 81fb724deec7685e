//! The answers to request heads hyper cannot take (docs/reference.md: Answers, limits).
//!
//! hyper answers a head it cannot parse itself, before any service sees
//! the request: a target longer than its fixed 65,534 bytes (414), a head
//! past its read buffer (431), bytes that are not HTTP (400). Its answer is
//! a bare status line with an empty body. Heads within those buffers but
//! past tollgate's own limits are answered by the request path with the
//! documented JSON; this wrapper gives the heads past hyper's buffers the
//! same answer, so a client sees one behaviour whatever the size.
//!
//! It sits between hyper and the connection (above TLS) and replaces
//! hyper's automatic answer on the way out. That answer is recognised by
//! its shape and its moment: hyper writes it only when no request of the
//! connection is in flight (its writer is idle), as one complete head with
//! nothing after it, and closes the connection afterwards. Everything else
//! passes through untouched, and costs one comparison per write.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::timeouts::Activity;
use crate::metrics::Outcome;
use crate::proxy::Shared;
use crate::proxy::answers::Rejection;

/// A connection whose head errors are answered as tollgate answers them.
pub struct HeadErrors<T> {
    inner: T,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
    /// The replacement answer being written, and how much of it is out.
    pending: Option<Box<(Vec<u8>, usize)>>,
}

impl<T> HeadErrors<T> {
    pub fn new(inner: T, activity: Arc<Activity>, shared: Arc<Shared>) -> Self {
        HeadErrors { inner, activity, shared, pending: None }
    }

    /// The replacement when `buf` is hyper's automatic answer to a head it
    /// could not take, written while no request is in flight.
    fn replacement(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let rest = buf.strip_prefix(b"HTTP/1.1 ").or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
        if buf.len() > 512 || !buf.ends_with(b"\r\n\r\n") || !self.activity.idle() {
            return None;
        }
        let rejection = match rest.get(..4)? {
            b"414 " => Rejection::UriTooLong,
            b"431 " => Rejection::HeadersTooLarge,
            b"400 " => Rejection::NotNormal,
            _ => return None,
        };
        let (status, code) = rejection.status_and_code();
        let date = buf
            .split(|b| *b == b'\n')
            .find(|line| line.len() > 6 && line[..6].eq_ignore_ascii_case(b"date: "))
            .map(|line| String::from_utf8_lossy(line.trim_ascii_end()).into_owned());
        let body = format!("{{\"error\":\"{code}\"}}\n");
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        if let Some(date) = date {
            out.push_str(&date);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&body);
        self.count(status.as_u16(), code);
        Some(out.into_bytes())
    }

    /// Counts and logs the refusal as the request path would have (no
    /// route, no method, no path: the head was never read).
    fn count(&self, status: u16, code: &'static str) {
        self.shared.metrics.unmatched().outcome(Outcome::Malformed).inc();
        if self.shared.runtime.load().config.log.access_log {
            tracing::info!(
                target: "tollgate::access",
                route = crate::metrics::UNMATCHED,
                status,
                outcome = Outcome::Malformed.label(),
                reason = code,
                "Request head refused"
            );
        }
    }
}

impl<T: AsyncWrite + Unpin> HeadErrors<T> {
    /// Writes out the replacement; `Ready(Ok)` once none is left.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(pending) = self.pending.as_mut() {
            let (bytes, written) = &mut **pending;
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadErrors<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadErrors<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none()
            && let Some(answer) = this.replacement(buf)
        {
            this.pending = Some(Box::new((answer, 0)));
            // hyper's bytes are taken; ours go out now or on its flush.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        match this.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_write(cx, buf),
            other => other.map_ok(|()| 0),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none()
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && bufs.iter().map(|b| b.len()).sum::<usize>() == first.len()
            && let Some(answer) = this.replacement(first)
        {
            this.pending = Some(Box::new((answer, 0)));
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(first.len()));
        }
        match this.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            other => other.map_ok(|()| 0),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
