//! Telling Kubernetes what the proxy found: problems as Events on their Ingress, and addresses
//! in the status of served Ingresses. Off the hot path; only the Lease holder writes.
//!
//! Pure parts: [`events::Ledger`] (which problems are new), [`status`] (desired addresses,
//! which writes). The loop here feeds them compile results, leadership and the published
//! Service, and does the API calls.

pub mod events;
pub mod leader;
pub mod status;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::model::{ObjectKey, Problem, Snapshot};
use status::{Publish, Write};

/// Failed writes are retried this often even when nothing changes.
const RESYNC: Duration = Duration::from_secs(30);
/// Between attempts to join leader election (e.g. while RBAC for Leases is missing).
const LEASE_RETRY: Duration = Duration::from_secs(5);

/// One compile's outcome, as the compile loop hands it over.
#[derive(Debug)]
pub struct Compiled {
    pub snapshot: Arc<Snapshot>,
    pub problems: Vec<Problem>,
    /// The Ingresses of our class (see [`crate::compile::ours`]).
    pub ours: BTreeSet<ObjectKey>,
}

pub type CompiledSender = watch::Sender<Option<Arc<Compiled>>>;
pub type CompiledReceiver = watch::Receiver<Option<Arc<Compiled>>>;

pub struct Config {
    pub client: kube::Client,
    /// The pod's namespace: where the Lease lives.
    pub namespace: String,
    /// The pod's name: Lease holder and Event reportingInstance.
    pub identity: String,
    pub ingress_class: String,
    pub publish: Option<Publish>,
}

/// Runs until `stop` changes (or the compile loop ends), then releases the Lease.
pub async fn run(config: Config, mut compiled: CompiledReceiver, mut stop: watch::Receiver<bool>) {
    let lease = leader::lease_name(&config.ingress_class);
    let started = loop {
        match leader::start(
            config.client.clone(),
            &config.namespace,
            &lease,
            &config.identity,
        )
        .await
        {
            Ok(started) => break started,
            Err(err) => tracing::error!("{err}; retrying in {LEASE_RETRY:?}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(LEASE_RETRY) => {}
            _ = stop.changed() => return,
        }
    };
    let (mut is_leader, lease_task) = started;
    tracing::info!(
        identity = %config.identity,
        namespace = %config.namespace,
        %lease,
        "taking part in leader election"
    );

    let mut service = match &config.publish {
        Some(Publish::Service(key)) => Some(watch_service(config.client.clone(), key.clone())),
        _ => None,
    };
    let events = events::Publisher::new(config.client.clone(), &config.identity);
    let mut ledger = events::Ledger::default();
    let mut tracker = status::Tracker::default();
    let mut leading = false;
    let mut resync = tokio::time::interval(RESYNC);

    loop {
        let now_leading = *is_leader.borrow_and_update();
        if now_leading != leading {
            if now_leading {
                tracing::info!(
                    identity = %config.identity,
                    "became leader: writing Ingress status and Events"
                );
            } else {
                tracing::warn!(
                    identity = %config.identity,
                    "lost leadership: no longer writing Ingress status and Events"
                );
                ledger.clear();
            }
            leading = now_leading;
        }
        let current = compiled.borrow_and_update().clone();
        if let Some(current) = current {
            tracker.observe(&current.snapshot, &current.ours);
            if leading {
                publish_events(&events, &mut ledger, &current).await;
                let desired = desired(config.publish.as_ref(), service.as_mut());
                if let Some(desired) = desired {
                    write_status(&config.client, &mut tracker, &current.snapshot, &desired).await;
                }
            }
        }

        tokio::select! {
            changed = is_leader.changed() => if changed.is_err() {
                tracing::error!(
                    "the Lease manager stopped: no more Ingress status or Events from this replica"
                );
                break;
            },
            changed = compiled.changed() => if changed.is_err() { break },
            _ = service_changed(service.as_mut()) => {}
            _ = resync.tick() => {}
            _ = stop.changed() => break,
        }
    }
    // Dropping the receiver makes the Lease task release the Lease.
    drop(is_leader);
    leader::release(lease_task).await;
}

async fn publish_events(
    events: &events::Publisher,
    ledger: &mut events::Ledger,
    current: &Compiled,
) {
    for problem in ledger.fresh(&current.problems) {
        // The object is in the snapshot the problem came from; its uid ties the Event to it.
        let snapshot = &current.snapshot;
        let regarding = match problem.kind {
            "ConfigMap" => snapshot
                .config_maps
                .get(&problem.object)
                .map(|m| m.object_ref(&())),
            _ => snapshot
                .ingresses
                .get(&problem.object)
                .map(|i| i.object_ref(&())),
        };
        let Some(regarding) = regarding else {
            continue;
        };
        match events.publish(problem, &regarding).await {
            Ok(()) => ledger.published(problem),
            Err(err) => {
                tracing::warn!(
                    object = %problem.object,
                    reason = problem.reason,
                    "cannot publish an Event (retrying later): {err}"
                )
            }
        }
    }
}

fn desired(
    publish: Option<&Publish>,
    service: Option<&mut watch::Receiver<Option<Arc<Service>>>>,
) -> Option<Vec<IngressLoadBalancerIngress>> {
    match publish? {
        Publish::Addresses(addresses) => Some(addresses.clone()),
        // Until the Service is seen, leave statuses as they are rather than clear them.
        Publish::Service(_) => service?
            .borrow_and_update()
            .as_deref()
            .map(status::service_addresses),
    }
}

async fn write_status(
    client: &kube::Client,
    tracker: &mut status::Tracker,
    snapshot: &Snapshot,
    desired: &[IngressLoadBalancerIngress],
) {
    for write in tracker.plan(snapshot, desired) {
        let (key, addresses) = match &write {
            Write::Set(key, addresses) => (key, addresses.as_slice()),
            Write::Clear(key) => (key, &[][..]),
        };
        match status::write(client, key, addresses).await {
            Ok(()) => {
                tracing::info!(
                    object = %key,
                    addresses = addresses.len(),
                    "Ingress status written"
                );
                if let Write::Clear(key) = &write {
                    tracker.cleared(key);
                }
            }
            Err(err) => {
                tracing::warn!(object = %key, "cannot write Ingress status (retrying later): {err}")
            }
        }
    }
}

/// Keeps the `--publish-service` Service (or its absence) in a channel.
fn watch_service(client: kube::Client, key: ObjectKey) -> watch::Receiver<Option<Arc<Service>>> {
    let (tx, rx) = watch::channel(None);
    let api: Api<Service> = Api::namespaced(client, &key.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
    tokio::spawn(async move {
        let (reader, writer) = kube::runtime::reflector::store::<Service>();
        let stream =
            kube::runtime::reflector::reflector(writer, watcher(api, config)).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    let service = reader.state().into_iter().next();
                    tx.send_replace(service);
                }
                Err(err) => tracing::warn!(service = %key, "watch error (retrying): {err}"),
            }
        }
    });
    rx
}

async fn service_changed(service: Option<&mut watch::Receiver<Option<Arc<Service>>>>) {
    if let Some(rx) = service
        && rx.changed().await.is_ok()
    {
        return;
    }
    // No Service to follow (or its watch ended): never resolves.
    std::future::pending().await
}
