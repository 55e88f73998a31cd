//! The controllers the leader runs.

pub mod analysis;
pub mod certificate;
pub mod conditions;
pub mod ingress_shortcut;
pub mod issuer;
pub mod rollout;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use switchyard_crds::{Certificate, ClusterIssuer, Issuer, IssuerKind, RolloutRoute};

use crate::certs::children::SolverBackend;
use crate::certs::secret::CERTIFICATE_NAME;

/// A failed Kubernetes API call during a reconcile, saying what it was for.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    what: String,
    #[source]
    source: kube::Error,
}

/// Wraps a kube error with what the call was doing (`map_err(kube_err("patching …"))`).
fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error { what, source }
}

/// What every controller needs.
#[derive(Clone)]
pub struct Settings {
    pub cluster_resource_namespace: String,
    pub identity: String,
    /// The backend of challenge Ingresses (`--acme-solver-service`).
    pub solver_backend: SolverBackend,
    /// Where HTTP-01 tokens are checked before the CA is told (`--proxy-http-url`,
    /// `--proxy-service`).
    pub self_check: certificate::SelfCheck,
    /// `--cert-manager-annotations`.
    pub cert_manager_annotations: bool,
    /// `--watch-namespace`: `None` for all.
    pub watch_namespace: Option<String>,
    /// Where rollout analysis reads the proxy's metrics (`--proxy-metrics-url`,
    /// `--proxy-service`).
    pub proxy_metrics: analysis::MetricsSource,
}

/// An Api over the watched namespace (or all).
fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs every controller until the task is aborted (on loss of leadership or shutdown).
pub async fn run(client: kube::Client, settings: Settings) {
    let only = settings.watch_namespace.as_deref();
    let reporter = Reporter {
        controller: "switchyard-operator".into(),
        instance: Some(settings.identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let rollout_ctx = Arc::new(rollout::Context {
        client: client.clone(),
        recorder: recorder.clone(),
        analysis: analysis::Analysis::new(client.clone(), settings.proxy_metrics.clone()),
    });
    let cert_ctx = Arc::new(certificate::Context::new(
        client.clone(),
        recorder.clone(),
        settings.cluster_resource_namespace.clone(),
        settings.solver_backend.clone(),
        settings.self_check.clone(),
    ));
    let shortcut_ctx = Arc::new(ingress_shortcut::Context {
        client: client.clone(),
        recorder: recorder.clone(),
        cert_manager_annotations: settings.cert_manager_annotations,
    });
    let ctx = Arc::new(issuer::Context {
        recorder,
        client: client.clone(),
        cluster_resource_namespace: settings.cluster_resource_namespace.clone(),
    });
    tracing::info!(
        "controllers running: RolloutRoute, Issuer, ClusterIssuer, Certificate, Ingress shortcut"
    );
    let routes = Controller::new(
        scoped::<RolloutRoute>(&client, only),
        watcher::Config::default(),
    )
    .owns(scoped::<Ingress>(&client, only), watcher::Config::default())
    .run(rollout::reconcile, rollout::error_policy, rollout_ctx)
    .for_each(|_| async {});
    let issuers = Controller::new(scoped::<Issuer>(&client, only), watcher::Config::default())
        .run(issuer::reconcile_issuer, issuer::error_policy, ctx.clone())
        .for_each(|_| async {});
    let cluster_issuers = Controller::new(
        Api::<ClusterIssuer>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(issuer::reconcile_cluster_issuer, issuer::error_policy, ctx)
    .for_each(|_| async {});
    let cert_controller = Controller::new(
        scoped::<Certificate>(&client, only),
        watcher::Config::default(),
    );
    let store = cert_controller.store();
    let (by_issuer, by_cluster_issuer, by_secret) = (store.clone(), store.clone(), store);
    let certificates = cert_controller
        .owns(
            scoped::<Ingress>(&client, only),
            watcher::Config::default().labels(&format!(
                "{}=true",
                switchyard_crds::challenge::CHALLENGE_LABEL
            )),
        )
        // An issuer turning Ready wakes the Certificates waiting for it.
        .watches(
            scoped::<Issuer>(&client, only),
            watcher::Config::default(),
            move |issuer: Issuer| {
                let ns = issuer.namespace();
                let name = issuer.name_any();
                by_issuer
                    .state()
                    .iter()
                    .filter(|c| {
                        c.spec.issuer_ref.kind() == IssuerKind::Issuer
                            && c.spec.issuer_ref.name == name
                            && c.namespace() == ns
                    })
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            Api::<ClusterIssuer>::all(client.clone()),
            watcher::Config::default(),
            move |issuer: ClusterIssuer| {
                let name = issuer.name_any();
                by_cluster_issuer
                    .state()
                    .iter()
                    .filter(|c| {
                        c.spec.issuer_ref.kind() == IssuerKind::ClusterIssuer
                            && c.spec.issuer_ref.name == name
                    })
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // A Secret changed or deleted under a Certificate: look at it again.
        .watches(
            scoped::<Secret>(&client, only),
            watcher::Config::default().fields("type=kubernetes.io/tls"),
            move |secret: Secret| {
                let ns = secret.namespace();
                let secret_name = secret.name_any();
                let named = secret.annotations().get(CERTIFICATE_NAME).cloned();
                by_secret
                    .state()
                    .iter()
                    .filter(|c| {
                        c.namespace() == ns
                            && (c.spec.secret_name == secret_name
                                || named.as_deref() == Some(c.name_any().as_str()))
                    })
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(certificate::reconcile, certificate::error_policy, cert_ctx)
        .for_each(|_| async {});
    let shortcut = Controller::new(scoped::<Ingress>(&client, only), watcher::Config::default())
        .owns(
            scoped::<Certificate>(&client, only),
            watcher::Config::default(),
        )
        .run(
            ingress_shortcut::reconcile,
            ingress_shortcut::error_policy,
            shortcut_ctx,
        )
        .for_each(|_| async {});
    futures::join!(routes, issuers, cluster_issuers, certificates, shortcut);
}
