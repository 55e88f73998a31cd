//! RolloutRoute against a real apiserver with the real operator: the route expands into an
//! owned stable Ingress, a backend change starts a canary (a canary Ingress with ingress-nginx's
//! annotations), `kubectl switchyard promote` finishes it, deleting the route garbage-collects
//! its Ingresses, and an Ingress the route does not own is never taken over.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::{Api, ResourceExt};
use switchyard_crds::{Phase, RolloutRoute, condition};
use switchyard_tests::process::Supervised;
use switchyard_tests::{eventually, ports::free_ports, shared_cluster};

fn route(name: &str, backend: &str) -> String {
    format!(
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: RolloutRoute
metadata: {{name: {name}}}
spec:
  ingressClassName: switchyard
  hosts: [{name}.example.com]
  backend: {{service: {backend}, port: 80}}
  strategy:
    canary:
      steps:
      - setWeight: 10
      - pause: {{}}
"#
    )
}

fn backend_of(ingress: &Ingress) -> Option<String> {
    let rule = ingress.spec.as_ref()?.rules.as_ref()?.first()?;
    let path = rule.http.as_ref()?.paths.first()?;
    Some(path.backend.service.as_ref()?.name.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_rollout_moves_through_its_ingresses() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("rollout").expect("namespace");
    let ports = free_ports(2).expect("ports");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"));
    cmd.arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--leader-election-namespace", ns.name()])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--acme-solver-addr", &format!("127.0.0.1:{}", ports[1])])
        .env("POD_NAME", "rollout-test");
    let _operator = Supervised::spawn(
        "switchyard-operator",
        cmd,
        &logs.path().join("operator.log"),
    )
    .expect("spawn operator");
    let client = cluster.client().await.expect("client");
    let routes: Api<RolloutRoute> = Api::namespaced(client.clone(), ns.name());
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns.name());

    // First apply: the backend is stable at once.
    cluster
        .apply_yaml(ns.name(), &route("shop", "shop-v1"))
        .expect("apply");
    eventually(
        "the stable Ingress serves shop-v1",
        Duration::from_secs(30),
        || async {
            let ing = ingresses.get_opt("shop").await.ok().flatten();
            ing.is_some_and(|i| backend_of(&i).as_deref() == Some("shop-v1"))
        },
    )
    .await;
    let route_uid = routes.get("shop").await.expect("route").uid();
    let stable = ingresses.get("shop").await.expect("stable Ingress");
    assert!(
        stable
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == route_uid.as_ref()),
        "{:?}",
        stable.metadata.owner_references
    );
    eventually("the route is Healthy", Duration::from_secs(30), || async {
        let s = routes.get("shop").await.ok().and_then(|r| r.status);
        s.is_some_and(|s| s.phase == Some(Phase::Healthy))
    })
    .await;

    // A new backend starts a canary at 10 %, then waits for promote.
    cluster
        .apply_yaml(ns.name(), &route("shop", "shop-v2"))
        .expect("apply v2");
    eventually(
        "a canary Ingress at weight 10",
        Duration::from_secs(30),
        || async {
            let ing = ingresses.get_opt("shop-canary").await.ok().flatten();
            ing.is_some_and(|i| {
                let a = i.annotations();
                backend_of(&i).as_deref() == Some("shop-v2")
                    && a.get("nginx.ingress.kubernetes.io/canary")
                        .map(String::as_str)
                        == Some("true")
                    && a.get("nginx.ingress.kubernetes.io/canary-weight")
                        .map(String::as_str)
                        == Some("10")
            })
        },
    )
    .await;
    assert_eq!(
        backend_of(&ingresses.get("shop").await.expect("stable")).as_deref(),
        Some("shop-v1"),
        "the stable Ingress keeps the stable backend during the rollout"
    );
    eventually(
        "the route waits for promote",
        Duration::from_secs(30),
        || async {
            let s = routes.get("shop").await.ok().and_then(|r| r.status);
            s.is_some_and(|s| s.phase == Some(Phase::Paused))
        },
    )
    .await;

    // Promote (as a user would, through the plugin's annotation) finishes the rollout.
    let now = jiff::Timestamp::now().to_string();
    cluster
        .kubectl_ok(&[
            "annotate",
            "rolloutroute",
            "shop",
            "-n",
            ns.name(),
            &format!("switchyard.dev/promote={now}"),
        ])
        .expect("promote");
    eventually("promotion completes", Duration::from_secs(30), || async {
        let canary_gone = matches!(ingresses.get_opt("shop-canary").await, Ok(None));
        let stable_v2 = ingresses
            .get_opt("shop")
            .await
            .ok()
            .flatten()
            .is_some_and(|i| backend_of(&i).as_deref() == Some("shop-v2"));
        let promoted = routes
            .get("shop")
            .await
            .ok()
            .and_then(|r| r.status)
            .is_some_and(|s| condition::is_true(&s.conditions, condition::PROMOTED));
        canary_gone && stable_v2 && promoted
    })
    .await;

    // An Ingress the route does not own is left alone, and the route says why.
    cluster
        .apply_yaml(
            ns.name(),
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: taken}
spec:
  rules:
  - host: taken.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: someone-else, port: {number: 80}}}}
"#,
        )
        .expect("foreign Ingress");
    cluster
        .apply_yaml(ns.name(), &route("taken", "mine"))
        .expect("apply taken");
    eventually(
        "the conflict is reported",
        Duration::from_secs(30),
        || async {
            let s = routes.get("taken").await.ok().and_then(|r| r.status);
            s.is_some_and(|s| {
                condition::find(&s.conditions, condition::READY)
                    .is_some_and(|c| c.status == "False" && c.reason == "IngressConflict")
            })
        },
    )
    .await;
    let foreign = ingresses.get("taken").await.expect("foreign Ingress");
    assert_eq!(backend_of(&foreign).as_deref(), Some("someone-else"));
    assert!(foreign.owner_references().is_empty());

    // Deleting the route garbage-collects its Ingresses (owner references, a real GC).
    cluster
        .kubectl_ok(&["delete", "rolloutroute", "shop", "-n", ns.name()])
        .expect("delete route");
    eventually(
        "the route's Ingress is collected",
        Duration::from_secs(60),
        || async { matches!(ingresses.get_opt("shop").await, Ok(None)) },
    )
    .await;
}
