//! `upstream-hash-by` through the real binary: the same key keeps reaching the same endpoint
//! of a Service with several, different keys spread, and subsets spread one key.

mod manifests_common;

use std::collections::{BTreeMap, BTreeSet};

use manifests_common::{
    Folder, Proxy, endpoint_slice, get, ingress, ingress_class, listeners_on_one_port, serve_named,
};
use serde_json::json;

const NGINX: &str = "nginx.ingress.kubernetes.io";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_reaches_the_same_endpoint() {
    let (port, listeners) = listeners_on_one_port(3).await;
    for (i, listener) in listeners.into_iter().enumerate() {
        serve_named(format!("pod-{i}"), listener);
    }
    let folder = Folder::new();
    let ingress_with = |name: &str, host: &str, annotations: &[(&str, &str)]| {
        let mut builder = ingress(name).class("switchyard");
        for (k, v) in annotations {
            builder = builder.annotation(&format!("{NGINX}/{k}"), v);
        }
        builder.rule(host, &[("/", "Prefix", "pods")]).build()
    };
    folder.write_objects(
        "objects.json",
        &[
            ingress_class("switchyard", "switchyard.dev/ingress-controller", false),
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "pods"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }),
            endpoint_slice(
                "pods-1",
                "pods",
                "http",
                port,
                &["127.0.0.1", "127.0.0.2", "127.0.0.3"],
            ),
            ingress_with(
                "by-user",
                "hash.example",
                &[("upstream-hash-by", "$arg_user")],
            ),
            ingress_with(
                "by-subset",
                "subset.example",
                &[
                    ("upstream-hash-by", "$http_x_tenant"),
                    ("upstream-hash-by-subset", "true"),
                    ("upstream-hash-by-subset-size", "3"),
                ],
            ),
            ingress_with(
                "bad-key",
                "bad.example",
                &[("upstream-hash-by", "$upstream_addr")],
            ),
        ],
    );
    let proxy = Proxy::start(&folder, &[]).await;

    let mut endpoint_of = BTreeMap::new();
    for round in 0..3 {
        for user in 0..24 {
            let reply = get(proxy.http, "hash.example", &format!("/cart?user=u{user}")).await;
            assert_eq!(reply.status, 200, "{}", reply.describe());
            let pod = reply.first_line().to_owned();
            let first = endpoint_of.entry(user).or_insert_with(|| pod.clone());
            assert_eq!(*first, pod, "user u{user} moved in round {round}");
        }
    }
    let used: BTreeSet<&String> = endpoint_of.values().collect();
    assert!(used.len() >= 2, "24 keys all went to {used:?}");

    // One key over a subset of three spreads over all three.
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        let reply = manifests_common::request(
            proxy.http,
            "GET / HTTP/1.1\r\nHost: subset.example\r\nX-Tenant: acme\r\n",
        )
        .await;
        seen.insert(reply.first_line().to_owned());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // An unusable key is reported; the Ingress is served round-robin.
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        seen.insert(
            get(proxy.http, "bad.example", "/?user=u1")
                .await
                .first_line()
                .to_owned(),
        );
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(proxy.log().contains("$upstream_addr"), "{}", proxy.log());
}
