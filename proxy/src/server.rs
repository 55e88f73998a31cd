//! Accept loops: TcpListener → (TLS) → hyper-util's auto builder (HTTP/1.1 and HTTP/2, with
//! upgrades) → the proxy. Stopping a loop hands back its GracefulShutdown so the caller can
//! drain in-flight requests.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::{ConnInfo, Proxy};
use crate::tls::{Accepted, Handshaker};

/// A client must send its next request's headers within this time, from when the connection
/// is ready for them: it bounds both a slow sender (slowloris) and an idle keep-alive
/// connection. ingress-nginx keeps idle connections 75 s, longer than the 60 s idle timeout of
/// common cloud load balancers, so that the balancer, not the proxy, closes them first.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(75);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request line and headers together, as ingress-nginx's `large-client-header-buffers`
/// (4 × 8k); larger gets 431.
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Concurrent streams per HTTP/2 connection (nginx's `http2_max_concurrent_streams`).
const MAX_CONCURRENT_STREAMS: u32 = 128;

pub fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
}

/// Accepts until `shutdown` turns true, then returns the handle that drains the connections.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<Handshaker>>,
    proxy: Arc<Proxy>,
    mut shutdown: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(http_builder());
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let open = OpenConnection::new(&proxy);
        let proxy = proxy.clone();
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _open = open;
            let result = match tls {
                Some(handshaker) => {
                    let accepted =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshaker.accept(stream))
                            .await;
                    let (stream, client) = match accepted {
                        Ok(Ok(Accepted::Tls(stream, client))) => (stream, client),
                        Ok(Ok(Accepted::Passthrough(stream, hello, upstream))) => {
                            crate::passthrough::splice(stream, hello, &upstream).await;
                            return;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {err}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let info = Arc::new(ConnInfo::new(peer, local_port, true).with_client(client));
                    let service = service_fn(move |req| proxy.clone().handle(info.clone(), req));
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let info = Arc::new(ConnInfo::new(peer, local_port, false));
                    let service = service_fn(move |req| proxy.clone().handle(info.clone(), req));
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, "connection ended with an error: {err}");
            }
        });
    }
    graceful
}

/// Counts a client connection as open for as long as it lives.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl OpenConnection {
    fn new(proxy: &Proxy) -> Self {
        let metrics = &proxy.shared().metrics;
        metrics.connections_accepted.inc();
        metrics.open_connections.inc();
        Self(metrics.open_connections.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
