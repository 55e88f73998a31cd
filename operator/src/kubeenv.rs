//! How the operator finds its cluster and itself (DESIGN.md: `--kubeconfig`, then
//! `KUBECONFIG`, then in-cluster; `POD_NAMESPACE`/`POD_NAME`, else `default` and the hostname).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {source_name} is not usable: {source}")]
    Kubeconfig {
        source_name: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no cluster configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod ({source})"
    )]
    InCluster {
        #[source]
        source: kube::config::InClusterError,
    },
    #[error("cannot build a Kubernetes client: {source}")]
    Client {
        #[source]
        source: kube::Error,
    },
}

pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    let options = KubeConfigOptions::default();
    let config = if let Some(path) = kubeconfig {
        let kc = Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
            path: path.display().to_string(),
            source,
        })?;
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|source| ClientError::Kubeconfig {
                source_name: path.display().to_string(),
                source,
            })?
    } else if std::env::var_os("KUBECONFIG").is_some() {
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|source| ClientError::Kubeconfig {
                source_name: "from KUBECONFIG".into(),
                source,
            })?
    } else {
        kube::Config::incluster().map_err(|source| ClientError::InCluster { source })?
    };
    kube::Client::try_from(config).map_err(|source| ClientError::Client { source })
}

/// The namespace this process runs in: `POD_NAMESPACE`, else `default` (a local run).
pub fn own_namespace() -> String {
    non_empty_env("POD_NAMESPACE").unwrap_or_else(|| "default".to_string())
}

/// This replica's identity: `POD_NAME`, else the hostname (a local run).
pub fn own_identity() -> String {
    non_empty_env("POD_NAME")
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| non_empty_env("HOSTNAME"))
        .unwrap_or_else(|| "switchyard-operator".to_string())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
