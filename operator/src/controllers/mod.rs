//! The controllers the leader runs.

pub mod conditions;
pub mod issuer;
pub mod rollout;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use switchyard_crds::{ClusterIssuer, Issuer, RolloutRoute};

/// What every controller needs.
#[derive(Clone)]
pub struct Settings {
    pub cluster_resource_namespace: String,
    pub identity: String,
}

/// Runs every controller until the task is aborted (on loss of leadership or shutdown).
pub async fn run(client: kube::Client, settings: Settings) {
    let reporter = Reporter {
        controller: "switchyard-operator".into(),
        instance: Some(settings.identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let rollout_ctx = Arc::new(rollout::Context {
        client: client.clone(),
        recorder: recorder.clone(),
    });
    let ctx = Arc::new(issuer::Context {
        recorder,
        client: client.clone(),
        cluster_resource_namespace: settings.cluster_resource_namespace.clone(),
    });
    tracing::info!("controllers running: RolloutRoute, Issuer, ClusterIssuer");
    let routes = Controller::new(
        Api::<RolloutRoute>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<Ingress>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(rollout::reconcile, rollout::error_policy, rollout_ctx)
    .for_each(|_| async {});
    let issuers = Controller::new(
        Api::<Issuer>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(issuer::reconcile_issuer, issuer::error_policy, ctx.clone())
    .for_each(|_| async {});
    let cluster_issuers = Controller::new(
        Api::<ClusterIssuer>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(issuer::reconcile_cluster_issuer, issuer::error_policy, ctx)
    .for_each(|_| async {});
    futures::join!(routes, issuers, cluster_issuers);
}
