//! The Ingress shortcut end to end (its own test binary: a ClusterIssuer is cluster-wide, and
//! every operator running beside it would reconcile it too): an Ingress written for
//! cert-manager, with `cert-manager.io/cluster-issuer`, gets a Certificate named after its
//! secretName, owned by it, issued by a real Pebble through the real proxy and served by it.

mod common;

use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::{Api, ResourceExt};

use common::{ISSUE_WITHIN, acme_issuer, chain_of, setup, tls_ingress, verify_chain};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cert_manager_cluster_issuer_annotation_on_an_ingress_gets_a_certificate() {
    let s = setup("certshortcut", Duration::from_secs(3600), None).await;
    let issuer = format!("acme-{}", s.ns.name());
    let host = "blog.example.com";
    s.apply(&acme_issuer("ClusterIssuer", &issuer, &s.pebble, &s.class));
    s.apply(&tls_ingress(
        "blog",
        &s.class,
        &[host],
        "blog-tls",
        &format!("cert-manager.io/cluster-issuer: {issuer}"),
    ));
    // One Certificate named after the secretName, owned by the Ingress, issued.
    let cert = s.wait_ready("blog-tls", ISSUE_WITHIN).await;
    assert_eq!(cert.spec.dns_names, [host]);
    assert_eq!(cert.spec.issuer_ref.name, issuer);
    let ingress = Api::<Ingress>::namespaced(s.client.clone(), s.ns.name())
        .get("blog")
        .await
        .expect("Ingress");
    assert!(
        cert.owner_references()
            .iter()
            .any(|o| Some(&o.uid) == ingress.metadata.uid.as_ref())
    );
    let secret = s.secrets().get("blog-tls").await.expect("Secret");
    let root = s.pebble.issuing_root_pem().expect("root");
    verify_chain(&chain_of(&secret), &root, &[host]);
    s.serves_over_https(host, &secret, &root).await;

    // The ClusterIssuer is cluster-wide: remove it (the namespace goes on its own).
    let _ = s
        .cluster
        .kubectl_ok(&["delete", "clusterissuer", &issuer, "--wait=false"]);
}
