//! The Certificate controller: the IO shell around `crate::certs`. Each reconcile reads the
//! Certificate (fresh from the apiserver), its issuer and its Secret, asks
//! [`decide`](crate::certs::decide()) what to do, and does one step of it: create the order
//! (recorded in `status.order` before anything else, so a restart resumes it and never starts a
//! second), present each pending HTTP-01 challenge as a challenge Ingress, check the token
//! through the proxy, tell the CA, finalize, write the Secret, clean up. Failures are classified
//! (rate limited, permanent, transient) and the next attempt's time is in status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use switchyard_crds::challenge::{CHALLENGE_LABEL, CHALLENGE_PREFIX};
use switchyard_crds::condition::{ISSUING, READY, find};
use switchyard_crds::{
    AcmeIssuer, Certificate, CertificateStatus, ClusterIssuer, IssuerKind, IssuerSpec,
    IssuerStatus, IssuerType,
};

use super::conditions::{condition, set};
use crate::certs::children::{
    CERTIFICATE_LABEL, Presented, SolverBackend, TlsData, certificate_label, challenge_ingress,
    root_of_chain, secret_owner_patch, tls_secret,
};
use crate::certs::decide::reason;
use crate::certs::errors::chain_message;
use crate::certs::{
    AccountSettings, AcmeAccount, AcmeError, AcmeOrder, Action, CertKey, Classified, FailureClass,
    Http01Challenge, InFlightOrder, Inputs, IssuerCapabilities, OrderPhase, SecretState,
    connect_account, decide, decode_ca_bundle, status,
};
use crate::cli::Namespaced;

pub const FIELD_MANAGER: &str = "switchyard-operator";

/// How long the proxy may take to serve a new token before the attempt counts as failed.
const SELF_CHECK_LIMIT: Duration = Duration::from_secs(120);
/// How long one self-check round may take inside a reconcile.
const SELF_CHECK_ROUND: Duration = Duration::from_secs(5);
/// How long one reconcile waits for the CA to validate before looking again later.
const VALIDATION_WAIT: Duration = Duration::from_secs(20);
/// How long the CA may take to sign after finalize.
const SIGNING_WAIT: Duration = Duration::from_secs(60);
/// An order still pending after this long is given up (and counted as a failure).
const ORDER_LIMIT: Duration = Duration::from_secs(15 * 60);
/// How often to look at a Certificate that waits on something we do not watch.
const RECHECK: Duration = Duration::from_secs(300);
/// The lifetime of a self-signed certificate (cert-manager's default duration).
const SELF_SIGNED_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where the operator checks that the proxy serves a token before telling the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelfCheck {
    /// `--proxy-http-url` (repeatable): every one must serve the token.
    Urls(Vec<String>),
    /// `--proxy-service NS/NAME`: its `http` port (else its first port), by cluster DNS.
    Service(Namespaced),
    /// Neither flag: no self-check (the CA's validation is the check).
    Off,
}

pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub cluster_resource_namespace: String,
    pub solver_backend: SolverBackend,
    pub self_check: SelfCheck,
    http: HyperClient<HttpConnector, Empty<Bytes>>,
    /// Registered accounts by issuer, with what they were made from (server, CA bundle, key).
    accounts: tokio::sync::Mutex<HashMap<String, (String, AcmeAccount)>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        recorder: Recorder,
        cluster_resource_namespace: String,
        solver_backend: SolverBackend,
        self_check: SelfCheck,
    ) -> Self {
        Context {
            client,
            recorder,
            cluster_resource_namespace,
            solver_backend,
            self_check,
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            accounts: tokio::sync::Mutex::default(),
        }
    }
}

pub use super::Error;
use super::kube_err;

pub fn error_policy(cert: Arc<Certificate>, error: &Error, _: Arc<Context>) -> Requeue {
    tracing::warn!(error = %chain_message(error), certificate = %cert.name_any(),
        "Certificate reconcile failed; retrying");
    Requeue::requeue(Duration::from_secs(10))
}

/// The issuer a Certificate names, as found.
struct ResolvedIssuer {
    kind: IssuerKind,
    name: String,
    spec: IssuerSpec,
    status: Option<IssuerStatus>,
    /// Where its account Secret lives.
    secret_namespace: String,
}

impl ResolvedIssuer {
    fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind.as_str(),
            self.secret_namespace,
            self.name
        )
    }

    fn describe(&self) -> String {
        format!("{} {}", self.kind.as_str(), self.name)
    }
}

async fn resolve_issuer(
    ctx: &Context,
    cert: &Certificate,
    ns: &str,
) -> Result<Option<ResolvedIssuer>, Error> {
    let r = &cert.spec.issuer_ref;
    Ok(match r.kind() {
        IssuerKind::Issuer => Api::<switchyard_crds::Issuer>::namespaced(ctx.client.clone(), ns)
            .get_opt(&r.name)
            .await
            .map_err(kube_err(format!("reading Issuer {ns}/{}", r.name)))?
            .map(|i| ResolvedIssuer {
                kind: IssuerKind::Issuer,
                name: r.name.clone(),
                spec: i.spec,
                status: i.status,
                secret_namespace: ns.to_string(),
            }),
        IssuerKind::ClusterIssuer => Api::<ClusterIssuer>::all(ctx.client.clone())
            .get_opt(&r.name)
            .await
            .map_err(kube_err(format!("reading ClusterIssuer {}", r.name)))?
            .map(|i| ResolvedIssuer {
                kind: IssuerKind::ClusterIssuer,
                name: r.name.clone(),
                spec: i.spec.into(),
                status: i.status,
                secret_namespace: ctx.cluster_resource_namespace.clone(),
            }),
    })
}

/// One reconcile's working state: the status being built and the Events to publish.
struct Pass<'a> {
    ctx: &'a Context,
    cert: Certificate,
    ns: String,
    name: String,
    generation: Option<i64>,
    status: CertificateStatus,
    events: Vec<(EventType, &'static str, String)>,
    now: Timestamp,
    /// Whether the Secret's certificate still serves the spec (failures then leave Ready alone).
    still_ready: bool,
}

impl Pass<'_> {
    fn event(&mut self, type_: EventType, reason: &'static str, note: String) {
        self.events.push((type_, reason, note));
    }

    fn certs(&self) -> Api<Certificate> {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    /// Writes the status now (server-side apply of the whole status under our manager).
    async fn write_status(&self) -> Result<(), Error> {
        let patch = json!({
            "apiVersion": Certificate::api_version(&()),
            "kind": Certificate::kind(&()),
            "status": self.status,
        });
        self.certs()
            .patch_status(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(kube_err(format!(
                "writing the status of Certificate {}/{}",
                self.ns, self.name
            )))?;
        Ok(())
    }

    async fn publish(&mut self) {
        let reference = self.cert.object_ref(&());
        for (type_, reason, note) in std::mem::take(&mut self.events) {
            let event = Event {
                type_,
                reason: reason.to_string(),
                note: Some(note.chars().take(1000).collect()),
                action: "Issue".into(),
                secondary: None,
            };
            if let Err(e) = self.ctx.recorder.publish(&event, &reference).await {
                tracing::warn!(error = %e, certificate = %format!("{}/{}", self.ns, self.name),
                    "could not publish an Event");
            }
        }
    }

    /// Records a failed attempt (status, Event, challenge Ingresses removed) and says when to
    /// look again.
    async fn fail(
        &mut self,
        failure: Classified,
        authorizations: Option<Vec<switchyard_crds::AuthorizationStatus>>,
    ) -> Result<Duration, Error> {
        let next = status::record_failure(
            &mut self.status,
            &failure,
            authorizations,
            self.still_ready,
            self.generation,
            self.now,
        );
        let reason = match failure.class {
            FailureClass::RateLimited => reason::RATE_LIMITED,
            FailureClass::Permanent => reason::REJECTED,
            FailureClass::Transient => reason::FAILED,
        };
        let message = find(&self.status.conditions, ISSUING)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        tracing::warn!(certificate = %format!("{}/{}", self.ns, self.name), reason, %message,
            "issuance failed");
        self.event(EventType::Warning, "Failed", format!("{reason}: {message}"));
        self.remove_challenges().await?;
        Ok(match next {
            Some(at) => until(at, self.now),
            None => RECHECK,
        })
    }

    async fn fail_with(&mut self, error: AcmeError) -> Result<Duration, Error> {
        let authorizations = match &error {
            AcmeError::OrderInvalid { authorizations, .. } if !authorizations.is_empty() => {
                Some(authorizations.clone())
            }
            _ => None,
        };
        self.fail(error.classify(), authorizations).await
    }

    /// Deletes this Certificate's challenge Ingresses.
    async fn remove_challenges(&self) -> Result<(), Error> {
        let api: Api<Ingress> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let selector = format!(
            "{CHALLENGE_LABEL}=true,{CERTIFICATE_LABEL}={}",
            certificate_label(&self.name)
        );
        let uid = self.cert.uid().unwrap_or_default();
        let found = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_err(format!(
                "listing the challenge Ingresses of {}/{}",
                self.ns, self.name
            )))?;
        for ing in found.items {
            if !ing.owner_references().iter().any(|o| o.uid == uid) {
                continue;
            }
            let name = ing.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(kube_err(format!(
                        "deleting challenge Ingress {}/{name}",
                        self.ns
                    ))(e));
                }
            }
        }
        Ok(())
    }
}

/// The time from `now` until `at`, at least a second.
fn until(at: Timestamp, now: Timestamp) -> Duration {
    let secs = at.duration_since(now).as_secs_f64();
    Duration::from_secs_f64(secs.max(1.0))
}

fn age(
    since: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    now: Timestamp,
) -> Duration {
    since
        .map(|t| now.duration_since(t.0))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(Duration::ZERO)
}

pub async fn reconcile(cert: Arc<Certificate>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let ns = cert.namespace().unwrap_or_default();
    let name = cert.name_any();
    let api: Api<Certificate> = Api::namespaced(ctx.client.clone(), &ns);
    // Fresh, not the cache: the status this reconcile builds on must include the last write
    // (the order in flight above all).
    let Some(cert) = api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Certificate {ns}/{name}")))?
    else {
        return Ok(Requeue::await_change());
    };
    if cert.metadata.deletion_timestamp.is_some() {
        // Children go with it through their owner references.
        return Ok(Requeue::await_change());
    }
    let now = Timestamp::now();
    let issuer = resolve_issuer(&ctx, &cert, &ns).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets
        .get_opt(&cert.spec.secret_name)
        .await
        .map_err(kube_err(format!(
            "reading Secret {ns}/{}",
            cert.spec.secret_name
        )))?;
    let secret_state = secret.as_ref().map(SecretState::from_secret);
    let in_flight = InFlightOrder::of(cert.status.as_ref());
    let decision = decide(&Inputs {
        name: &name,
        generation: cert.metadata.generation,
        spec: &cert.spec,
        status: cert.status.as_ref(),
        secret: secret_state.as_ref(),
        issuer: issuer
            .as_ref()
            .map(|i| IssuerCapabilities::of(&i.spec))
            .unwrap_or(IssuerCapabilities { wildcards: false }),
        in_flight: in_flight.as_ref(),
        now,
    });
    let old_status = cert.status.clone();
    let mut pass = Pass {
        ctx: &ctx,
        ns: ns.clone(),
        name: name.clone(),
        generation: cert.metadata.generation,
        status: cert.status.clone().unwrap_or_default(),
        events: Vec::new(),
        now,
        still_ready: decision.ready.ready,
        cert,
    };
    let changed = status::apply_decision(&mut pass.status, &decision, pass.generation, now);

    // secretPolicy, on a Secret that is ours: a merge patch of the owner references alone (an
    // apply of them would drop the data applied under our field manager).
    if let (Some(secret), Some(state)) = (&secret, &secret_state)
        && state.certificate_name.as_deref() == Some(name.as_str())
        && state.cert_manager_annotations.is_empty()
        && let Some(owners) = secret_owner_patch(
            secret.owner_references(),
            &pass.cert,
            pass.cert.spec.secret_policy() == switchyard_crds::SecretPolicy::Delete,
        )
    {
        let patch = json!({"metadata": {"ownerReferences": owners}});
        secrets
            .patch(
                &pass.cert.spec.secret_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(kube_err(format!(
                "setting the owners of Secret {ns}/{}",
                pass.cert.spec.secret_name
            )))?;
    }

    let requeue = match decision.action.clone() {
        Action::Ready => {
            pass.remove_challenges().await?;
            decision
                .requeue_at
                .map(|at| until(at, now))
                .unwrap_or(RECHECK)
        }
        Action::Conflict(conflict) => {
            if changed {
                pass.event(
                    EventType::Warning,
                    reason::SECRET_CONFLICT,
                    conflict.to_string(),
                );
            }
            RECHECK
        }
        Action::PermanentFailure { reason, message } => {
            pass.remove_challenges().await?;
            if changed {
                pass.event(
                    EventType::Warning,
                    "Failed",
                    format!("{}: {message}", reason.as_str()),
                );
            }
            decision
                .requeue_at
                .map(|at| until(at, now))
                .unwrap_or(RECHECK)
        }
        Action::Wait { until: at, .. } => {
            pass.remove_challenges().await?;
            until(at, now)
        }
        Action::Issue {
            reason: why,
            reuse_key,
        } => match issuer {
            None => {
                let message = missing_issuer(&pass.cert);
                blocked(&mut pass, "IssuerNotFound", message)
            }
            Some(issuer) => {
                if matches!(why, crate::certs::IssueReason::Renewal) && !changed {
                    tracing::info!(certificate = %format!("{ns}/{name}"), "renewal due");
                }
                let key = match reuse_key
                    .then(|| secret_state.as_ref().and_then(|s| s.key_pem.clone()))
                    .flatten()
                {
                    Some(pem) => CertKey::from_pem(&pem),
                    None => CertKey::generate(&pass.cert.spec.private_key()),
                };
                issue(&mut pass, &issuer, None, key, why.as_str()).await?
            }
        },
        Action::Continue { order_url } => match issuer {
            None => {
                let message = missing_issuer(&pass.cert);
                blocked(&mut pass, "IssuerNotFound", message)
            }
            Some(issuer) => {
                let reuse = pass.cert.spec.private_key().rotation_policy()
                    == switchyard_crds::RotationPolicy::Never;
                let key = match reuse
                    .then(|| secret_state.as_ref().and_then(|s| s.key_pem.clone()))
                    .flatten()
                {
                    Some(pem) => CertKey::from_pem(&pem),
                    None => CertKey::generate(&pass.cert.spec.private_key()),
                };
                issue(&mut pass, &issuer, Some(order_url), key, "Continue").await?
            }
        },
    };

    if Some(&pass.status) != old_status.as_ref() {
        pass.write_status().await?;
    }
    pass.publish().await;
    Ok(Requeue::requeue(requeue))
}

fn missing_issuer(cert: &Certificate) -> String {
    let r = &cert.spec.issuer_ref;
    format!(
        "{} {} does not exist{}",
        r.kind().as_str(),
        r.name,
        match r.kind() {
            IssuerKind::Issuer =>
                " in this namespace (use kind: ClusterIssuer for a cluster-wide one)",
            IssuerKind::ClusterIssuer => "",
        }
    )
}

/// Issuance cannot go on because of the issuer: say so (in Ready too when nothing serves).
fn blocked(pass: &mut Pass<'_>, why: &'static str, message: String) -> Duration {
    let changed = set(
        &mut pass.status.conditions,
        condition(
            ISSUING,
            "False",
            why,
            message.clone(),
            pass.generation,
            pass.now,
        ),
    );
    if !pass.still_ready {
        set(
            &mut pass.status.conditions,
            condition(
                READY,
                "False",
                why,
                message.clone(),
                pass.generation,
                pass.now,
            ),
        );
    }
    if changed {
        pass.event(EventType::Warning, "Failed", format!("{why}: {message}"));
    }
    // The issuer is watched: its change wakes this Certificate up sooner.
    Duration::from_secs(60)
}

/// Issues (or carries on the order at `order_url`) through the resolved issuer.
async fn issue(
    pass: &mut Pass<'_>,
    issuer: &ResolvedIssuer,
    order_url: Option<String>,
    key: Result<CertKey, crate::certs::key::KeyError>,
    why: &str,
) -> Result<Duration, Error> {
    let acme = match issuer.spec.validate() {
        Ok(IssuerType::SelfSigned(_)) => return self_signed(pass, key).await,
        Ok(IssuerType::Acme(acme)) => acme.clone(),
        Err(e) => {
            return Ok(blocked(
                pass,
                "IssuerNotReady",
                format!("{}: {e}", issuer.describe()),
            ));
        }
    };
    let ready = issuer
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, READY));
    if ready.is_none_or(|c| c.status != "True") {
        let why_not = ready.map_or_else(
            || "has not registered its ACME account yet".to_string(),
            |c| format!("is not ready ({}): {}", c.reason, c.message),
        );
        return Ok(blocked(
            pass,
            "IssuerNotReady",
            format!("{} {why_not}", issuer.describe()),
        ));
    }
    let account = match account(pass.ctx, issuer, &acme).await? {
        Ok(account) => account,
        Err(AccountProblem::Blocked(message)) => {
            // The issuer controller writes the Secret in a moment; no event will say so.
            blocked(pass, "IssuerNotReady", message);
            return Ok(Duration::from_secs(3));
        }
        Err(AccountProblem::Acme(e)) => return pass.fail_with(e).await,
    };
    let dns_names = pass.cert.spec.dns_names.clone();
    let mut order = match order_url {
        Some(url) => match account.order(&url).await {
            Ok(order) => order,
            Err(e) => return pass.fail_with(e).await,
        },
        None => {
            let order = match account.new_order(&dns_names).await {
                Ok(order) => order,
                Err(e) => return pass.fail_with(e).await,
            };
            status::order_created(
                &mut pass.status,
                order.url(),
                &dns_names,
                pass.generation,
                pass.now,
            );
            // Recorded before anything else happens with it: a restart resumes this order.
            pass.write_status().await?;
            let note = format!(
                "ACME order {} for {} ({why}) at {}",
                order.url(),
                dns_names.join(", "),
                acme.server
            );
            pass.event(EventType::Normal, "OrderCreated", note);
            // Told now, not at the end: the order exists whatever happens next.
            pass.publish().await;
            order
        }
    };
    drive(pass, issuer, &acme, &mut order, key).await
}

async fn drive(
    pass: &mut Pass<'_>,
    issuer: &ResolvedIssuer,
    acme: &AcmeIssuer,
    order: &mut AcmeOrder,
    key: Result<CertKey, crate::certs::key::KeyError>,
) -> Result<Duration, Error> {
    let order_age = age(
        pass.status
            .order
            .as_ref()
            .and_then(|o| o.created_time.as_ref()),
        pass.now,
    );
    match order.phase() {
        OrderPhase::Pending => {
            let challenges = match order.http01_challenges().await {
                Ok(c) => c,
                Err(e) => return pass.fail_with(e).await,
            };
            let solver = acme.solvers.first().and_then(|s| s.http01.as_ref());
            let solver_ingress = solver.and_then(|s| s.ingress.as_ref());
            let ingresses: Api<Ingress> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
            for c in &challenges {
                let desired = challenge_ingress(
                    &pass.cert,
                    &Presented {
                        dns_name: &c.dns_name,
                        token: &c.token,
                        key_authorization: &c.key_authorization,
                    },
                    solver_ingress,
                    &pass.ctx.solver_backend,
                );
                let child = desired.name_any();
                ingresses
                    .patch(
                        &child,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&desired),
                    )
                    .await
                    .map_err(kube_err(format!(
                        "applying challenge Ingress {}/{child}",
                        pass.ns
                    )))?;
            }
            let unsubmitted: Vec<&Http01Challenge> =
                challenges.iter().filter(|c| !c.submitted).collect();
            if !unsubmitted.is_empty() {
                if let Err(detail) = self_check(pass.ctx, &unsubmitted).await {
                    if order_age > SELF_CHECK_LIMIT {
                        let failure = Classified {
                            class: FailureClass::Transient,
                            retry_after: None,
                            problem_type: None,
                            message: format!(
                                "the proxy did not serve the HTTP-01 token within {}: {detail} \
                                 (is the solver's ingress class served by the proxy?)",
                                switchyard_crds::format_duration(SELF_CHECK_LIMIT)
                            ),
                        };
                        return pass.fail(failure, None).await;
                    }
                    status::in_progress(
                        &mut pass.status,
                        format!("waiting for the proxy to serve the HTTP-01 token: {detail}"),
                        pass.generation,
                        pass.now,
                    );
                    return Ok(Duration::from_secs(1));
                }
                if let Err(e) = order.submit_challenges().await {
                    return pass.fail_with(e).await;
                }
                let names: Vec<&str> = unsubmitted.iter().map(|c| c.dns_name.as_str()).collect();
                let via = match &pass.ctx.self_check {
                    SelfCheck::Off => "the challenge Ingresses".to_string(),
                    _ => "the proxy (self-check passed)".to_string(),
                };
                pass.event(
                    EventType::Normal,
                    "ChallengePresented",
                    format!(
                        "HTTP-01 challenges for {} are served through {via}; the CA was asked to \
                         validate them",
                        names.join(", ")
                    ),
                );
            }
            let pending: Vec<&str> = challenges.iter().map(|c| c.dns_name.as_str()).collect();
            status::in_progress(
                &mut pass.status,
                format!("the CA is validating {}", pending.join(", ")),
                pass.generation,
                pass.now,
            );
            match order.wait_ready(VALIDATION_WAIT).await {
                Ok(_) => {}
                Err(AcmeError::StillPending { .. }) if order_age < ORDER_LIMIT => {
                    return Ok(Duration::from_secs(2));
                }
                Err(e) => return pass.fail_with(e).await,
            }
            finalize(pass, issuer, order, key).await
        }
        OrderPhase::Ready => finalize(pass, issuer, order, key).await,
        OrderPhase::Processing | OrderPhase::Valid => pass.fail_with(AcmeError::KeyLost).await,
        OrderPhase::Invalid => match order.wait_ready(Duration::from_secs(1)).await {
            Err(e) => pass.fail_with(e).await,
            Ok(_) => pass.fail_with(AcmeError::KeyLost).await,
        },
    }
}

async fn finalize(
    pass: &mut Pass<'_>,
    issuer: &ResolvedIssuer,
    order: &mut AcmeOrder,
    key: Result<CertKey, crate::certs::key::KeyError>,
) -> Result<Duration, Error> {
    let key = match key {
        Ok(key) => key,
        Err(e) => return pass.fail_with(AcmeError::Key(e)).await,
    };
    let dns_names = pass.cert.spec.dns_names.clone();
    let issued = match order.finalize(&key, &dns_names, SIGNING_WAIT).await {
        Ok(issued) => issued,
        Err(e) => return pass.fail_with(e).await,
    };
    let ca = root_of_chain(&issued.chain_pem);
    store(
        pass,
        issuer,
        &TlsData {
            chain_pem: &issued.chain_pem,
            key_pem: &issued.key_pem,
            ca_pem: ca.as_deref(),
        },
        &issued.info,
    )
    .await
}

/// Writes the Secret and records the issuance.
async fn store(
    pass: &mut Pass<'_>,
    issuer: &ResolvedIssuer,
    data: &TlsData<'_>,
    info: &crate::certs::secret::CertInfo,
) -> Result<Duration, Error> {
    let secret = tls_secret(&pass.cert, data);
    let secret_name = pass.cert.spec.secret_name.clone();
    Api::<Secret>::namespaced(pass.ctx.client.clone(), &pass.ns)
        .patch(
            &secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(kube_err(format!(
            "writing Secret {}/{secret_name}",
            pass.ns
        )))?;
    let renew_before = pass.cert.spec.renew_before().ok().flatten();
    let renewal = status::record_issued(
        &mut pass.status,
        info,
        renew_before,
        pass.generation,
        pass.now,
    );
    pass.remove_challenges().await?;
    pass.event(
        EventType::Normal,
        "Issued",
        format!(
            "certificate for {} issued by {} into Secret {secret_name}, valid until {}",
            info.dns_names.join(", "),
            issuer.describe(),
            info.not_after
        ),
    );
    pass.event(
        EventType::Normal,
        "RenewalScheduled",
        format!("renewal at {renewal}"),
    );
    tracing::info!(certificate = %format!("{}/{}", pass.ns, pass.name),
        not_after = %info.not_after, %renewal, "certificate issued");
    // Ready must flip at expiry even if renewal keeps failing; renewal comes first.
    Ok(until(renewal.min(info.not_after), pass.now))
}

/// The selfSigned issuer: no CA, no order.
async fn self_signed(
    pass: &mut Pass<'_>,
    key: Result<CertKey, crate::certs::key::KeyError>,
) -> Result<Duration, Error> {
    let key = match key {
        Ok(key) => key,
        Err(e) => return pass.fail_with(AcmeError::Key(e)).await,
    };
    let not_after = pass
        .now
        .saturating_add(
            SignedDuration::try_from(SELF_SIGNED_LIFETIME).unwrap_or(SignedDuration::ZERO),
        )
        .unwrap_or(pass.now);
    let dns_names = pass.cert.spec.dns_names.clone();
    let pem = match key.self_signed_pem(&dns_names, pass.now, not_after) {
        Ok(pem) => pem,
        Err(e) => return pass.fail_with(AcmeError::Key(e)).await,
    };
    let key_pem = key.to_pem();
    let info = match crate::certs::secret::parse_leaf(pem.as_bytes(), Some(&key_pem)) {
        Ok(info) => info,
        Err(problem) => {
            return pass
                .fail_with(AcmeError::Chain(format!("{problem:?}")))
                .await;
        }
    };
    let issuer = ResolvedIssuer {
        kind: pass.cert.spec.issuer_ref.kind(),
        name: pass.cert.spec.issuer_ref.name.clone(),
        spec: IssuerSpec {
            acme: None,
            self_signed: None,
        },
        status: None,
        secret_namespace: String::new(),
    };
    store(
        pass,
        &issuer,
        &TlsData {
            chain_pem: &pem,
            key_pem: &key_pem,
            ca_pem: Some(&pem),
        },
        &info,
    )
    .await
}

enum AccountProblem {
    /// The issuer is not usable yet (its Secret is missing, say).
    Blocked(String),
    Acme(AcmeError),
}

/// The issuer's ACME account, from the cache or connected with the key in its Secret.
async fn account(
    ctx: &Context,
    issuer: &ResolvedIssuer,
    acme: &AcmeIssuer,
) -> Result<Result<AcmeAccount, AccountProblem>, Error> {
    let secret_ref = &acme.private_key_secret_ref;
    let ns = &issuer.secret_namespace;
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&secret_ref.name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{}", secret_ref.name)))?;
    let Some(key_pem) = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(secret_ref.key()))
        .map(|b| b.0.clone())
    else {
        return Ok(Err(AccountProblem::Blocked(format!(
            "{}: its account key Secret {ns}/{} (key {}) is not there yet",
            issuer.describe(),
            secret_ref.name,
            secret_ref.key()
        ))));
    };
    let fingerprint = format!(
        "{}\n{}\n{}",
        acme.server,
        acme.ca_bundle.as_deref().unwrap_or_default(),
        String::from_utf8_lossy(&key_pem)
    );
    let id = issuer.id();
    let mut cache = ctx.accounts.lock().await;
    if let Some((made_from, account)) = cache.get(&id)
        && *made_from == fingerprint
    {
        return Ok(Ok(account.clone()));
    }
    let ca_bundle = match acme.ca_bundle.as_deref().map(decode_ca_bundle).transpose() {
        Ok(pem) => pem,
        Err(e) => return Ok(Err(AccountProblem::Acme(e))),
    };
    let settings = AccountSettings {
        directory_url: &acme.server,
        email: acme.email.as_deref(),
        ca_bundle_pem: ca_bundle.as_deref(),
        key_pem: &key_pem,
        // The issuer controller keeps the contact up to date; never update it from here.
        registered_email: acme.email.as_deref(),
    };
    match connect_account(settings).await {
        Ok(account) => {
            cache.insert(id, (fingerprint, account.clone()));
            Ok(Ok(account))
        }
        Err(e) => Ok(Err(AccountProblem::Acme(e))),
    }
}

/// The base URLs of the proxy for self-checks.
async fn proxy_urls(ctx: &Context) -> Result<Vec<String>, String> {
    match &ctx.self_check {
        SelfCheck::Off => Ok(Vec::new()),
        SelfCheck::Urls(urls) => Ok(urls.clone()),
        SelfCheck::Service(svc) => {
            let service = Api::<Service>::namespaced(ctx.client.clone(), &svc.namespace)
                .get(&svc.name)
                .await
                .map_err(|e| {
                    format!(
                        "reading --proxy-service {}/{}: {e}",
                        svc.namespace, svc.name
                    )
                })?;
            let ports = service.spec.and_then(|s| s.ports).unwrap_or_default();
            let port = ports
                .iter()
                .find(|p| p.name.as_deref() == Some("http"))
                .or(ports.first())
                .map(|p| p.port)
                .ok_or_else(|| format!("Service {}/{} has no ports", svc.namespace, svc.name))?;
            Ok(vec![format!(
                "http://{}.{}.svc:{port}",
                svc.name, svc.namespace
            )])
        }
    }
}

/// Checks that every proxy URL serves every token (polling for a few seconds: the proxy needs a
/// moment to see a new Ingress). The error says what was found instead.
async fn self_check(ctx: &Context, challenges: &[&Http01Challenge]) -> Result<(), String> {
    let bases = proxy_urls(ctx).await?;
    if bases.is_empty() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + SELF_CHECK_ROUND;
    loop {
        let mut last = None;
        'all: for c in challenges {
            for base in &bases {
                if let Err(e) = check_one(ctx, base, c).await {
                    last = Some(e);
                    break 'all;
                }
            }
        }
        match last {
            None => return Ok(()),
            Some(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn check_one(ctx: &Context, base: &str, c: &Http01Challenge) -> Result<(), String> {
    let url = format!(
        "{}{CHALLENGE_PREFIX}{}",
        base.trim_end_matches('/'),
        c.token
    );
    let what = format!("GET {url} (Host: {})", c.dns_name);
    let request = http::Request::get(&url)
        .header(http::header::HOST, &c.dns_name)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{what}: {e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(3), ctx.http.request(request))
        .await
        .map_err(|_| format!("{what}: no answer within 3s"))?
        .map_err(|e| format!("{what}: {}", chain_message(&e)))?;
    let status = response.status();
    let body = tokio::time::timeout(Duration::from_secs(3), response.into_body().collect())
        .await
        .map_err(|_| format!("{what}: body not read within 3s"))?
        .map_err(|e| format!("{what}: {e}"))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    if status == http::StatusCode::OK && body.trim() == c.key_authorization {
        Ok(())
    } else {
        let shown: String = body.chars().take(80).collect();
        Err(format!("{what} answered {status} {shown:?}"))
    }
}
