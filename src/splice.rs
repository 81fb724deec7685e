//! Large downloads without a copy through tollgate: the body moves from the
//! upstream socket into a pipe and from the pipe into the client socket with
//! `splice(2)`, so its bytes never enter user space.
//!
//! Used when both sockets are plain TCP, the client speaks HTTP/1.x, the
//! request is a GET and the upstream answers 200 or 206 with a
//! `Content-Length` of at least [`MIN_LEN`]. Every other answer is streamed
//! through hyper as before. hyper owns both sockets, so each side is handed
//! over explicitly:
//!
//! - **Upstream** ([`Handover`]): hyper's client may already hold the first
//!   bytes of the body in its read buffer. The body asks for the socket and
//!   keeps passing on hyper's frames until hyper, its buffer empty, reads the
//!   socket again. That read parks instead (`upstream::conn::Tracked`) and
//!   leaves a duplicate of the socket behind, from which the rest of the body
//!   is spliced. The connection is never reused afterwards: when the body
//!   ends, the parked read returns end-of-file and hyper closes it.
//! - **Client** ([`Outlet`], [`SpliceOut`]): hyper writes what the body yields,
//!   in order. A spliced chunk is yielded as a slice of the static [`MARKER`];
//!   the client socket's wrapper recognises marker slices by address and
//!   moves that many bytes from the pipe instead of writing them.
//!
//! Invariant: the pipe holds exactly the marker bytes yielded and not yet
//! written. A marker byte with no pipe byte behind it is an I/O error (the
//! client connection is cut); a zero never reaches the wire. The body fills
//! the pipe only when it is empty, so a `splice` that would block always
//! means the upstream socket has nothing to read (filling it further while
//! the client socket drains it measured no faster on loopback, and made
//! that refusal ambiguous: pipe full, or socket empty).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use prometheus::IntCounter;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::body::BoxError;
use crate::upstream::conn::Handover;
use crate::upstream::pool::UpstreamBody;

/// The smallest body worth a pipe: below it, copying costs less than the
/// pipe's set-up and the upstream connection it uses up.
pub const MIN_LEN: u64 = 1 << 20;

/// Pipe capacity asked for (the kernel's default is 64 KiB).
const PIPE_SIZE: usize = 1 << 20;

/// Stands for spliced bytes on their way through hyper; never read.
static MARKER: [u8; PIPE_SIZE] = [0; PIPE_SIZE];

/// Whether `bytes` is (part of) a marker.
fn is_marker(bytes: &[u8]) -> bool {
    let start = MARKER.as_ptr() as usize;
    let at = bytes.as_ptr() as usize;
    !bytes.is_empty() && at >= start && at < start + MARKER.len()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A smaller pipe only means more, smaller splices.
        let size = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))?
            .min(PIPE_SIZE);
        Ok(Pipe { read, write, size })
    }
}

/// Moves up to `len` bytes from `from` to `to` once `socket` (one of the
/// two) is ready for `interest`. A refusal clears tokio's readiness and waits
/// for the next; moving nothing means the socket side is closed.
fn poll_splice(
    cx: &mut Context<'_>,
    socket: &TcpStream,
    interest: Interest,
    from: impl AsFd,
    to: impl AsFd,
    len: usize,
) -> Poll<io::Result<usize>> {
    loop {
        if interest.is_readable() {
            std::task::ready!(socket.poll_read_ready(cx))?;
        } else {
            std::task::ready!(socket.poll_write_ready(cx))?;
        }
        let spliced = socket.try_io(interest, || {
            rustix::pipe::splice(&from, None, &to, None, len, SpliceFlags::NONBLOCK | SpliceFlags::MOVE)
                .map_err(io::Error::from)
        });
        match spliced {
            Ok(0) if interest.is_readable() => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(moved) => return Poll::Ready(Ok(moved)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

fn broken(what: &'static str) -> io::Error {
    io::Error::other(what)
}

/// The client side of one plain connection: the pipe of the response being
/// spliced, shared by that response's body and the connection's socket.
#[derive(Default)]
pub struct Outlet {
    state: Mutex<OutletState>,
}

#[derive(Default)]
struct OutletState {
    pipe: Option<Pipe>,
    /// Bytes in the pipe (marker bytes yielded and not yet written).
    fill: usize,
    /// The body, waiting for the pipe to empty.
    waiting: Option<Waker>,
    /// The body yielded its last marker: the pipe goes once it is empty.
    body_done: bool,
}

impl OutletState {
    /// The socket took the last byte in the pipe.
    fn drained(&mut self) {
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
        if self.body_done {
            self.pipe = None;
        }
    }
}

/// A plain client socket that writes marker slices from the outlet's pipe.
pub struct SpliceOut {
    inner: TcpStream,
    outlet: Arc<Outlet>,
}

impl SpliceOut {
    pub fn new(inner: TcpStream, outlet: Arc<Outlet>) -> Self {
        SpliceOut { inner, outlet }
    }

    /// Moves up to `want` bytes from the pipe to the socket.
    fn poll_splice(&self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let mut out = lock(&self.outlet.state);
        let Some(pipe) = out.pipe.as_ref() else {
            return Poll::Ready(Err(broken("splice: a marker without a pipe")));
        };
        let n = want.min(out.fill);
        if n == 0 {
            return Poll::Ready(Err(broken("splice: a marker without bytes in the pipe")));
        }
        let moved = std::task::ready!(poll_splice(cx, &self.inner, Interest::WRITABLE, &pipe.read, &self.inner, n))?;
        out.fill -= moved;
        if out.fill == 0 {
            out.drained();
        }
        Poll::Ready(Ok(moved))
    }
}

impl AsyncRead for SpliceOut {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SpliceOut {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if is_marker(buf) {
            return self.poll_splice(cx, buf.len());
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Plain bytes up to the first marker go out as usual; a marker at
        // the front comes from the pipe.
        match bufs.iter().position(|b| is_marker(b)) {
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            Some(0) => self.poll_splice(cx, bufs[0].len()),
            Some(at) => Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..at]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        // hyper queues body chunks without copying them only for vectored
        // sockets; a copied marker would be zeros on the wire.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A spliced body for an upstream answer where that is possible, else the
/// body back: `outlet` is the client connection's, given only for a GET
/// over plain HTTP/1.x; the rest is checked here (see the module header).
pub fn offer(
    parts: &http::response::Parts,
    body: UpstreamBody,
    outlet: &Arc<Outlet>,
    counter: &IntCounter,
) -> Result<SpliceBody, UpstreamBody> {
    if !matches!(parts.status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
        return Err(body);
    }
    let Some(len) = body.size_hint().exact().filter(|&len| len >= MIN_LEN) else { return Err(body) };
    let Some(handover) = crate::upstream::conn::handover(&parts.extensions) else { return Err(body) };
    {
        let mut out = lock(&outlet.state);
        if out.pipe.is_some() {
            // The previous spliced answer has not left yet (a pipelined
            // request): this one is streamed as usual.
            return Err(body);
        }
        match Pipe::new() {
            Ok(pipe) => {
                *out = OutletState { pipe: Some(pipe), ..OutletState::default() };
            }
            Err(e) => {
                tracing::debug!(error = %e, "No pipe for splicing; streaming instead");
                return Err(body);
            }
        }
    }
    handover.request();
    Ok(SpliceBody {
        incoming: Some(body),
        handover,
        socket: None,
        outlet: outlet.clone(),
        remaining: len,
        counter: counter.clone(),
    })
}

/// A response body spliced from the upstream socket (after whatever hyper
/// had already read).
pub struct SpliceBody {
    /// hyper's view of the body: its buffered frames first; kept to the end
    /// (dropping it makes hyper close the connection it still drives).
    incoming: Option<UpstreamBody>,
    handover: Arc<Handover>,
    /// The upstream socket's duplicate, once hyper parked.
    socket: Option<TcpStream>,
    outlet: Arc<Outlet>,
    /// Body bytes not yet yielded.
    remaining: u64,
    counter: IntCounter,
}

type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

impl SpliceBody {
    /// Frames hyper had read before it parked.
    fn poll_buffered(&mut self, cx: &mut Context<'_>) -> Option<Polled> {
        let incoming = self.incoming.as_mut()?;
        let parked = self.handover.is_parked();
        match Pin::new(incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.remaining = self.remaining.saturating_sub(data.len() as u64);
                }
                return Some(Poll::Ready(Some(Ok(frame))));
            }
            Poll::Ready(Some(Err(e))) => return Some(Poll::Ready(Some(Err(e.into())))),
            Poll::Ready(None) => {
                self.remaining = 0;
                return Some(Poll::Ready(None));
            }
            Poll::Pending => {}
        }
        // hyper parked before this poll, and its channel is empty: every
        // byte it read has been passed on; the rest is on the socket.
        if parked {
            return match self.take_socket() {
                Ok(()) => None,
                Err(e) => Some(Poll::Ready(Some(Err(e.into())))),
            };
        }
        if self.handover.parked_or_wake(cx) {
            // Parked meanwhile: look at the channel once more first.
            cx.waker().wake_by_ref();
        }
        Some(Poll::Pending)
    }

    fn take_socket(&mut self) -> io::Result<()> {
        let fd = self.handover.take_socket().ok_or_else(|| broken("splice: no upstream socket"))?;
        let socket = std::net::TcpStream::from(fd);
        socket.set_nonblocking(true)?;
        self.socket = Some(TcpStream::from_std(socket)?);
        Ok(())
    }

    /// Splices the next chunk into the (empty) pipe and yields its marker.
    fn poll_spliced(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Frame<Bytes>>> {
        let Some(socket) = self.socket.as_ref() else {
            return Poll::Ready(Err(broken("splice: no upstream socket")));
        };
        let mut out = lock(&self.outlet.state);
        if out.fill > 0 {
            out.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let Some(pipe) = out.pipe.as_ref() else {
            return Poll::Ready(Err(broken("splice: the pipe is gone")));
        };
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(pipe.size);
        let moved = std::task::ready!(poll_splice(cx, socket, Interest::READABLE, socket, &pipe.write, want))?;
        out.fill = moved;
        self.remaining -= moved as u64;
        out.body_done = self.remaining == 0;
        self.counter.inc_by(moved as u64);
        Poll::Ready(Ok(Frame::data(Bytes::from_static(&MARKER[..moved]))))
    }
}

impl Body for SpliceBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if this.socket.is_none()
            && let Some(polled) = this.poll_buffered(cx)
        {
            return polled;
        }
        this.poll_spliced(cx).map(|r| Some(r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Drop for SpliceBody {
    fn drop(&mut self) {
        self.handover.finish(self.remaining == 0);
        // hyper drops a body after its last frame, before writing it: the
        // pipe stays until the socket has taken every byte.
        let mut out = lock(&self.outlet.state);
        out.body_done = true;
        if out.fill == 0 {
            out.pipe = None;
        }
    }
}
