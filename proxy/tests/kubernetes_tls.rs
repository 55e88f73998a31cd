//! TLS annotations against a real kube-apiserver: the CA of `auth-tls-secret` is usually a
//! generic (Opaque) Secret, which the proxy must see (it watches TLS Secrets, and of Opaque
//! ones only the certificate keys).

use std::time::Duration;

use switchyard_tests::pki::TestCa;
use switchyard_tests::{backend, eventually, http, shared_cluster};

mod common;

use common::{external_service, ingress_class, start_proxy};

fn mtls_ingress(name: &str, class: &str, host: &str, secret: &str, port: u16) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  annotations: {{nginx.ingress.kubernetes.io/auth-tls-secret: {secret}}}
spec:
  ingressClassName: {class}
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {{name: web, port: {{number: {port}}}}}
"#
    )
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_ca_secret_is_seen_and_enforced() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("proxy-tls").expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    let class = format!("class-{}", ns.name());
    let controller = format!("switchyard.dev/test-{}", ns.name());
    let web = backend::spawn("web").await.expect("backend");
    let ca = TestCa::new("clients CA").expect("CA");
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: clients-ca}}\ntype: Opaque\nstringData:\n  ca.crt: |\n{}",
        indent(ca.cert_pem())
    );
    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}\n---\n{}\n---\n{}\n---\n{}\n---\n{}",
                ingress_class(&class, &controller),
                external_service("web", web),
                secret,
                mtls_ingress("mtls", &class, "mtls.test", "clients-ca", web),
                mtls_ingress("missing", &class, "missing.test", "not-there", web),
            ),
        )
        .expect("apply");
    let proxy = start_proxy(
        cluster.kubeconfig(),
        ns.name(),
        "kubernetes-tls-test",
        logs.path(),
        &[
            "--controller-class",
            &controller,
            "--watch-namespace",
            ns.name(),
        ],
    );
    let status = |host: &'static str| http::get(&proxy.http, host, "/").map_or(0, |r| r.status);
    // Plain HTTP counts as "no certificate": 400 means the CA was found and the check is on;
    // a Secret the proxy cannot see would fail closed with 503 instead.
    eventually(
        "mtls.test refuses a request without a certificate",
        Duration::from_secs(30),
        || {
            let ok = status("mtls.test") == 400;
            async move { ok }
        },
    )
    .await;
    assert_eq!(status("missing.test"), 503);
}
