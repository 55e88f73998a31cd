//! Leadership: the controllers run only while this replica holds the Lease, so two replicas
//! never drive the same rollout or ACME order.

use std::future::Future;
use std::sync::Arc;

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};

use crate::health::Health;

pub const LEASE_NAME: &str = "switchyard-operator";
/// How long a Lease stays valid without renewal, and how early the holder renews it.
const LEASE_SECONDS: u64 = 15;
const RENEW_GRACE_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot take part in leader election (Lease {namespace}/{LEASE_NAME}): {source}")]
    Lease {
        namespace: String,
        #[source]
        source: LeaseManagerError,
    },
}

/// Runs `controllers()` whenever this replica becomes leader and stops it when leadership is
/// lost, until `shutdown` resolves; then releases the Lease so a standby takes over at once.
pub async fn run_while_leader<F, Fut>(
    client: kube::Client,
    namespace: &str,
    identity: &str,
    health: Arc<Health>,
    controllers: F,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LeaderError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_GRACE_SECONDS)
        .with_field_manager("switchyard-operator")
        .build()
        .await
        .map_err(|source| LeaderError::Lease {
            namespace: namespace.to_string(),
            source,
        })?;
    let (mut is_leader, lease_task) = manager.watch().await;
    health.set_ready(true);
    tracing::info!(
        identity,
        namespace,
        lease = LEASE_NAME,
        "waiting for leadership"
    );
    tokio::pin!(shutdown);

    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let leader = *is_leader.borrow_and_update();
        match (leader, running.is_some()) {
            (true, false) => {
                tracing::info!(identity, "became leader: starting controllers");
                health.leader.set(1);
                running = Some(tokio::spawn(controllers()));
            }
            (false, true) => {
                tracing::warn!(identity, "lost leadership: stopping controllers");
                stop(&mut running, &health).await;
            }
            _ => {}
        }
        tokio::select! {
            changed = is_leader.changed() => {
                if changed.is_err() {
                    tracing::error!("the lease manager stopped; stopping controllers");
                    break;
                }
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
        }
    }
    stop(&mut running, &health).await;
    health.set_ready(false);
    // Dropping the receiver makes the lease task release the Lease and return.
    drop(is_leader);
    wait_release(lease_task).await;
    Ok(())
}

async fn stop(running: &mut Option<tokio::task::JoinHandle<()>>, health: &Health) {
    if let Some(task) = running.take() {
        task.abort();
        let _ = task.await;
    }
    health.leader.set(0);
}

async fn wait_release(
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
) {
    match tokio::time::timeout(std::time::Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "could not release the leader Lease; it expires by itself")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
        Err(_) => tracing::warn!("timed out releasing the leader Lease; it expires by itself"),
    }
}
