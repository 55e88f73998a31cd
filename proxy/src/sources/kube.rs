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
/// the controller ConfigMap, the only one watched.
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
    // Only TLS Secrets: the proxy has no business holding the others in memory.
    let secrets = reflect::<Secret>(
        api(&client, ns),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
        changed.clone(),
    );

    // CA bundles for auth-tls-secret and proxy-ssl-secret are usually generic (Opaque)
    // Secrets: only the keys those read are kept.
    let opaque_secrets = reflect_trimmed::<Secret>(
        api(&client, ns),
        watcher::Config::default().fields("type=Opaque"),
        changed.clone(),
        keep_certificate_keys,
    );

    let config_maps = configmap.as_ref().map(|key| {
        reflect::<ConfigMap>(
            Api::namespaced(client.clone(), &key.namespace),
            watcher::Config::default().fields(&format!("metadata.name={}", key.name)),
            changed.clone(),
        )
    });
    if let Some(store) = &config_maps {
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
        opaque_secrets.wait_until_ready().await,
    ] {
        ready.map_err(|_| KubeError::WatchEnded)?;
    }
    tracing::info!(
        "initial sync of Ingresses, IngressClasses, Services, EndpointSlices and Secrets complete"
    );

    loop {
        let snapshot = Snapshot {
            ingresses: index(&ingresses, namespaced_key),
            ingress_classes: index(&classes, |c| c.metadata.name.clone().unwrap_or_default()),
            services: index(&services, namespaced_key),
            endpoint_slices: index(&slices, namespaced_key),
            secrets: {
                let mut all = index(&opaque_secrets, namespaced_key);
                all.extend(index(&secrets, namespaced_key));
                all
            },
            config_maps: config_maps
                .as_ref()
                .map(|store| index(store, namespaced_key))
                .unwrap_or_default(),
        };
        if tx.send(Some(Arc::new(snapshot))).is_err() {
            return Ok(());
        }
        changed.notified().await;
        // Let a burst of changes (a rollout touching many EndpointSlices) settle into one compile.
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// The Secret keys the proxy reads from a non-TLS Secret (`auth-tls-secret`,
/// `proxy-ssl-secret`); everything else of it, annotations included (`kubectl apply` copies the
/// whole Secret into one), is dropped before it is stored.
fn keep_certificate_keys(secret: &mut Secret) {
    const KEYS: [&str; 4] = ["ca.crt", "ca.crl", "tls.crt", "tls.key"];
    if let Some(data) = secret.data.as_mut() {
        data.retain(|key, _| KEYS.contains(&key.as_str()));
    }
    secret.string_data = None;
    secret.metadata.annotations = None;
    secret.metadata.managed_fields = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_secrets_keep_only_certificate_keys() {
        let mut secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ca", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "type": "Opaque",
            "data": {"ca.crt": "Y2E=", "password": "c2VjcmV0"},
        }))
        .unwrap_or_default();
        keep_certificate_keys(&mut secret);
        let keys: Vec<&str> = secret
            .data
            .iter()
            .flat_map(|d| d.keys().map(String::as_str))
            .collect();
        assert_eq!(keys, ["ca.crt"]);
        assert!(secret.metadata.annotations.is_none());
    }
}
