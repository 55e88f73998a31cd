//! Ingress status, Events and leadership against a real kube-apiserver: the Lease holder writes
//! `status.loadBalancer` of served Ingresses and a Warning Event for a broken one, exactly one of
//! two replicas holds the Lease, and the other takes over when the leader stops.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use switchyard_tests::{Cluster, eventually, shared_cluster};

/// Only ever written into status; nothing connects to it (TEST-NET-3).
const PUBLISHED: &str = "203.0.113.10";

mod common;

use common::Proxy;

/// A proxy of `class` for namespace `ns`, whose pod is `pod` in `ns` (so its Lease lives there).
fn start_proxy(
    cluster: &Cluster,
    class: &str,
    ns: &str,
    pod: &str,
    logs: &std::path::Path,
) -> Proxy {
    start_proxy_publishing(
        cluster,
        class,
        ns,
        pod,
        logs,
        &["--publish-address", PUBLISHED],
    )
}

fn start_proxy_publishing(
    cluster: &Cluster,
    class: &str,
    ns: &str,
    pod: &str,
    logs: &std::path::Path,
    publish: &[&str],
) -> Proxy {
    let controller = controller(class);
    let mut args = vec![
        "--ingress-class",
        class,
        "--controller-class",
        &controller,
        "--watch-namespace",
        ns,
    ];
    args.extend_from_slice(publish);
    common::start_proxy(cluster.kubeconfig(), ns, pod, logs, &args)
}

fn controller(class: &str) -> String {
    format!("switchyard.dev/test-{class}")
}

fn ingress_class(class: &str) -> String {
    common::ingress_class(class, &controller(class))
}

/// An Ingress of `class` for host `<name>.test`.
fn ingress(name: &str, class: &str, service: &str) -> String {
    common::ingress(name, class, &format!("{name}.test"), service, 80)
}

fn external_service(name: &str) -> String {
    common::external_service(name, 80)
}

async fn published_ips(api: &Api<Ingress>, name: &str) -> Vec<String> {
    let Ok(ingress) = api.get(name).await else {
        return Vec::new();
    };
    ingress
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| a.ip)
        .collect()
}

async fn holder(api: &Api<Lease>, name: &str) -> Option<String> {
    api.get(name)
        .await
        .ok()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_writes_status_and_warning_events() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("status").expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    let class = format!("class-{}", ns.name());
    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}---\n{}---{}---{}",
                ingress_class(&class),
                external_service("web"),
                ingress("shop", &class, "web"),
                ingress("foreign", "somebody-else", "web"),
            ),
        )
        .expect("apply");
    let _proxy = start_proxy(cluster, &class, ns.name(), "proxy-a", logs.path());

    let client = cluster.client().await.expect("client");
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns.name());
    eventually(
        "shop gets the published address",
        Duration::from_secs(30),
        || {
            let api = ingresses.clone();
            async move { published_ips(&api, "shop").await == [PUBLISHED] }
        },
    )
    .await;
    assert!(
        published_ips(&ingresses, "foreign").await.is_empty(),
        "an Ingress of another class is not ours to write"
    );

    // An Ingress naming a missing Service: a Warning Event on it, naming the Service.
    cluster
        .apply_yaml(ns.name(), &ingress("broken", &class, "missing"))
        .expect("apply broken");
    let events: Api<Event> = Api::namespaced(client.clone(), ns.name());
    eventually(
        "broken gets a ServiceNotFound Event",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            async move {
                let Ok(list) = events.list(&ListParams::default()).await else {
                    return false;
                };
                list.items.iter().any(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                        && e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("ServiceNotFound")
                        && e.note.as_deref().is_some_and(|n| n.contains("missing"))
                        && e.reporting_controller.as_deref()
                            == Some("switchyard.dev/ingress-controller")
                        && e.reporting_instance.as_deref() == Some("proxy-a")
                })
            }
        },
    )
    .await;
    // The broken one is served too (503 on its path), so it gets the address as well.
    eventually(
        "broken gets the published address",
        Duration::from_secs(30),
        || {
            let api = ingresses.clone();
            async move { published_ips(&api, "broken").await == [PUBLISHED] }
        },
    )
    .await;
    // Recompiles (the status writes themselves cause some) do not repeat the Event.
    let list = events.list(&ListParams::default()).await.expect("events");
    let published = list
        .items
        .iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                && e.reason.as_deref() == Some("ServiceNotFound")
        })
        .count();
    assert_eq!(published, 1, "{:#?}", list.items);

    // An Ingress we stop serving (its class changed) loses the address we wrote.
    cluster
        .apply_yaml(ns.name(), &ingress("shop", "somebody-else", "web"))
        .expect("change class");
    eventually("shop's status is cleared", Duration::from_secs(30), || {
        let api = ingresses.clone();
        async move { published_ips(&api, "shop").await.is_empty() }
    })
    .await;

    cluster
        .kubectl_ok(&["delete", "ingressclass", &class])
        .expect("delete class");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_another_takes_over() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("leader").expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    let class = format!("class-{}", ns.name());
    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}---\n{}---{}",
                ingress_class(&class),
                external_service("web"),
                ingress("first", &class, "web"),
            ),
        )
        .expect("apply");
    let mut a = start_proxy(cluster, &class, ns.name(), "proxy-a", logs.path());
    let mut b = start_proxy(cluster, &class, ns.name(), "proxy-b", logs.path());

    let client = cluster.client().await.expect("client");
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    let lease = format!("switchyard-proxy-{class}");
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns.name());
    eventually(
        "first gets the published address",
        Duration::from_secs(30),
        || {
            let api = ingresses.clone();
            async move { published_ips(&api, "first").await == [PUBLISHED] }
        },
    )
    .await;
    let leader = holder(&leases, &lease)
        .await
        .expect("the Lease has a holder");
    assert!(leader == "proxy-a" || leader == "proxy-b", "{leader}");
    // It stays with one replica: the other does not take it while the leader is alive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        holder(&leases, &lease).await.as_deref(),
        Some(leader.as_str())
    );

    // Stop the leader (SIGTERM: it releases the Lease); the other replica takes over and
    // writes the status of an Ingress created afterwards.
    let (stopped, standby) = if leader == "proxy-a" {
        (&mut a, "proxy-b")
    } else {
        (&mut b, "proxy-a")
    };
    stopped.process.stop();
    cluster
        .apply_yaml(ns.name(), &ingress("second", &class, "web"))
        .expect("apply second");
    eventually(
        "the standby holds the Lease",
        Duration::from_secs(40),
        || {
            let leases = leases.clone();
            let lease = lease.clone();
            async move { holder(&leases, &lease).await.as_deref() == Some(standby) }
        },
    )
    .await;
    eventually(
        "second gets the published address",
        Duration::from_secs(30),
        || {
            let api = ingresses.clone();
            async move { published_ips(&api, "second").await == [PUBLISHED] }
        },
    )
    .await;

    cluster
        .kubectl_ok(&["delete", "ingressclass", &class])
        .expect("delete class");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_service_addresses_follow_the_service() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("pubsvc").expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    let class = format!("class-{}", ns.name());
    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}---\n{}---{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: front}}\nspec: {{ports: [{{port: 80}}]}}\n",
                ingress_class(&class),
                external_service("web"),
                ingress("shop", &class, "web"),
            ),
        )
        .expect("apply");
    let cluster_ip = cluster
        .kubectl_ok(&[
            "get",
            "service",
            "front",
            "-n",
            ns.name(),
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .expect("cluster IP");
    let front = format!("{}/front", ns.name());
    let _proxy = start_proxy_publishing(
        cluster,
        &class,
        ns.name(),
        "proxy-a",
        logs.path(),
        &["--publish-service", &front],
    );

    let client = cluster.client().await.expect("client");
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns.name());
    eventually(
        "shop gets the Service's cluster IP",
        Duration::from_secs(30),
        || {
            let api = ingresses.clone();
            let expected = vec![cluster_ip.clone()];
            async move { published_ips(&api, "shop").await == expected }
        },
    )
    .await;

    // A change to the Service reaches the status without anything else changing.
    cluster
        .kubectl_ok(&[
            "patch",
            "service",
            "front",
            "-n",
            ns.name(),
            "--type=merge",
            "-p",
            r#"{"spec":{"externalIPs":["198.51.100.7"]}}"#,
        ])
        .expect("patch service");
    eventually(
        "shop follows the Service's external IP",
        Duration::from_secs(30),
        || {
            let api = ingresses.clone();
            async move { published_ips(&api, "shop").await == ["198.51.100.7"] }
        },
    )
    .await;

    cluster
        .kubectl_ok(&["delete", "ingressclass", &class])
        .expect("delete class");
}
