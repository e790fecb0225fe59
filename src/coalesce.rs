//! Writes to a connection held until its flush, so that what HTTP/2 writes in pieces leaves
//! in one system call. h2 copies a DATA frame's payload into its write buffer only below a
//! threshold (256 bytes on a socket that takes vectored writes, 1,024 otherwise); a larger
//! payload is kept aside, and the next frame — another stream's response, or the trailers
//! of the same one — must wait for a write of its own. An Execute's events are a few
//! hundred bytes: each response left in two writes, and at 64 clients in-memory Execute
//! ran ~25% slower (BENCHMARKS.md, session 16). This wrapper says it takes no vectored
//! writes (so h2 copies payloads up to 1,024 bytes) and collects every write up to
//! [`LIMIT`] until h2 flushes: headers, events and trailers, of every stream ready, leave
//! together.
//!
//! A client's connection ([`Coalescing::batching`]) also waits once before a small flush.
//! hyper hands a request's body to h2 only after its headers are queued, so h2 flushes the
//! headers alone and the body follows in a second write: the server wakes for each. Like
//! grpc-go's writer, a flush of less than [`MIN_BATCH`] bytes first lets the tasks ready on
//! this thread run, so the body joins its headers.

use std::{
    future::Future,
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held before a write goes to the socket.
const LIMIT: usize = 16 * 1024;
/// A buffer that grew beyond this is given back after its flush: an idle connection keeps
/// at most this much.
const KEEP: usize = 4 * 1024;
/// Below this, a batching connection's flush waits for the tasks ready on its thread first
/// (grpc-go's `minBatchSize`).
const MIN_BATCH: usize = 1000;

pub struct Coalescing<T: WriteNow> {
    inner: T,
    pending: Vec<u8>,
    batching: bool,
    /// The wait of the flush in progress: a yield to the tasks ready on this thread.
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// A write that does not wait, for what is still held when the connection is dropped.
pub trait WriteNow {
    fn write_now(&self, buf: &[u8]) -> io::Result<usize>;
}

impl WriteNow for tokio::net::TcpStream {
    fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

/// What a connection wrote but never flushed still leaves, if the socket takes it at once:
/// a TLS handshake that fails writes its alert (the client's "certificate required", say)
/// and drops the connection without a flush.
impl<T: WriteNow> Drop for Coalescing<T> {
    fn drop(&mut self) {
        let mut rest = &self.pending[..];
        while !rest.is_empty() {
            match self.inner.write_now(rest) {
                Ok(n) if n > 0 => rest = &rest[n..],
                _ => break,
            }
        }
    }
}

impl<T: WriteNow> Coalescing<T> {
    pub fn new(inner: T) -> Self {
        Coalescing {
            inner,
            pending: Vec::new(),
            batching: false,
            waiting: None,
        }
    }

    /// A connection whose small flushes first wait for the tasks ready on this thread, so
    /// that a request's body leaves with its headers.
    pub fn batching(inner: T) -> Self {
        let mut connection = Coalescing::new(inner);
        connection.batching = true;
        connection
    }
}

impl<T: AsyncWrite + WriteNow + Unpin> Coalescing<T> {
    /// Sends what is held, until none is left or the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        if self.pending.capacity() > KEEP {
            self.pending = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + WriteNow + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.pending.len() + buf.len() <= LIMIT {
            me.pending.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        // Too much to hold: what is held leaves first, with as much of `buf` as the socket
        // takes in the same call.
        while !me.pending.is_empty() {
            let slices = [IoSlice::new(&me.pending), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut me.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < me.pending.len() {
                me.pending.drain(..n);
                continue;
            }
            let of_buf = n - me.pending.len();
            me.pending.clear();
            if of_buf > 0 {
                return Poll::Ready(Ok(of_buf));
            }
        }
        Pin::new(&mut me.inner).poll_write(cx, buf)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.batching && !me.pending.is_empty() && me.pending.len() < MIN_BATCH {
            // tokio's yield puts this task behind every task already ready here (hyper's
            // body pipe among them), so h2 is polled again once they have queued their
            // frames: the flush after that sends them all.
            let wait = me
                .waiting
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            ready!(wait.as_mut().poll(cx));
        }
        me.waiting = None;
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + WriteNow + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A sink that keeps each write call it gets apart, taking at most `max` bytes a call:
    /// the calls are what the wrapper is about, and no socket reports them.
    #[derive(Default)]
    struct Calls {
        writes: Vec<Vec<u8>>,
        max: Option<usize>,
    }

    impl WriteNow for Calls {
        fn write_now(&self, _: &[u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl AsyncWrite for Calls {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.max.map_or(buf.len(), |m| m.min(buf.len()));
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if let Some(m) = self.max {
                all.truncate(m);
            }
            let n = all.len();
            self.writes.push(all);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn small_writes_leave_together_at_the_flush() {
        let mut w = Coalescing::new(Calls::default());
        w.write_all(b"headers").await.unwrap();
        w.write_all(&[7; 400]).await.unwrap();
        w.write_all(b"trailers").await.unwrap();
        assert!(
            w.inner.writes.is_empty(),
            "nothing is sent before the flush"
        );
        w.flush().await.unwrap();
        assert_eq!(w.inner.writes.len(), 1);
        assert_eq!(w.inner.writes[0].len(), 7 + 400 + 8);
        assert!(w.inner.writes[0].starts_with(b"headers"));
        assert!(w.inner.writes[0].ends_with(b"trailers"));
    }

    #[tokio::test]
    async fn a_write_beyond_the_limit_leaves_with_what_was_held_in_one_call() {
        let mut w = Coalescing::new(Calls::default());
        w.write_all(b"head").await.unwrap();
        w.write_all(&vec![1; LIMIT]).await.unwrap();
        assert_eq!(w.inner.writes.len(), 1);
        assert_eq!(w.inner.writes[0].len(), 4 + LIMIT);
        w.flush().await.unwrap();
        assert_eq!(w.inner.writes.len(), 1, "nothing was left to flush");
    }

    #[tokio::test]
    async fn partial_writes_keep_every_byte_in_order() {
        let mut w = Coalescing::new(Calls {
            max: Some(1000),
            ..Calls::default()
        });
        let mut sent = Vec::new();
        for i in 0..50u8 {
            let chunk = vec![i; 97 * usize::from(i) + 1];
            w.write_all(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
        }
        w.shutdown().await.unwrap();
        assert_eq!(w.inner.writes.concat(), sent);
        assert!(w.pending.capacity() <= KEEP);
    }

    /// What h2 does on a client: it queues a request's headers and flushes; hyper's body
    /// task, ready by then, queues the body, and h2 writes it and flushes again. Emulated
    /// here with a channel for the body and one polling loop for h2.
    async fn headers_then_body(mut w: Coalescing<Calls>) -> Vec<Vec<u8>> {
        let (body_tx, mut body_rx) = tokio::sync::mpsc::unbounded_channel::<&[u8]>();
        tokio::spawn(async move { body_tx.send(b"body").unwrap() });
        w.write_all(b"headers").await.unwrap();
        let mut flushes = 0;
        std::future::poll_fn(|cx| {
            while let Ok(frame) = body_rx.try_recv() {
                assert!(Pin::new(&mut w).poll_write(cx, frame).is_ready());
            }
            let flushed = ready!(Pin::new(&mut w).poll_flush(cx));
            flushes += 1;
            // h2 flushes again when the body has come since its last flush.
            if flushes < 2 && w.inner.writes.concat() == b"headers" {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(flushed)
        })
        .await
        .unwrap();
        std::mem::take(&mut w.inner.writes)
    }

    #[tokio::test]
    async fn a_batching_flush_lets_a_ready_body_join_its_headers() {
        assert_eq!(
            headers_then_body(Coalescing::new(Calls::default())).await,
            [b"headers".to_vec(), b"body".to_vec()],
            "without the wait, the headers leave alone"
        );
        assert_eq!(
            headers_then_body(Coalescing::batching(Calls::default())).await,
            [b"headersbody".to_vec()]
        );
    }

    #[test]
    fn a_batching_flush_of_a_full_batch_does_not_wait() {
        let mut w = Coalescing::batching(Calls::default());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let full = vec![3; MIN_BATCH];
        assert!(Pin::new(&mut w).poll_write(&mut cx, &full).is_ready());
        assert!(Pin::new(&mut w).poll_flush(&mut cx).is_ready());
        assert_eq!(w.inner.writes, [full]);
    }

    /// A connection dropped with writes held (a failed TLS handshake's alert) still sends them.
    #[tokio::test]
    async fn what_is_held_leaves_when_the_connection_is_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut w = Coalescing::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (mut socket, _) = listener.accept().await.unwrap();
        w.write_all(b"alert: certificate required").await.unwrap();
        drop(w);
        let mut got = Vec::new();
        socket.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"alert: certificate required");
    }

    /// Over a real loopback connection, mixed sizes arrive whole and in order.
    #[tokio::test]
    async fn a_socket_receives_everything_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            socket.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut w = Coalescing::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut sent = Vec::new();
        for i in 0..200u32 {
            let chunk = vec![(i % 251) as u8; (i as usize * 7919) % 40_000 + 1];
            w.write_all(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
            if i % 3 == 0 {
                w.flush().await.unwrap();
            }
        }
        w.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), sent);
    }
}
