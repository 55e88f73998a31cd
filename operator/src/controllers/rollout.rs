//! The RolloutRoute controller: the IO shell around `crate::rollout` (decide the next status,
//! expand it into Ingresses). Children are server-side applied under one field manager and
//! owned by the route; an Ingress with a child's name that the route does not own is never
//! touched (IngressConflict).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use switchyard_crds::RolloutRoute;
use switchyard_crds::condition::{READY, find};

use super::analysis::{Analysis, Subject};
use crate::rollout::{
    self, Observed, ROUTE_LABEL, analysis_due, child_name, desired_ingresses, label_value,
    next_status, stale_children,
};

pub const FIELD_MANAGER: &str = "switchyard-operator";

pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    /// Scrapes the proxy's metrics for analysis.
    pub analysis: Analysis,
}

pub use super::Error;
use super::kube_err;

fn owned_by(ingress: &Ingress, uid: &str) -> bool {
    ingress.owner_references().iter().any(|o| o.uid == uid)
}

pub async fn reconcile(cached: Arc<RolloutRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    // The watch cache can lag behind the status this controller wrote a moment ago (a child's
    // change wakes the route before the status update arrives); deciding on a stale status
    // would start a rollout twice or move a step back. Read the route itself.
    let Some(route) = Api::<RolloutRoute>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading RolloutRoute {ns}/{name}")))?
    else {
        return Ok(Action::await_change());
    };
    let uid = route.uid().unwrap_or_default();
    let ingresses: Api<Ingress> = Api::namespaced(ctx.client.clone(), &ns);

    // Names a child could take; one that exists without our owner reference is someone else's.
    let mut conflicts = Vec::new();
    for child in [
        name.clone(),
        child_name(&name, "-canary"),
        child_name(&name, "-preview"),
    ] {
        let existing = ingresses
            .get_opt(&child)
            .await
            .map_err(kube_err(format!("reading Ingress {ns}/{child}")))?;
        if existing.is_some_and(|i| !owned_by(&i, &uid)) {
            conflicts.push(child);
        }
    }
    // An analysis interval that has ended is measured from the proxy's metrics.
    let subject = Subject {
        uid: &uid,
        namespace: &ns,
        name: &name,
    };
    let old_status = route.status.clone().unwrap_or_default();
    let measurement = match analysis_due(&route, &old_status) {
        Some(due) if jiff::Timestamp::now() >= due.at => ctx.analysis.measure(&subject, &due).await,
        _ => None,
    };
    let observed = Observed {
        measurement,
        conflicts: conflicts.clone(),
    };
    let decision = next_status(&route, &observed, jiff::Timestamp::now());
    // A rollout that analysis follows from now on gets the scrape its first interval starts
    // from; one it no longer follows is forgotten.
    ctx.analysis
        .follow(&subject, analysis_due(&route, &decision.status).as_ref())
        .await;

    let invalid = find(&decision.status.conditions, READY)
        .is_some_and(|c| c.reason == rollout::reason::INVALID_SPEC);
    if !invalid {
        let desired = desired_ingresses(&route, &decision.status);
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        for ingress in &desired {
            let child = ingress.name_any();
            if conflicts.contains(&child) {
                continue;
            }
            ingresses
                .patch(&child, &apply, &Patch::Apply(ingress))
                .await
                .map_err(kube_err(format!("applying Ingress {ns}/{child}")))?;
        }
        let selector = format!("{ROUTE_LABEL}={}", label_value(&name));
        let ours: Vec<String> = ingresses
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_err(format!("listing the Ingresses of {ns}/{name}")))?
            .items
            .into_iter()
            .filter(|i| owned_by(i, &uid))
            .map(|i| i.name_any())
            .collect();
        for stale in stale_children(&ours, &desired) {
            ingresses
                .delete(&stale, &DeleteParams::default())
                .await
                .map_err(kube_err(format!("deleting Ingress {ns}/{stale}")))?;
        }
    }

    if Some(&decision.status) != route.status.as_ref() {
        let patch = json!({
            "apiVersion": RolloutRoute::api_version(&()),
            "kind": RolloutRoute::kind(&()),
            "status": decision.status,
        });
        Api::<RolloutRoute>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(kube_err(format!(
                "writing the status of RolloutRoute {ns}/{name}"
            )))?;
    }
    let reference = route.object_ref(&());
    for event in &decision.events {
        let event = Event {
            type_: match event.type_ {
                rollout::EventType::Normal => EventType::Normal,
                rollout::EventType::Warning => EventType::Warning,
            },
            reason: event.reason.to_string(),
            note: Some(event.message.chars().take(1000).collect()),
            action: "Rollout".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, route = %format!("{ns}/{name}"), "could not publish an Event");
        }
    }
    Ok(match decision.requeue {
        Some(after) => Action::requeue(after.max(Duration::from_millis(100))),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

pub fn error_policy(route: Arc<RolloutRoute>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, route = %route.name_any(), "RolloutRoute reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}
