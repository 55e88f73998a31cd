//! The controllers the leader runs.

pub mod conditions;
pub mod issuer;

use std::sync::Arc;

use futures::StreamExt;
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use switchyard_crds::{ClusterIssuer, Issuer};

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
    let ctx = Arc::new(issuer::Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        cluster_resource_namespace: settings.cluster_resource_namespace.clone(),
    });
    tracing::info!("controllers running: Issuer, ClusterIssuer");
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
    futures::join!(issuers, cluster_issuers);
}
