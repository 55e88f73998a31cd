//! The serving threads: like nginx's workers, each thread runs its own single-threaded runtime
//! with its own accept loops, proxy and upstream connection pools, so a request is served start
//! to finish on one thread, with no hand-over between threads. The threads share the listening
//! sockets, the route table and the metrics, nothing else.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::apply::Shared;
use crate::proxy::Proxy;
use crate::server;

/// What every serving thread gets.
#[derive(Clone)]
pub struct Serving {
    pub shared: Arc<Shared>,
    pub access_log: Option<AccessLog>,
    /// Chooses each connection's TLS configuration (the ConfigMap's settings, the host's
    /// client authentication) or hands it over (`ssl-passthrough`).
    pub tls: Arc<crate::tls::Handshaker>,
    pub stop: watch::Receiver<bool>,
    /// How long in-flight requests get to finish after the stop signal.
    pub drain_timeout: Duration,
}

/// The number of serving threads when none is configured: one per CPU.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Starts `count` threads serving `http` and `https` until `serving.stop` turns true; each
/// then drains its connections and ends.
pub fn start(
    count: usize,
    http: &StdListener,
    https: &StdListener,
    serving: &Serving,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        let (http, https) = (http.try_clone()?, https.try_clone()?);
        let serving = serving.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("serve-{i}"))
                .spawn(move || serve(http, https, serving))?,
        );
    }
    Ok(threads)
}

fn serve(http: StdListener, https: StdListener, serving: Serving) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("a serving thread cannot start its runtime: {err}");
            return;
        }
    };
    runtime.block_on(async move {
        let (http, https) = match (TcpListener::from_std(http), TcpListener::from_std(https)) {
            (Ok(http), Ok(https)) => (http, https),
            (Err(err), _) | (_, Err(err)) => {
                tracing::error!("a serving thread cannot use the listeners: {err}");
                return;
            }
        };
        let proxy = Arc::new(Proxy::new(serving.shared, serving.access_log));
        let loops = [
            tokio::spawn(server::accept_loop(
                http,
                None,
                proxy.clone(),
                serving.stop.clone(),
            )),
            tokio::spawn(server::accept_loop(
                https,
                Some(serving.tls),
                proxy,
                serving.stop,
            )),
        ];
        let mut drains = Vec::new();
        for accept in loops {
            if let Ok(graceful) = accept.await {
                drains.push(graceful.shutdown());
            }
        }
        if tokio::time::timeout(serving.drain_timeout, futures::future::join_all(drains))
            .await
            .is_err()
        {
            tracing::warn!(
                "some requests were still in flight after {:?}",
                serving.drain_timeout
            );
        }
    });
}
