//! Two operator replicas against a real apiserver: only the Lease holder runs the controllers;
//! when it shuts down, the standby takes over.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use switchyard_tests::process::Supervised;
use switchyard_tests::{eventually, http, ports::free_port, shared_cluster};

struct Replica {
    process: Supervised,
    metrics: String,
}

fn start_replica(
    name: &str,
    kubeconfig: &std::path::Path,
    namespace: &str,
    logs: &std::path::Path,
) -> Replica {
    let port = free_port().expect("port");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--leader-election-namespace")
        .arg(namespace)
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{port}"))
        // Each replica needs its own solver port on one machine.
        .args(["--acme-solver-addr", "127.0.0.1:0"])
        .env("POD_NAME", name)
        .env("POD_NAMESPACE", namespace)
        .env("RUST_LOG", "info");
    let process = Supervised::spawn(name, cmd, &logs.join(format!("{name}.log"))).expect("spawn");
    Replica {
        process,
        metrics: format!("127.0.0.1:{port}"),
    }
}

impl Replica {
    /// `Some(true)` when this replica reports holding the Lease, `None` while not reachable.
    fn is_leader(&mut self) -> Option<bool> {
        self.process
            .check_running()
            .expect("operator still running");
        let ready = http::get(&self.metrics, "localhost", "/readyz").ok()?;
        if ready.status != 200 {
            return None;
        }
        let metrics = http::get(&self.metrics, "localhost", "/metrics").ok()?;
        metrics
            .body
            .lines()
            .find(|l| l.starts_with("switchyard_operator_leader "))
            .map(|l| l.ends_with(" 1"))
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("switchyard-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn only_the_lease_holder_runs_controllers_and_a_standby_takes_over() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("lease").expect("namespace");
    let client = cluster.client().await.expect("client");
    let leases: Api<Lease> = Api::namespaced(client, ns.name());
    let logs = tempfile::tempdir().expect("tempdir");

    let mut a = start_replica("replica-a", cluster.kubeconfig(), ns.name(), logs.path());
    eventually("replica-a becomes leader", Duration::from_secs(30), || {
        let done = a.is_leader() == Some(true);
        async move { done }
    })
    .await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    let mut b = start_replica("replica-b", cluster.kubeconfig(), ns.name(), logs.path());
    eventually("replica-b is ready", Duration::from_secs(30), || {
        let done = b.is_leader().is_some();
        async move { done }
    })
    .await;
    // The standby stays a standby while the leader renews its Lease.
    for _ in 0..10 {
        assert_eq!(b.is_leader(), Some(false), "two leaders at once");
        assert_eq!(a.is_leader(), Some(true));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    // A graceful shutdown releases the Lease, so the standby takes over well before expiry.
    a.process.stop();
    eventually("replica-b takes over", Duration::from_secs(30), || {
        let done = b.is_leader() == Some(true);
        async move { done }
    })
    .await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-b"));
}
