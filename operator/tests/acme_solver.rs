//! The operator's HTTP-01 solver answers from challenge Ingresses in a real apiserver: the
//! right key authorization for the right host and token, nothing for a malformed one.

use std::process::Command;
use std::time::Duration;

use switchyard_tests::process::Supervised;
use switchyard_tests::{eventually, http, ports::free_ports, shared_cluster};

fn challenge(name: &str, host: &str, token: &str, response: &str, labelled: bool) -> String {
    let label = if labelled { "\"true\"" } else { "\"false\"" };
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  labels: {{switchyard.dev/acme-challenge: {label}}}
  annotations: {{switchyard.dev/acme-http01-response: "{response}"}}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: /.well-known/acme-challenge/{token}
        pathType: Exact
        backend:
          service: {{name: solver, port: {{number: 8089}}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_solver_answers_challenge_ingresses() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("solver").expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(2).expect("ports");
    let solver = format!("127.0.0.1:{}", ports[1]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"));
    cmd.arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--leader-election-namespace", ns.name()])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--acme-solver-addr", &solver])
        .env("POD_NAME", "solver-test");
    let _operator = Supervised::spawn(
        "switchyard-operator",
        cmd,
        &logs.path().join("operator.log"),
    )
    .expect("spawn operator");

    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}---{}",
                challenge("good", "shop.example.com", "tok-1", "tok-1.thumb_2", true),
                challenge(
                    "unlabelled",
                    "shop.example.com",
                    "tok-3",
                    "tok-3.thumb",
                    false
                ),
            ),
        )
        .expect("apply challenges");

    let path = "/.well-known/acme-challenge/tok-1";
    eventually("the solver answers tok-1", Duration::from_secs(30), || {
        let ok = http::get(&solver, "shop.example.com", path)
            .is_ok_and(|r| r.status == 200 && r.body == "tok-1.thumb_2");
        async move { ok }
    })
    .await;
    let r = http::get(&solver, "shop.example.com", path).expect("answer");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // Another host, an Ingress without the label, an unknown token: nothing.
    for (host, path) in [
        ("other.example.com", "/.well-known/acme-challenge/tok-1"),
        ("shop.example.com", "/.well-known/acme-challenge/tok-3"),
        ("shop.example.com", "/.well-known/acme-challenge/nope"),
    ] {
        let r = http::get(&solver, host, path).expect("answer");
        assert_eq!(r.status, 404, "{host}{path}: {}", r.body);
    }

    // Deleting the challenge Ingress withdraws the answer.
    cluster
        .kubectl_ok(&["delete", "ingress", "good", "-n", ns.name()])
        .expect("delete");
    eventually("the answer is withdrawn", Duration::from_secs(30), || {
        let gone = http::get(&solver, "shop.example.com", path).is_ok_and(|r| r.status == 404);
        async move { gone }
    })
    .await;
}
