//! Leadership: every replica serves traffic, but only the holder of the Lease writes Ingress
//! status and Events, so replicas neither duplicate Events nor fight over status.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a Lease stays valid without renewal, and how early the holder renews it.
const LEASE_SECONDS: u64 = 15;
const RENEW_GRACE_SECONDS: u64 = 5;
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("cannot take part in leader election (Lease {namespace}/{name}): {source}")]
pub struct LeaderError {
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: LeaseManagerError,
}

/// One Lease per `--ingress-class`, so proxies of different classes don't take turns.
pub fn lease_name(ingress_class: &str) -> String {
    // A Lease name is a DNS subdomain; a class name almost always is one already.
    let class: String = ingress_class
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("switchyard-proxy-{class}");
    name.truncate(253);
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

pub type LeaseTask = JoinHandle<Result<LeaseManager, LeaseManagerError>>;

/// Starts competing for the Lease; the receiver says whether we hold it. Dropping the receiver
/// releases the Lease (then await the task with [`release`]).
pub async fn start(
    client: kube::Client,
    namespace: &str,
    name: &str,
    identity: &str,
) -> Result<(watch::Receiver<bool>, LeaseTask), LeaderError> {
    let manager = LeaseManagerBuilder::new(client, name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_GRACE_SECONDS)
        .with_field_manager("switchyard-proxy")
        .build()
        .await
        .map_err(|source| LeaderError {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?;
    Ok(manager.watch().await)
}

/// Waits (briefly) for the Lease to be released, so a standby takes over at once rather than
/// after the Lease expires.
pub async fn release(task: LeaseTask) {
    match tokio::time::timeout(RELEASE_TIMEOUT, task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
        Ok(Ok(Err(err))) => {
            tracing::warn!("could not release the leader Lease (it expires by itself): {err}")
        }
        Ok(Err(err)) => tracing::warn!("the Lease task failed: {err}"),
        Err(_) => tracing::warn!("timed out releasing the leader Lease; it expires by itself"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_derive_from_the_class() {
        assert_eq!(lease_name("switchyard"), "switchyard-proxy-switchyard");
        assert_eq!(
            lease_name("Nginx_Internal"),
            "switchyard-proxy-nginx-internal"
        );
        assert_eq!(lease_name(&"x".repeat(300)).len(), 253);
    }
}
