//! Test support for Switchyard: a real local control plane (etcd, kube-apiserver,
//! kube-controller-manager) and a real ACME server (Pebble with its challenge test server), run
//! as child processes on free loopback ports.
//!
//! `make cluster` runs the same control plane in the background through the `switchyard-cluster`
//! binary; tests reuse it when `SWITCHYARD_KUBECONFIG` names its kubeconfig, and otherwise start
//! one of their own per test binary ([`shared_cluster`]).
#![forbid(unsafe_code)]

pub mod backend;
pub mod binaries;
pub mod cluster;
pub mod http;
pub mod pebble;
pub mod pki;
pub mod ports;
pub mod process;

use std::path::Path;

pub use cluster::{Cluster, TestNamespace, shared_cluster};
pub use pebble::Pebble;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed ({context}): {source}")]
    Pki {
        context: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("could not start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited ({status}); the end of its log:\n{log_tail}")]
    Exited {
        name: String,
        status: String,
        log_tail: String,
    },
    #[error("{what} was not ready after {seconds}s: {detail}")]
    Timeout {
        what: String,
        seconds: u64,
        detail: String,
    },
    #[error("control plane binaries: {0}")]
    Binaries(String),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("Kubernetes API ({context}): {source}")]
    Kube {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error("{context}: {detail}")]
    Invalid { context: String, detail: String },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn pki(context: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
        move |source| Error::Pki { context, source }
    }

    pub(crate) fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let context = context.into();
        move |source| Error::Kube { context, source }
    }
}

pub(crate) fn write_file(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(Error::io(format!("write {}", path.display())))
}

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// Polls `check` every 200 ms until it returns true; panics naming `what` after `limit`.
/// For tests that wait on a controller or a watch: bounded, never a fixed sleep.
pub async fn eventually<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}
