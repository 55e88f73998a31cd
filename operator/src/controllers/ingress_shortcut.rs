//! The Ingress shortcut's shell: Ingresses annotated with an issuer get their Certificates by
//! server-side apply (see [`crate::certs::shortcut`]); Certificates they no longer ask for are
//! deleted; a Certificate of the same name that the Ingress does not own is never taken over.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use switchyard_crds::Certificate;
use switchyard_crds::challenge::CHALLENGE_LABEL;

use crate::certs::shortcut::{INGRESS_LABEL, certificates_for, ingress_label, stale};

pub const FIELD_MANAGER: &str = "switchyard-operator";

pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    /// `--cert-manager-annotations`.
    pub cert_manager_annotations: bool,
}

pub use super::Error;
use super::kube_err;

pub fn error_policy(ingress: Arc<Ingress>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, ingress = %ingress.name_any(), "Ingress shortcut reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

pub async fn reconcile(ingress: Arc<Ingress>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Our own challenge Ingresses ask for nothing.
    if ingress.labels().contains_key(CHALLENGE_LABEL) || ingress.meta().deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let ns = ingress.namespace().unwrap_or_default();
    let name = ingress.name_any();
    let uid = ingress.uid().unwrap_or_default();
    let wanted = certificates_for(&ingress, ctx.cert_manager_annotations);
    let certs: Api<Certificate> = Api::namespaced(ctx.client.clone(), &ns);
    let mut problems = wanted.problems.clone();
    for cert in &wanted.certificates {
        let child = cert.name_any();
        let existing = certs
            .get_opt(&child)
            .await
            .map_err(kube_err(format!("reading Certificate {ns}/{child}")))?;
        if existing.is_some_and(|c| !c.owner_references().iter().any(|o| o.uid == uid)) {
            problems.push(format!(
                "Certificate {child} exists and is not this Ingress's: left alone (delete it, \
                 or remove the issuer annotation)"
            ));
            continue;
        }
        certs
            .patch(
                &child,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(cert),
            )
            .await
            .map_err(kube_err(format!("applying Certificate {ns}/{child}")))?;
    }
    let selector = format!("{INGRESS_LABEL}={}", ingress_label(&name));
    let existing = certs
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err(format!(
            "listing the Certificates of Ingress {ns}/{name}"
        )))?
        .items;
    for gone in stale(&existing, &uid, &wanted) {
        match certs.delete(gone, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_err(format!("deleting Certificate {ns}/{gone}"))(e)),
        }
    }
    let reference = ingress.object_ref(&());
    for problem in problems {
        let event = Event {
            type_: EventType::Warning,
            reason: "CertificateShortcut".into(),
            note: Some(problem.chars().take(1000).collect()),
            action: "ApplyCertificates".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }
    Ok(Action::await_change())
}
