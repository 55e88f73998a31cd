//! Issuers against a real apiserver and a real ACME server (Pebble): the account is registered
//! once and its key kept in the named Secret; a Secret holding a key instant-acme cannot use is
//! never overwritten, and the issuer says why.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use switchyard_crds::{ClusterIssuer, Issuer, condition};
use switchyard_tests::pebble::{Pebble, PebbleOptions};
use switchyard_tests::process::Supervised;
use switchyard_tests::{eventually, ports::free_ports, shared_cluster};

fn ready(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String)> {
    condition::find(conditions, condition::READY).map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_register_accounts_and_never_overwrite_foreign_keys() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("issuer").expect("namespace");
    let ports = free_ports(3).expect("ports");
    let pebble = Pebble::start(PebbleOptions {
        http01_port: ports[2],
        certificate_validity: Duration::from_secs(3600),
    })
    .expect("pebble");
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(pebble.server_ca_pem());
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
        .expect("P-384 key")
        .serialize_pem();
    let foreign_key = base64::engine::general_purpose::STANDARD.encode(&p384);
    let cluster_issuer = format!("acme-{}", ns.name());
    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                r#"
apiVersion: switchyard.dev/v1alpha1
kind: ClusterIssuer
metadata: {{name: {cluster_issuer}}}
spec:
  acme:
    server: {server}
    email: ops@example.com
    privateKeySecretRef: {{name: acme-account}}
    caBundle: {ca_bundle}
    solvers: [{{http01: {{ingress: {{ingressClassName: switchyard}}}}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: p384-account}}
data: {{tls.key: {foreign_key}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Issuer
metadata: {{name: foreign-key}}
spec:
  acme:
    server: {server}
    privateKeySecretRef: {{name: p384-account}}
    caBundle: {ca_bundle}
    solvers: [{{http01: {{ingress: {{ingressClassName: switchyard}}}}}}]
"#,
                server = pebble.directory_url(),
            ),
        )
        .expect("apply issuers");

    let logs = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"));
    cmd.arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--leader-election-namespace", ns.name()])
        .args(["--cluster-resource-namespace", ns.name()])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--acme-solver-addr", &format!("127.0.0.1:{}", ports[1])])
        .env("POD_NAME", "issuer-test");
    let operator = Supervised::spawn(
        "switchyard-operator",
        cmd,
        &logs.path().join("operator.log"),
    )
    .expect("spawn operator");

    let client = cluster.client().await.expect("client");
    let cluster_issuers: Api<ClusterIssuer> = Api::all(client.clone());
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), ns.name());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());

    let check = || async {
        let ci = cluster_issuers.get(&cluster_issuer).await.ok()?;
        let status = ci.status?;
        (ready(&status.conditions) == Some(("True".into(), "AccountRegistered".into())))
            .then_some(status.acme?.uri?)
    };
    eventually(
        "the ClusterIssuer registers its account",
        Duration::from_secs(60),
        || async { check().await.is_some() },
    )
    .await;
    let uri = check().await.expect("registered");
    assert!(uri.starts_with("https://127.0.0.1:"), "{uri}");

    // The key lives in the cluster-resource namespace, marked as ours.
    let account = secrets.get("acme-account").await.expect("account Secret");
    let key = account
        .data
        .as_ref()
        .and_then(|d| d.get("tls.key"))
        .expect("tls.key");
    assert!(String::from_utf8_lossy(&key.0).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(
        account
            .annotations()
            .contains_key("switchyard.dev/acme-account-of"),
        "{:?}",
        account.metadata.annotations
    );

    // A P-384 key cannot be an instant-acme account key: refused, and left as it was.
    eventually(
        "the foreign key is refused",
        Duration::from_secs(60),
        || async {
            let status = issuers.get("foreign-key").await.ok().and_then(|i| i.status);
            status.is_some_and(|s| {
                ready(&s.conditions) == Some(("False".into(), "AccountKeyUnsupported".into()))
            })
        },
    )
    .await;
    let kept = secrets.get("p384-account").await.expect("foreign Secret");
    assert_eq!(
        kept.data
            .and_then(|d| d.get("tls.key").cloned())
            .map(|k| k.0),
        Some(p384.into_bytes())
    );
    let events = cluster
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            ns.name(),
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .expect("events");
    assert!(events.contains("AccountKeyUnsupported"), "{events}");

    drop(operator);
    cluster
        .kubectl_ok(&["delete", "clusterissuer", &cluster_issuer])
        .expect("delete the ClusterIssuer");
}
