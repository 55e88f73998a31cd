//! The local control plane behaves like a cluster: objects are created, watched and deleted
//! through a real kube-apiserver, owner references are garbage-collected by a real
//! kube-controller-manager, deleted namespaces go away, and our CRDs are served.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use switchyard_tests::{eventually, shared_cluster};

fn config_map(name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                    uid: o.metadata.uid.clone().unwrap_or_default(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        data: Some([("colour".to_string(), "blue".to_string())].into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn creates_watches_and_deletes_objects() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("watch").expect("namespace");
    let client = cluster.client().await.expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, ns.name());

    let mut events = api
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .expect("watch")
        .boxed();
    api.create(&PostParams::default(), &config_map("watched", None))
        .await
        .expect("create");
    api.delete("watched", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .expect("a watch event within 20s")
            .expect("watch stream")
            .expect("stream open");
        match event {
            WatchEvent::Added(cm) => seen.push(("added", cm.metadata.name)),
            WatchEvent::Deleted(cm) => seen.push(("deleted", cm.metadata.name)),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        vec![
            ("added", Some("watched".to_string())),
            ("deleted", Some("watched".to_string()))
        ]
    );
}

#[tokio::test]
async fn garbage_collects_children_of_a_deleted_owner() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("gc").expect("namespace");
    let client = cluster.client().await.expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, ns.name());

    let parent = api
        .create(&PostParams::default(), &config_map("parent", None))
        .await
        .expect("create parent");
    api.create(&PostParams::default(), &config_map("child", Some(&parent)))
        .await
        .expect("create child");
    api.delete("parent", &DeleteParams::background())
        .await
        .expect("delete parent");

    eventually(
        "garbage collection of the child",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move { matches!(api.get_opt("child").await, Ok(None)) }
        },
    )
    .await;
}

#[tokio::test]
async fn deleted_namespaces_are_emptied_and_removed() {
    let cluster = shared_cluster().expect("control plane");
    let client = cluster.client().await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let name = "switchyard-nsdelete-test";
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
    eventually(
        "removal of a leftover namespace",
        Duration::from_secs(60),
        || {
            let namespaces = namespaces.clone();
            async move { matches!(namespaces.get_opt(name).await, Ok(None)) }
        },
    )
    .await;
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    Api::<ConfigMap>::namespaced(client.clone(), name)
        .create(&PostParams::default(), &config_map("content", None))
        .await
        .expect("create content");
    namespaces
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually("namespace deletion", Duration::from_secs(60), || {
        let namespaces = namespaces.clone();
        async move { matches!(namespaces.get_opt(name).await, Ok(None)) }
    })
    .await;
}

#[tokio::test]
async fn serves_switchyard_crds_to_kubectl() {
    let cluster = shared_cluster().expect("control plane");
    let out = cluster
        .kubectl_ok(&["api-resources", "--api-group=switchyard.dev", "-o", "name"])
        .expect("kubectl api-resources");
    for resource in [
        "rolloutroutes.switchyard.dev",
        "certificates.switchyard.dev",
        "issuers.switchyard.dev",
        "clusterissuers.switchyard.dev",
    ] {
        assert!(
            out.lines().any(|l| l == resource),
            "{resource} missing in:\n{out}"
        );
    }
    // The category lets `kubectl get switchyard` list all of our resources at once.
    let ns = cluster.namespace("category").expect("namespace");
    let out = cluster
        .kubectl_ok(&["get", "switchyard", "-n", ns.name()])
        .expect("kubectl get switchyard");
    assert!(out.is_empty() || out.contains("No resources"), "{out}");
}
