//! `ssl-passthrough` (with `--enable-ssl-passthrough`): the ClientHello is read before TLS
//! termination, bounded in size (and, by the caller, in time), to learn its SNI. A connection
//! for a passthrough host is spliced, bytes untouched, to the host's backend; any other goes on
//! to TLS termination with the bytes read so far replayed first ([`Prefixed`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::routes::Upstream;

/// A ClientHello larger than this is not peeked at (it is served, terminated, as any other):
/// one full TLS record and then some, for hellos split over records.
const MAX_HELLO: usize = 32 * 1024;
/// ingress-nginx's `proxy-connect-timeout` default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads until the ClientHello is complete (or is not one, or is too large) and returns the
/// bytes read and the SNI it names.
pub async fn read_client_hello(stream: &mut TcpStream) -> io::Result<(Vec<u8>, Option<String>)> {
    let mut buffer = Vec::with_capacity(2048);
    let mut acceptor = rustls::server::Acceptor::default();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok((buffer, None));
        }
        let new = &chunk[..n];
        buffer.extend_from_slice(new);
        let mut reader = new;
        while !reader.is_empty() {
            if acceptor.read_tls(&mut reader).is_err() {
                return Ok((buffer, None));
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted.client_hello().server_name().map(str::to_owned);
                return Ok((buffer, sni));
            }
            Ok(None) if buffer.len() < MAX_HELLO => {}
            // Not TLS, or too large to look at: TLS termination will answer it.
            _ => return Ok((buffer, None)),
        }
    }
}

/// Connects to one of the upstream's endpoints (round-robin, the next on a failed connect),
/// replays what was read, and copies both ways until either side closes.
pub async fn splice(mut client: TcpStream, hello: Vec<u8>, upstream: &Upstream) {
    let count = upstream.endpoints.len();
    let first = upstream.pick();
    for attempt in 0..count.min(2) {
        let endpoint = &upstream.endpoints[(first + attempt) % count];
        let connect = TcpStream::connect(endpoint.as_str());
        let mut backend = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(backend)) => backend,
            Ok(Err(err)) => {
                tracing::warn!(upstream = %endpoint, service = %upstream.service, "ssl-passthrough connect failed: {err}");
                continue;
            }
            Err(_) => {
                tracing::warn!(upstream = %endpoint, service = %upstream.service, "ssl-passthrough connect timed out");
                continue;
            }
        };
        let _ = backend.set_nodelay(true);
        if backend.write_all(&hello).await.is_err() {
            return;
        }
        if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!(upstream = %endpoint, "ssl-passthrough connection ended: {err}");
        }
        return;
    }
}

/// A stream that first yields bytes already read from it.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.offset < this.prefix.len() {
            let rest = &this.prefix[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            if this.offset == this.prefix.len() {
                this.prefix = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefixed_streams_replay_then_read_on() {
        let (client, mut server) = tokio::io::duplex(64);
        server.write_all(b" world").await.unwrap_or_default();
        drop(server);
        let mut stream = Prefixed::new(b"hello".to_vec(), client);
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap_or_default();
        assert_eq!(out, "hello world");
    }
}
