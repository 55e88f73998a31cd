//! Serving: bind the listeners, start a source and the compile loop, serve until SIGTERM or
//! SIGINT, then drain in-flight requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::apply::{self, Shared};
use crate::cli::Flags;
use crate::metrics::Metrics;
use crate::publish::{self, status::Publish};
use crate::sources::{files, kube};
use crate::{admin, tls, workers};

/// How long in-flight requests get to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the Lease release may hold up the exit.
const PUBLISH_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Files(#[from] files::FilesError),
    #[error(transparent)]
    Kube(#[from] kube::KubeError),
    #[error("cannot start the serving threads: {0}")]
    Workers(#[source] std::io::Error),
    #[error("cannot start the access log writer: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("cannot listen for stop signals: {0}")]
    Signal(#[source] std::io::Error),
}

/// A listener the serving threads share (each registers it with its own runtime).
fn bind_std(what: &'static str, addr: SocketAddr) -> Result<std::net::TcpListener, RunError> {
    let bound = std::net::TcpListener::bind(addr).and_then(|listener| {
        listener.set_nonblocking(true)?;
        Ok(listener)
    });
    bound.map_err(|source| RunError::Bind { what, addr, source })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { what, addr, source })
}

/// Without POD_NAMESPACE/POD_NAME (a local run): `default` and the hostname.
fn pod_identity() -> (String, String) {
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".to_owned());
    let pod = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_default();
    (namespace, pod)
}

pub async fn serve(flags: Flags) -> Result<(), RunError> {
    let options = flags.compile_options();
    let publish = match (&flags.publish_service, &flags.publish_address) {
        (Some(service), _) => Some(Publish::Service(service.clone())),
        (None, Some(addresses)) => Some(Publish::Addresses(publish::status::parse_addresses(
            addresses,
        ))),
        (None, None) => None,
    };
    if publish.is_some() && flags.manifests.is_some() {
        tracing::warn!(
            "--publish-service/--publish-address are ignored with --manifests (no cluster)"
        );
    }

    let (namespace, pod) = pod_identity();
    let shared = Arc::new(Shared::new(Metrics::new(
        &flags.controller_class,
        &namespace,
        &pod,
    )));

    // Fail early and clearly on a bad folder or cluster configuration, before listening.
    let (tx, rx) = watch::channel(None);
    let (compiled_tx, compiled_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut publisher = None;
    let source: tokio::task::JoinHandle<Result<(), RunError>> = match &flags.manifests {
        Some(dir) => {
            files::check_folder(dir)?;
            tracing::info!(dir = %dir.display(), "serving from a manifests folder, no cluster");
            let dir = dir.clone();
            tokio::spawn(async move {
                files::run(dir, tx).await;
                Ok(())
            })
        }
        None => {
            let client = kube::client(flags.kubeconfig.as_deref()).await?;
            let config = publish::Config {
                client: client.clone(),
                namespace: namespace.clone(),
                identity: pod.clone(),
                ingress_class: flags.ingress_class.clone(),
                publish,
            };
            publisher = Some(tokio::spawn(publish::run(
                config,
                compiled_rx,
                stop_rx.clone(),
            )));
            let namespace = flags.watch_namespace.clone();
            let configmap = flags.configmap.clone();
            tokio::spawn(async move { Ok(kube::run(client, namespace, configmap, tx).await?) })
        }
    };
    tokio::spawn(apply::run(shared.clone(), options, rx, compiled_tx));

    let http = bind_std("--http-addr", flags.http_addr)?;
    let https = bind_std("--https-addr", flags.https_addr)?;
    let metrics = bind("--metrics-addr", flags.metrics_addr).await?;
    tracing::info!(http = %flags.http_addr, https = %flags.https_addr, metrics = %flags.metrics_addr, "listening");

    let tls_config = Arc::new(tls::Handshaker::new(
        shared.clone(),
        tls::self_signed()?,
        flags.enable_ssl_passthrough,
    ));
    let access_log = if flags.access_log {
        let log = AccessLog::start(
            flags.access_log_format,
            Box::new(std::io::stdout()),
            shared.metrics.access_log_dropped.clone(),
        )
        .map_err(RunError::AccessLog)?;
        Some(log)
    } else {
        None
    };
    let serving = workers::Serving {
        shared: shared.clone(),
        access_log,
        tls: tls_config,
        stop: stop_rx,
        drain_timeout: DRAIN_TIMEOUT,
    };
    let threads = flags
        .worker_threads
        .map_or_else(workers::default_count, usize::from);
    let serving_threads =
        workers::start(threads, &http, &https, &serving).map_err(RunError::Workers)?;
    tracing::info!(threads, "serving");
    drop((http, https, serving));
    let admin_task = tokio::spawn(admin::serve(metrics, shared));

    let outcome = tokio::select! {
        signal = stop_signal() => signal,
        ended = source => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err),
            Err(join) => {
                tracing::error!("the configuration source failed: {join}");
                Ok(())
            }
        },
    };

    tracing::info!("stopping: no new connections, draining in-flight requests");
    let _ = stop_tx.send(true);
    // The Lease is released while requests drain, so a standby takes over status and Events at
    // once rather than when the Lease expires.
    let release = async {
        if let Some(publisher) = publisher
            && tokio::time::timeout(PUBLISH_STOP_TIMEOUT, publisher)
                .await
                .is_err()
        {
            tracing::warn!("the status and Events writer did not stop in {PUBLISH_STOP_TIMEOUT:?}");
        }
    };
    // Each serving thread drains its own connections (up to DRAIN_TIMEOUT) and ends.
    let drain = async {
        let joined = tokio::task::spawn_blocking(move || {
            for thread in serving_threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    };
    tokio::join!(release, drain);
    admin_task.abort();
    tracing::info!("stopped");
    outcome
}

async fn stop_signal() -> Result<(), RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    Ok(())
}
