//! The controllers the leader runs.

/// Runs every controller until the task is aborted (on loss of leadership or shutdown).
pub async fn run(client: kube::Client) {
    let _ = client;
    tracing::info!("controllers running");
    std::future::pending::<()>().await;
}
