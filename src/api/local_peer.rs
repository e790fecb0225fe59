//! Who is on the other end of a loopback connection. With auth off the server listens on
//! loopback only, but every user of the machine can reach loopback: the kernel knows which
//! user owns the client's socket (`/proc/net/tcp`), so a caller that is not the user running
//! wfm can be turned away without any setup. Read once per connection, at accept.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use crate::coalesce::Coalescing;

/// What the server knows of a connection's peer; in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The owner of the client's socket when it is not the user running wfm (loopback
    /// connections only: the kernel knows nothing of a remote socket).
    pub other_user: Option<u32>,
}

/// An accepted connection and what is known of its peer. Its writes wait for the flush
/// (see [`Coalescing`]).
pub struct PeerStream {
    inner: Coalescing<TcpStream>,
    info: PeerInfo,
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info
    }
}

/// The accepted connections of `listener`, with TCP_NODELAY (without it, a streamed event
/// can wait ~40 ms behind Nagle's algorithm) and, when `check_owner`, the owner of each
/// loopback peer's socket.
pub fn incoming(
    listener: TcpListener,
    check_owner: bool,
) -> impl Stream<Item = io::Result<PeerStream>> {
    let me = check_owner.then(effective_uid);
    futures_util::stream::unfold(listener, move |listener| async move {
        let accepted = listener.accept().await;
        if let Err(e) = &accepted {
            // Out of file descriptors, say: the next accept would fail at once too.
            tracing::warn!(error = %e, "cannot accept a connection");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let accepted = accepted.and_then(|(stream, peer)| {
            stream.set_nodelay(true)?;
            let other_user = match (me, stream.local_addr()) {
                (Some(me), Ok(local)) if peer.ip().is_loopback() => {
                    owner_uid(local, peer).filter(|uid| *uid != me)
                }
                _ => None,
            };
            Ok(PeerStream {
                inner: Coalescing::new(stream),
                info: PeerInfo { other_user },
            })
        });
        Some((accepted, listener))
    })
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid owning the client socket of the connection `server` ← `client`: the kernel's
/// table lists it with the client's address as its local one.
fn owner_uid(server: SocketAddr, client: SocketAddr) -> Option<u32> {
    let table = match client.ip() {
        IpAddr::V4(_) => "/proc/net/tcp",
        IpAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    let (local, remote) = (proc_address(client), proc_address(server));
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.get(7)?.parse().ok())
            .flatten()
    })
}

/// An address as `/proc/net/tcp` writes it: the address's 32-bit words each in host
/// (little-endian) order, in hex, then the port in hex.
fn proc_address(addr: SocketAddr) -> String {
    let octets: Vec<u8> = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    let words: String = octets
        .chunks(4)
        .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .collect();
    format!("{words}:{:04X}", addr.port())
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's table names this process as the owner of a loopback client socket.
    #[tokio::test]
    async fn finds_the_owner_of_a_loopback_client_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).await.unwrap();
        let (_accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(owner_uid(server, peer), Some(effective_uid()));
    }

    #[test]
    fn writes_addresses_as_the_kernel_does() {
        // 127.0.0.1:8080 on a little-endian machine.
        if cfg!(target_endian = "little") {
            assert_eq!(
                proc_address("127.0.0.1:8080".parse().unwrap()),
                "0100007F:1F90"
            );
        }
    }
}
