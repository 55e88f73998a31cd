//! `ssl-passthrough` (with `--enable-ssl-passthrough`): the ClientHello is read before TLS
//! termination, bounded in size (and, by the caller, in time), to learn its SNI. A connection
//! for a passthrough host is spliced, bytes untouched, to the host's backend; any other goes on
//! to TLS termination with the bytes read so far replayed first
//! ([`crate::proxy_protocol::Prefixed`]).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::routes::Upstream;

/// A ClientHello larger than this is not peeked at (it is served, terminated, as any other):
/// one full TLS record and then some, for hellos split over records.
const MAX_HELLO: usize = 32 * 1024;
/// ingress-nginx's `proxy-connect-timeout` default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads until the ClientHello is complete (or is not one, or is too large) and returns the
/// bytes read and the SNI it names.
pub async fn read_client_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<(Vec<u8>, Option<String>)> {
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
pub async fn splice<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    hello: Vec<u8>,
    upstream: &Upstream,
) {
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
