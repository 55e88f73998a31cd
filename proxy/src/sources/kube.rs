//! The Kubernetes source: one reflector per kind; after the initial list of every kind, each
//! change (debounced) sends a fresh snapshot built from the reflector stores.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::model::{ObjectKey, Snapshot};
use crate::sources::SnapshotSender;

/// Changes arriving within this window are compiled together.
const DEBOUNCE: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no cluster configuration found (--kubeconfig, KUBECONFIG or in-cluster): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("a watch ended before its initial list completed")]
    WatchEnded,
}

/// `--kubeconfig`, then `KUBECONFIG` (and the usual kubeconfig locations), then in-cluster.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |source| KubeError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(err)?;
            Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(err)?
        }
        None => Config::infer().await.map_err(KubeError::Infer)?,
    };
    Client::try_from(config).map_err(KubeError::Client)
}

/// Starts one reflector for `K`; every event pokes `changed`.
fn reflect<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    reflect_trimmed(api, config, changed, |_| {})
}

/// [`reflect`], with `trim` applied to each object before it is stored.
fn reflect_trimmed<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<Notify>,
    trim: fn(&mut K),
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = reflector::reflector(writer, watcher(api, config).modify(trim)).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(err) => tracing::warn!(
                    kind = K::kind(&()).as_ref(),
                    "watch error (retrying): {err}"
                ),
            }
        }
    });
    reader
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn index<K, Key, F>(store: &Store<K>, key: F) -> BTreeMap<Key, Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
    Key: Ord,
    F: Fn(&K) -> Key,
{
    store.state().into_iter().map(|o| (key(&o), o)).collect()
}

fn namespaced_key<K: Resource>(o: &K) -> ObjectKey {
    ObjectKey::new(
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

/// Watches until the process ends. `namespace` restricts the namespaced kinds; `configmap` is
/// the controller ConfigMap, whose namespace is watched for ConfigMaps too.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    configmap: Option<ObjectKey>,
    tx: SnapshotSender,
) -> Result<(), KubeError> {
    let changed = Arc::new(Notify::new());
    let ns = namespace.as_deref();
    let ingresses = reflect::<Ingress>(
        api(&client, ns),
        watcher::Config::default(),
        changed.clone(),
    );
    let classes = reflect::<IngressClass>(
        Api::all(client.clone()),
        watcher::Config::default(),
        changed.clone(),
    );
    let services = reflect::<Service>(
        api(&client, ns),
        watcher::Config::default(),
        changed.clone(),
    );
    let slices = reflect::<EndpointSlice>(
        api(&client, ns),
        watcher::Config::default(),
        changed.clone(),
    );
    // TLS Secrets, and (below) the Opaque ones basic auth reads: the proxy has no business
    // holding the others (service account tokens, Helm releases) in memory.
    let secrets = reflect::<Secret>(
        api(&client, ns),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
        changed.clone(),
    );
    // Basic-auth Secrets and CA bundles (`auth-secret`, `auth-tls-secret`, `proxy-ssl-secret`;
    // `kubectl create secret generic`) are Opaque, as in ingress-nginx any of them may be named.
    let auth_secrets = reflect_trimmed::<Secret>(
        api(&client, ns),
        watcher::Config::default().fields("type=Opaque"),
        changed.clone(),
        drop_metadata_copies,
    );

    // ConfigMaps: the controller's, and those annotations and the controller's point at
    // (custom-headers, proxy-set-headers, add-headers), in the served namespaces and the
    // controller ConfigMap's own.
    let config_maps = reflect::<ConfigMap>(
        api(&client, ns),
        watcher::Config::default(),
        changed.clone(),
    );
    let controller_maps = configmap
        .as_ref()
        .filter(|key| ns.is_some_and(|ns| ns != key.namespace))
        .map(|key| {
            reflect::<ConfigMap>(
                Api::namespaced(client.clone(), &key.namespace),
                watcher::Config::default(),
                changed.clone(),
            )
        });
    if let Some(store) = &controller_maps {
        store
            .wait_until_ready()
            .await
            .map_err(|_| KubeError::WatchEnded)?;
    }
    for ready in [
        ingresses.wait_until_ready().await,
        classes.wait_until_ready().await,
        services.wait_until_ready().await,
        slices.wait_until_ready().await,
        secrets.wait_until_ready().await,
        config_maps.wait_until_ready().await,
        auth_secrets.wait_until_ready().await,
    ] {
        ready.map_err(|_| KubeError::WatchEnded)?;
    }
    tracing::info!(
        "initial sync of Ingresses, IngressClasses, Services, EndpointSlices, Secrets and ConfigMaps complete"
    );

    loop {
        let snapshot = Snapshot {
            ingresses: index(&ingresses, namespaced_key),
            ingress_classes: index(&classes, |c| c.metadata.name.clone().unwrap_or_default()),
            services: index(&services, namespaced_key),
            endpoint_slices: index(&slices, namespaced_key),
            secrets: index(&secrets, namespaced_key)
                .into_iter()
                .chain(index(&auth_secrets, namespaced_key))
                .collect(),
            config_maps: {
                let mut maps = index(&config_maps, namespaced_key);
                if let Some(store) = &controller_maps {
                    maps.extend(index(store, namespaced_key));
                }
                maps
            },
        };
        if tx.send(Some(Arc::new(snapshot))).is_err() {
            return Ok(());
        }
        changed.notified().await;
        // Let a burst of changes (a rollout touching many EndpointSlices) settle into one compile.
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// What the proxy never reads of an Opaque Secret: `kubectl apply` copies the whole Secret into
/// an annotation, and managed fields repeat its layout; dropped before it is stored.
fn drop_metadata_copies(secret: &mut Secret) {
    secret.string_data = None;
    secret.metadata.annotations = None;
    secret.metadata.managed_fields = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_secrets_keep_their_data_without_metadata_copies() {
        let mut secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ca", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "type": "Opaque",
            "data": {"ca.crt": "Y2E=", "password": "c2VjcmV0"},
        }))
        .unwrap_or_default();
        drop_metadata_copies(&mut secret);
        let keys: Vec<&str> = secret
            .data
            .iter()
            .flat_map(|d| d.keys().map(String::as_str))
            .collect();
        // auth-map Secrets have one key per user: all data stays.
        assert_eq!(keys, ["ca.crt", "password"]);
        assert!(secret.metadata.annotations.is_none());
    }
}
