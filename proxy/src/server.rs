//! Accept loops: TcpListener → (PROXY protocol) → (ClientHello: passthrough, or TLS with the
//! host's configuration) → hyper-util's auto builder (HTTP/1.1 and HTTP/2, with
//! upgrades) → the proxy. Stopping a loop hands back its GracefulShutdown so the caller can
//! drain in-flight requests.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::compile::serving_config::{Listener, ServingConfig};
use crate::compile::tls_settings::TlsSettings;
use crate::proxy::{ConnInfo, Proxy};
use crate::proxy_protocol::{self, Prefixed};
use crate::tls::{Accepted, Handshaker, TlsFactory};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request line and headers together, as ingress-nginx's `large-client-header-buffers`
/// (4 × 8k); larger gets 431.
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The builder for the default settings: a client must send its next request's headers within
/// 75 s (ingress-nginx's `keep-alive`) of the connection being ready for them: it bounds both a
/// slow sender (slowloris) and an idle keep-alive connection, and outlives the 60 s idle
/// timeout of common cloud load balancers, so that the balancer closes first.
pub fn http_builder() -> auto::Builder<TokioExecutor> {
    http_builder_for(&Listener::default())
}

/// The builder for the controller ConfigMap's settings (`client-header-timeout` and
/// `keep-alive` share hyper's one header timer; `http2-max-concurrent-streams`).
pub fn http_builder_for(listener: &Listener) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listener.header_timeout)
        .keep_alive(listener.keep_alive)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(listener.http2_max_concurrent_streams);
    builder
}

/// What a loop accepts connections with, rebuilt when the ConfigMap's settings change (each
/// serving thread keeps its own, so no lock is shared).
struct Accepting {
    listener: Listener,
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<(TlsSettings, Arc<ServerConfig>)>,
}

impl Accepting {
    fn refresh(&mut self, serving: &ServingConfig, factory: Option<&TlsFactory>) {
        if self.listener != serving.listener {
            self.listener = serving.listener.clone();
            self.builder = Arc::new(http_builder_for(&self.listener));
        }
        let Some(factory) = factory else {
            return;
        };
        if self.tls.as_ref().is_some_and(|(s, _)| *s == serving.tls) {
            return;
        }
        match factory.config(&serving.tls) {
            Ok(config) => self.tls = Some((serving.tls.clone(), config)),
            // Cannot happen with settings that parsed; keep what works.
            Err(err) => tracing::error!("the TLS settings cannot be applied: {err}"),
        }
    }
}

/// Accepts until `shutdown` turns true, then returns the handle that drains the connections.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<Handshaker>>,
    proxy: Arc<Proxy>,
    mut shutdown: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut accepting = Accepting {
        listener: Listener::default(),
        builder: Arc::new(http_builder()),
        tls: None,
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        accepting.refresh(
            &proxy.shared().table.load().config.serving,
            tls.as_deref().map(Handshaker::factory),
        );
        let proxy_protocol = accepting
            .listener
            .proxy_protocol
            .then_some(accepting.listener.proxy_protocol_timeout);
        let handshake = match (&tls, &accepting.tls) {
            (Some(handshaker), Some((settings, config))) => {
                Some((handshaker.clone(), settings.clone(), config.clone()))
            }
            (Some(_), None) => continue,
            (None, _) => None,
        };
        let open = OpenConnection::new(&proxy);
        let proxy = proxy.clone();
        let watcher = graceful.watcher();
        let builder = accepting.builder.clone();
        tokio::spawn(async move {
            let _open = open;
            // `use-proxy-protocol`: the header first, or no connection.
            let (proxied, early) = match proxy_protocol {
                None => (None, Vec::new()),
                Some(timeout) => match proxy_protocol::read(&mut stream, timeout).await {
                    Ok(read) => read,
                    Err(err) => {
                        tracing::debug!(%peer, "connection refused: {err}");
                        return;
                    }
                },
            };
            let stream = Prefixed::new(early, stream);
            let result = match handshake {
                Some((handshaker, settings, config)) => {
                    let accepted = tokio::time::timeout(
                        TLS_HANDSHAKE_TIMEOUT,
                        handshaker.accept(stream, &config, &settings),
                    )
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
                    let info = Arc::new(
                        ConnInfo::new(peer, local_port, true)
                            .proxied(proxied)
                            .with_client(client),
                    );
                    let service = service_fn(move |req| proxy.clone().handle(info.clone(), req));
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let info = Arc::new(ConnInfo::new(peer, local_port, false).proxied(proxied));
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
