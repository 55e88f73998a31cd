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

use crate::rollout::{
    self, Observed, ROUTE_LABEL, child_name, desired_ingresses, label_value, next_status,
    stale_children,
};

pub const FIELD_MANAGER: &str = "switchyard-operator";

pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

fn owned_by(ingress: &Ingress, uid: &str) -> bool {
    ingress.owner_references().iter().any(|o| o.uid == uid)
}

pub async fn reconcile(route: Arc<RolloutRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = route.namespace().unwrap_or_default();
    let name = route.name_any();
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
    let observed = Observed {
        // Analysis reads the proxy's metrics; until that scrape is wired, no measurement is
        // passed and analysis waits (it never passes or fails on no data).
        measurement: None,
        conflicts: conflicts.clone(),
    };
    let decision = next_status(&route, &observed, jiff::Timestamp::now());

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
