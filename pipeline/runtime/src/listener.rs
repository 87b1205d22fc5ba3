//! A TCP listener for axum that bounds the connections it holds open, and
//! optionally how long one may sit without reading or writing a byte: the
//! gateway's and the operations endpoint's defence against clients that
//! open many connections or hold one open doing nothing.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A listener that holds at most `permits` connections open; the next
/// waits in the kernel's backlog until one closes.
pub struct Bounded {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    idle: Option<Duration>,
}

impl Bounded {
    /// At most `connections` open at once. With `idle`, a connection that
    /// neither reads nor writes for that long is closed (not for the
    /// gateway's event streams, which may wait quietly for a reply).
    pub fn new(listener: TcpListener, connections: usize, idle: Option<Duration>) -> Self {
        Self {
            listener,
            permits: Arc::new(Semaphore::new(connections)),
            idle,
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // The semaphore is never closed.
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let idle = self
                        .idle
                        .map(|after| (after, Box::pin(tokio::time::sleep(after))));
                    return (
                        Counted {
                            stream,
                            idle,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait rather
                    // than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> tokio::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A connection that gives its permit back when it closes.
pub struct Counted {
    stream: TcpStream,
    /// The idle limit and the timer that runs out when it is reached.
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    _permit: OwnedSemaphorePermit,
}

impl Counted {
    /// Restarts the idle timer after progress; on no progress, fails the
    /// connection once the timer has run out.
    fn idle_check<T>(
        &mut self,
        cx: &mut TaskContext<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let Some((after, timer)) = self.idle.as_mut() else {
            return polled;
        };
        match polled {
            Poll::Ready(result) => {
                timer.as_mut().reset(Instant::now() + *after);
                Poll::Ready(result)
            }
            Poll::Pending => match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the connection was idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.idle_check(cx, polled)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.idle_check(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
