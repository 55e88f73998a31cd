//! Issuer and ClusterIssuer: an ACME account registered once per issuer, its P-256 key kept
//! in the Secret `privateKeySecretRef` names (in the issuer's namespace, or the
//! cluster-resource namespace for a ClusterIssuer), and the outcome in the Ready condition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use switchyard_crds::{ClusterIssuer, Issuer, IssuerSpec, IssuerStatus, IssuerType, condition};

use super::conditions;
use crate::certs::{self, AccountSettings, AcmeError, FailureClass};

pub const FIELD_MANAGER: &str = "switchyard-operator";
/// Annotation on account Secrets the operator created (never overwrite any other).
pub const ACCOUNT_OF: &str = "switchyard.dev/acme-account-of";
/// How often a healthy issuer re-checks its account (cheap: one request).
const RECHECK: Duration = Duration::from_secs(3600);

pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub cluster_resource_namespace: String,
}

pub use super::Error;
use super::kube_err;

/// What one pass concluded: the Ready condition's status, reason and message, and the
/// account status when registered.
struct Outcome {
    ready: bool,
    reason: &'static str,
    message: String,
    acme: Option<switchyard_crds::AcmeIssuerStatus>,
    retry: Duration,
}

impl Outcome {
    fn not_ready(reason: &'static str, message: impl Into<String>, retry: Duration) -> Self {
        Outcome {
            ready: false,
            reason,
            message: message.into(),
            acme: None,
            retry,
        }
    }
}

pub async fn reconcile_issuer(issuer: Arc<Issuer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = issuer.namespace().unwrap_or_default();
    let name = issuer.name_any();
    let outcome = check(
        &ctx,
        &issuer.spec,
        issuer.status.as_ref(),
        &ns,
        &format!("Issuer {ns}/{name}"),
    )
    .await?;
    let api: Api<Issuer> = Api::namespaced(ctx.client.clone(), &ns);
    finish(&ctx, &api, issuer.as_ref(), issuer.status.clone(), outcome).await
}

pub async fn reconcile_cluster_issuer(
    issuer: Arc<ClusterIssuer>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let spec: IssuerSpec = issuer.spec.clone().into();
    let name = issuer.name_any();
    let ns = ctx.cluster_resource_namespace.clone();
    let outcome = check(
        &ctx,
        &spec,
        issuer.status.as_ref(),
        &ns,
        &format!("ClusterIssuer {name}"),
    )
    .await?;
    let api: Api<ClusterIssuer> = Api::all(ctx.client.clone());
    finish(&ctx, &api, issuer.as_ref(), issuer.status.clone(), outcome).await
}

pub fn error_policy<K>(_: Arc<K>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "issuer reconcile failed; retrying");
    Action::requeue(Duration::from_secs(30))
}

async fn check(
    ctx: &Context,
    spec: &IssuerSpec,
    status: Option<&IssuerStatus>,
    secret_namespace: &str,
    owner: &str,
) -> Result<Outcome, Error> {
    let acme = match spec.validate() {
        Ok(IssuerType::SelfSigned(_)) => {
            return Ok(Outcome {
                ready: true,
                reason: "SelfSigned",
                message: "signs certificates with their own key".into(),
                acme: None,
                retry: RECHECK,
            });
        }
        Ok(IssuerType::Acme(acme)) => acme,
        Err(e) => return Ok(Outcome::not_ready("InvalidSpec", e.to_string(), RECHECK)),
    };
    let ca_bundle = match acme.ca_bundle.as_deref().map(certs::decode_ca_bundle) {
        Some(Ok(pem)) => Some(pem),
        Some(Err(e)) => {
            return Ok(Outcome::not_ready(
                "InvalidCABundle",
                e.to_string(),
                RECHECK,
            ));
        }
        None => None,
    };
    let secret_ref = &acme.private_key_secret_ref;
    let key_pem = match account_key(
        ctx,
        secret_namespace,
        &secret_ref.name,
        secret_ref.key(),
        owner,
    )
    .await?
    {
        Ok(pem) => pem,
        Err(outcome) => return Ok(outcome),
    };
    let registered = status
        .and_then(|s| s.acme.as_ref())
        .and_then(|a| a.last_registered_email.as_deref());
    let settings = AccountSettings {
        directory_url: &acme.server,
        email: acme.email.as_deref(),
        ca_bundle_pem: ca_bundle.as_deref(),
        key_pem: &key_pem,
        registered_email: registered,
    };
    Ok(match certs::connect_account(settings).await {
        Ok(account) => Outcome {
            ready: true,
            reason: "AccountRegistered",
            message: format!("the ACME account is registered at {}", acme.server),
            acme: Some(switchyard_crds::AcmeIssuerStatus {
                uri: Some(account.url().to_string()),
                last_registered_email: account.registered_email.clone(),
            }),
            retry: RECHECK,
        },
        Err(AcmeError::AccountKey(e)) => Outcome::not_ready(
            "AccountKeyUnsupported",
            format!("Secret {secret_namespace}/{}: {e}", secret_ref.name),
            RECHECK,
        ),
        Err(e) => {
            let classified = e.classify();
            let (reason, retry) = match classified.class {
                FailureClass::RateLimited => (
                    "RateLimited",
                    // Retry-After is a point in time; wait until then (at least a minute).
                    classified
                        .retry_after
                        .and_then(|at| {
                            let secs = at.as_second() - jiff::Timestamp::now().as_second();
                            u64::try_from(secs).ok()
                        })
                        .map(|s| Duration::from_secs(s.max(60)))
                        .unwrap_or(Duration::from_secs(300)),
                ),
                FailureClass::Permanent => ("AccountRejected", RECHECK),
                FailureClass::Transient => ("ACMEServerError", Duration::from_secs(60)),
            };
            Outcome::not_ready(reason, classified.message, retry)
        }
    })
}

/// The account key PEM: read from the Secret, or generated and stored in a new Secret (before
/// any registration, so a failed write never loses an account). A Secret that exists but was
/// not made by us and lacks the key is left alone.
async fn account_key(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
    owner: &str,
) -> Result<Result<Vec<u8>, Outcome>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let what = format!("Secret {namespace}/{name}");
    if let Some(secret) = secrets
        .get_opt(name)
        .await
        .map_err(kube_err(format!("reading {what}")))?
    {
        return Ok(match secret.data.as_ref().and_then(|d| d.get(key)) {
            Some(pem) => Ok(pem.0.clone()),
            None => Err(Outcome::not_ready(
                "AccountSecretInvalid",
                format!("{what} exists but has no {key:?} entry; it is left untouched"),
                RECHECK,
            )),
        });
    }
    let pem = match certs::generate_account_key() {
        Ok(pem) => pem,
        Err(e) => {
            return Ok(Err(Outcome::not_ready(
                "AccountKeyError",
                e.to_string(),
                RECHECK,
            )));
        }
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            annotations: Some(BTreeMap::from([(
                ACCOUNT_OF.to_string(),
                owner.to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(pem.clone().into_bytes()),
        )])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .map_err(kube_err(format!("creating {what}")))?;
    Ok(Ok(pem.into_bytes()))
}

async fn finish<K>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    old: Option<IssuerStatus>,
    outcome: Outcome,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut status = old.clone().unwrap_or_default();
    let ready = conditions::condition(
        condition::READY,
        if outcome.ready { "True" } else { "False" },
        outcome.reason,
        outcome.message.clone(),
        obj.meta().generation,
        jiff::Timestamp::now(),
    );
    let changed = conditions::set(&mut status.conditions, ready);
    if outcome.acme.is_some() || !outcome.ready {
        status.acme = outcome.acme.or(status.acme);
    }
    if Some(&status) != old.as_ref() {
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &obj.meta().name.clone().unwrap_or_default(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_err(format!(
            "writing the status of {} {}",
            K::kind(&()),
            obj.meta().name.clone().unwrap_or_default()
        )))?;
    }
    if changed {
        let event = Event {
            type_: if outcome.ready {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: outcome.reason.to_string(),
            note: Some(outcome.message.chars().take(1000).collect()),
            action: "Register".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }
    tracing::info!(kind = %K::kind(&()), name = obj.meta().name.as_deref().unwrap_or_default(),
        ready = outcome.ready, reason = outcome.reason, "issuer checked");
    Ok(Action::requeue(outcome.retry))
}
