//! The Certificate decision: given the spec, the Secret as it is, the status and the time, what
//! to do now. Pure: no IO, no clock (`now` is an input), so every branch is unit-tested.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use switchyard_crds::condition::{ISSUING, find};
use switchyard_crds::{
    CertificateSpec, CertificateStatus, IssuerSpec, KeyAlgorithm, PrivateKey, RotationPolicy,
};

use super::classify::WaitReason;
use super::key::algorithm_for;
use super::secret::{CertInfo, CertProblem, KeyKind, SecretState};

/// Condition reasons of a Certificate (`Ready` and `Issuing`), shared by decide and the shell.
pub mod reason {
    /// Ready True: the Secret holds a current certificate for the spec. Issuing False: done.
    pub const ISSUED: &str = "Issued";
    /// Issuing True: an order is in flight.
    pub const ORDER_PENDING: &str = "OrderPending";
    /// Issuing False after a transient failure; another attempt follows at nextRetryTime.
    pub const FAILED: &str = "Failed";
    /// Issuing False: the CA's rate limit; another attempt follows at nextRetryTime.
    pub const RATE_LIMITED: &str = "RateLimited";
    /// Issuing False: the CA refused for good; nothing happens until the spec changes.
    pub const REJECTED: &str = "Rejected";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    pub const WILDCARD_NEEDS_DNS01: &str = "WildcardNeedsDNS01";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const KEY_ALGORITHM_UNSUPPORTED: &str = "KeyAlgorithmUnsupported";
    /// Issuing True, set by `kubectl switchyard cert renew`: issue now, whatever the renewal
    /// time says.
    pub const MANUALLY_TRIGGERED: &str = "ManuallyTriggered";
}

/// An ACME order recorded as in flight for a Certificate (`status.order`), so a restart
/// resumes the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlightOrder {
    pub url: String,
    /// The Certificate generation the order was created for.
    pub generation: Option<i64>,
}

impl InFlightOrder {
    /// The order recorded in a status, if any.
    pub fn of(status: Option<&CertificateStatus>) -> Option<Self> {
        status
            .and_then(|s| s.order.as_ref())
            .map(|o| InFlightOrder {
                url: o.url.clone(),
                generation: o.generation,
            })
    }
}

/// What the issuer can validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuerCapabilities {
    /// Whether wildcard names can be issued (DNS-01, or no validation at all).
    pub wildcards: bool,
}

impl IssuerCapabilities {
    /// An ACME issuer validates only over HTTP-01 here, which CAs refuse for wildcards; a
    /// self-signed issuer validates nothing.
    pub fn of(issuer: &IssuerSpec) -> Self {
        IssuerCapabilities {
            wildcards: issuer.acme.is_none() && issuer.self_signed.is_some(),
        }
    }
}

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The Certificate's `metadata.name` (the Secret's ownership mark names it).
    pub name: &'a str,
    /// The Certificate's `metadata.generation`.
    pub generation: Option<i64>,
    pub spec: &'a CertificateSpec,
    pub status: Option<&'a CertificateStatus>,
    /// The Secret `spec.secretName`, if it exists.
    pub secret: Option<&'a SecretState>,
    /// What the issuer named by `spec.issuerRef` can validate.
    pub issuer: IssuerCapabilities,
    pub in_flight: Option<&'a InFlightOrder>,
    pub now: Timestamp,
}

/// Why a new certificate is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IssueReason {
    /// No Secret, or no certificate in it.
    Missing,
    /// The Secret's certificate or key cannot be read, or they do not belong together.
    InvalidSecret,
    Expired,
    /// The certificate's names are not `spec.dnsNames`.
    DnsNamesChanged,
    /// The certificate's key is not what `spec.privateKey` asks for.
    KeyChanged,
    /// Signed by another issuer than `spec.issuerRef` names.
    IssuerChanged,
    /// The renewal time has come.
    Renewal,
    /// Someone asked (`kubectl switchyard cert renew`).
    Requested,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::Missing => "Missing",
            IssueReason::InvalidSecret => "InvalidSecret",
            IssueReason::Expired => "Expired",
            IssueReason::DnsNamesChanged => "DnsNamesChanged",
            IssueReason::KeyChanged => "KeyChanged",
            IssueReason::IssuerChanged => "IssuerChanged",
            IssueReason::Renewal => "Renewal",
            IssueReason::Requested => reason::MANUALLY_TRIGGERED,
        }
    }

    /// Whether the certificate in the Secret still serves the spec while this is being fixed.
    pub fn still_ready(self) -> bool {
        matches!(
            self,
            IssueReason::Renewal | IssueReason::IssuerChanged | IssueReason::Requested
        )
    }
}

/// Why the Secret is not ours to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConflictReason {
    /// `switchyard.dev/certificate-name` names another Certificate.
    OtherCertificate(String),
    /// cert-manager's annotations are on it.
    CertManager(Vec<String>),
    /// It exists without our annotation: someone else made it.
    NotOurs,
}

impl std::fmt::Display for ConflictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConflictReason::OtherCertificate(other) => {
                write!(f, "the Secret belongs to Certificate {other}")
            }
            ConflictReason::CertManager(annotations) => write!(
                f,
                "the Secret is managed by cert-manager ({})",
                annotations.join(", ")
            ),
            ConflictReason::NotOurs => write!(
                f,
                "the Secret exists and was not created by Switchyard; delete it or choose \
                 another secretName"
            ),
        }
    }
}

/// Failures that stay until the spec changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermanentReason {
    InvalidSpec,
    WildcardNeedsDns01,
    KeyAlgorithmUnsupported,
    /// The CA refused for good (rejectedIdentifier, malformed, caa, …).
    Rejected,
}

impl PermanentReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PermanentReason::InvalidSpec => reason::INVALID_SPEC,
            PermanentReason::WildcardNeedsDns01 => reason::WILDCARD_NEEDS_DNS01,
            PermanentReason::KeyAlgorithmUnsupported => reason::KEY_ALGORITHM_UNSUPPORTED,
            PermanentReason::Rejected => reason::REJECTED,
        }
    }
}

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the certificate is current. Look again at `Decision::requeue_at`.
    Ready,
    /// Start a new order. Any recorded in-flight order is abandoned (it was for an older spec).
    Issue {
        reason: IssueReason,
        /// `rotationPolicy: Never` and the Secret's key fits the spec: put it in the CSR.
        reuse_key: bool,
    },
    /// An order for this spec is in flight: carry it on, never start a second one.
    Continue { order_url: String },
    /// A new certificate is needed but a failure asked us to wait.
    Wait {
        until: Timestamp,
        reason: WaitReason,
        then: IssueReason,
    },
    /// The Secret is not ours: do not touch it.
    Conflict(ConflictReason),
    /// Stop until the spec changes (a new generation).
    PermanentFailure {
        reason: PermanentReason,
        message: String,
    },
}

/// Times of the certificate in the Secret, for `status.notBefore/notAfter/renewalTime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertTimes {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub renewal_time: Timestamp,
}

/// The `Ready` condition as it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The decision, with what status should show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub ready: Readiness,
    /// `None` when the Secret holds no readable certificate (clear the status times).
    pub times: Option<CertTimes>,
    /// Look again at this time even if nothing changes (renewal, expiry, end of a wait).
    pub requeue_at: Option<Timestamp>,
    /// A recorded in-flight order is stale (spec changed, or nothing to do): forget it.
    pub clear_order: bool,
}

/// When to renew: `renewBefore` before expiry, or at two thirds of the lifetime when unset or
/// not shorter than the lifetime (cert-manager's rule).
pub fn renewal_time(
    not_before: Timestamp,
    not_after: Timestamp,
    renew_before: Option<Duration>,
) -> Timestamp {
    let lifetime = not_after.duration_since(not_before);
    let before = renew_before.and_then(|d| SignedDuration::try_from(d).ok());
    match before {
        // Only calendar units can make Timestamp arithmetic fail; a plain duration saturates.
        Some(before) if before < lifetime => {
            not_after.saturating_sub(before).unwrap_or(Timestamp::MIN)
        }
        _ => not_before
            .saturating_add(SignedDuration::from_secs(lifetime.as_secs() * 2 / 3))
            .unwrap_or(Timestamp::MAX),
    }
}

/// Decides.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    let Inputs {
        spec, secret, now, ..
    } = *inputs;
    let cert = secret.and_then(|s| s.certificate.as_ref().ok());
    let renew_before = spec.renew_before().ok().flatten();
    let times = cert.map(|c| CertTimes {
        not_before: c.not_before,
        not_after: c.not_after,
        renewal_time: renewal_time(c.not_before, c.not_after, renew_before),
    });
    // Ready must flip to False the moment the certificate expires: always look again then.
    let expiry = cert.map(|c| c.not_after).filter(|t| *t > now);
    let decision = |action: Action, ready: Readiness, requeue_at: Option<Timestamp>| {
        let requeue_at = match (requeue_at, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Decision {
            action,
            ready,
            times,
            requeue_at,
            clear_order: false,
        }
    };

    let need = need(inputs, cert);
    let readiness = readiness(secret, need, now);

    if let Err(e) = spec.validate() {
        let message = e.to_string();
        return permanent(PermanentReason::InvalidSpec, message, readiness, decision);
    }
    if !inputs.issuer.wildcards
        && let Some(name) = spec.dns_names.iter().find(|n| n.starts_with("*."))
    {
        let message = format!(
            "{name} is a wildcard: ACME CAs validate wildcards only over DNS-01, and this \
             issuer offers only HTTP-01"
        );
        return permanent(
            PermanentReason::WildcardNeedsDns01,
            message,
            readiness,
            decision,
        );
    }
    if let Err(e) = algorithm_for(&spec.private_key()) {
        let message = e.to_string();
        return permanent(
            PermanentReason::KeyAlgorithmUnsupported,
            message,
            readiness,
            decision,
        );
    }
    if let Some(conflict) = secret.and_then(|s| conflict(inputs.name, s)) {
        let ready = Readiness {
            ready: false,
            reason: reason::SECRET_CONFLICT,
            message: conflict.to_string(),
        };
        let mut d = decision(Action::Conflict(conflict), ready, None);
        // Readiness says the Secret is not ours; its expiry is not our business.
        d.requeue_at = None;
        return d;
    }

    let Some(need) = need else {
        let mut d = decision(Action::Ready, readiness, times.map(|t| t.renewal_time));
        d.clear_order = inputs.in_flight.is_some();
        return d;
    };

    // An order for an older spec is dropped below and a fresh one started.
    if let Some(order) = inputs.in_flight
        && order.generation == inputs.generation
    {
        return decision(
            Action::Continue {
                order_url: order.url.clone(),
            },
            readiness,
            None,
        );
    }
    let stale_order = inputs.in_flight.is_some();

    let issuing = inputs
        .status
        .and_then(|s| find(&s.conditions, ISSUING))
        .filter(|c| c.status == "False");
    let same_generation = |c: &Condition| c.observed_generation == inputs.generation;
    if let Some(c) = issuing.filter(|c| c.reason == reason::REJECTED && same_generation(c)) {
        let mut d = permanent(
            PermanentReason::Rejected,
            c.message.clone(),
            readiness,
            decision,
        );
        d.clear_order = stale_order;
        return d;
    }
    let next_retry = inputs
        .status
        .filter(|s| s.failed_issuance_attempts.unwrap_or(0) > 0)
        .and_then(|s| s.next_retry_time.as_ref())
        .map(|t| t.0)
        .filter(|t| *t > now);
    if let (Some(until), Some(c)) = (next_retry, issuing) {
        // A rate limit binds whatever the spec says; our own backoff yields to a spec change.
        let wait = if c.reason == reason::RATE_LIMITED {
            Some(WaitReason::RateLimited)
        } else if same_generation(c) {
            Some(WaitReason::Backoff)
        } else {
            None
        };
        if let Some(reason) = wait {
            // Without a usable certificate the failure is the news: keep the CA's word (the
            // Issuing message, with its retry time) in Ready too.
            let readiness = if readiness.ready {
                readiness
            } else {
                Readiness {
                    ready: false,
                    reason: match reason {
                        WaitReason::RateLimited => reason::RATE_LIMITED,
                        WaitReason::Backoff => reason::FAILED,
                    },
                    message: c.message.clone(),
                }
            };
            let mut d = decision(
                Action::Wait {
                    until,
                    reason,
                    then: need,
                },
                readiness,
                Some(until),
            );
            d.clear_order = stale_order;
            return d;
        }
    }

    let reuse_key = spec.private_key().rotation_policy() == RotationPolicy::Never
        && cert.is_some_and(|c| c.key_matches && key_fits(&spec.private_key(), c.key_kind))
        && secret.is_some_and(|s| s.key_pem.is_some());
    let mut d = decision(
        Action::Issue {
            reason: need,
            reuse_key,
        },
        readiness,
        None,
    );
    d.clear_order = stale_order;
    d
}

fn permanent(
    reason: PermanentReason,
    message: String,
    readiness: Readiness,
    decision: impl Fn(Action, Readiness, Option<Timestamp>) -> Decision,
) -> Decision {
    // A certificate that still serves the spec stays Ready; otherwise the failure is the news.
    let ready = if readiness.ready {
        readiness
    } else {
        Readiness {
            ready: false,
            reason: reason.as_str(),
            message: message.clone(),
        }
    };
    decision(Action::PermanentFailure { reason, message }, ready, None)
}

fn conflict(name: &str, secret: &SecretState) -> Option<ConflictReason> {
    if !secret.cert_manager_annotations.is_empty() {
        return Some(ConflictReason::CertManager(
            secret.cert_manager_annotations.clone(),
        ));
    }
    match secret.certificate_name.as_deref() {
        Some(owner) if owner == name => None,
        Some(other) => Some(ConflictReason::OtherCertificate(other.to_owned())),
        None => Some(ConflictReason::NotOurs),
    }
}

/// Why a new certificate is needed, most serious first; `None` when the current one will do.
fn need(inputs: &Inputs<'_>, cert: Option<&CertInfo>) -> Option<IssueReason> {
    let spec = inputs.spec;
    let cert = match inputs.secret.map(|s| &s.certificate) {
        None | Some(Err(CertProblem::Missing)) => return Some(IssueReason::Missing),
        Some(Err(CertProblem::Unreadable(_))) => return Some(IssueReason::InvalidSecret),
        Some(Ok(_)) => cert?,
    };
    if !cert.key_matches {
        return Some(IssueReason::InvalidSecret);
    }
    if inputs.now >= cert.not_after {
        return Some(IssueReason::Expired);
    }
    let wanted: BTreeSet<String> = spec
        .dns_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let have: BTreeSet<String> = cert
        .dns_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    if wanted != have {
        return Some(IssueReason::DnsNamesChanged);
    }
    if !key_fits(&spec.private_key(), cert.key_kind) {
        return Some(IssueReason::KeyChanged);
    }
    if let Some(secret) = inputs.secret {
        let kind = spec.issuer_ref.kind().as_str();
        if secret.issuer_name.as_deref() != Some(spec.issuer_ref.name.as_str())
            || secret.issuer_kind.as_deref() != Some(kind)
        {
            return Some(IssueReason::IssuerChanged);
        }
    }
    let renew_at = renewal_time(
        cert.not_before,
        cert.not_after,
        spec.renew_before().ok().flatten(),
    );
    if inputs.now >= renew_at {
        return Some(IssueReason::Renewal);
    }
    let requested = inputs
        .status
        .and_then(|s| find(&s.conditions, ISSUING))
        .is_some_and(|c| c.status == "True" && c.reason == reason::MANUALLY_TRIGGERED);
    requested.then_some(IssueReason::Requested)
}

fn key_fits(spec: &PrivateKey, kind: KeyKind) -> bool {
    match (spec.algorithm(), kind) {
        (KeyAlgorithm::Ecdsa, KeyKind::Ecdsa { bits })
        | (KeyAlgorithm::Rsa, KeyKind::Rsa { bits }) => spec.size() == Some(bits),
        (KeyAlgorithm::Ed25519, KeyKind::Ed25519) => true,
        _ => false,
    }
}

fn readiness(secret: Option<&SecretState>, need: Option<IssueReason>, now: Timestamp) -> Readiness {
    let cert = secret.and_then(|s| s.certificate.as_ref().ok());
    match need {
        None => Readiness {
            ready: true,
            reason: reason::ISSUED,
            message: "the certificate is up to date and has not expired".into(),
        },
        Some(need) if need.still_ready() => Readiness {
            ready: true,
            reason: reason::ISSUED,
            message: format!(
                "the certificate is valid until {}; a new one is due ({})",
                cert.map_or_else(|| "?".into(), |c| c.not_after.to_string()),
                need.as_str()
            ),
        },
        Some(need) => Readiness {
            ready: false,
            reason: need.as_str(),
            message: match need {
                IssueReason::Missing => "the Secret holds no certificate yet".into(),
                IssueReason::InvalidSecret => match secret.map(|s| &s.certificate) {
                    Some(Err(CertProblem::Unreadable(why))) => {
                        format!("the Secret's certificate cannot be read: {why}")
                    }
                    _ => "the Secret's tls.key does not belong to its certificate".into(),
                },
                IssueReason::Expired => format!(
                    "the certificate expired at {} (now {now})",
                    cert.map_or_else(|| "?".into(), |c| c.not_after.to_string())
                ),
                IssueReason::DnsNamesChanged => format!(
                    "the certificate is for {}, not spec.dnsNames",
                    cert.map_or_else(String::new, |c| c.dns_names.join(", "))
                ),
                IssueReason::KeyChanged => {
                    "the certificate's key is not the one spec.privateKey asks for".into()
                }
                IssueReason::IssuerChanged | IssueReason::Renewal | IssueReason::Requested => {
                    String::new()
                }
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use switchyard_crds::{IssuerKind, IssuerRef, SelfSignedIssuer};

    use super::*;
    use crate::certs::secret::tests::self_signed;
    use crate::certs::secret::{CERTIFICATE_NAME, ISSUER_KIND, ISSUER_NAME};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn spec() -> CertificateSpec {
        CertificateSpec {
            secret_name: "shop-tls".into(),
            dns_names: vec!["shop.example.com".into(), "www.shop.example.com".into()],
            issuer_ref: IssuerRef {
                kind: Some(IssuerKind::ClusterIssuer),
                name: "letsencrypt".into(),
                group: None,
            },
            renew_before: None,
            private_key: None,
            secret_policy: None,
        }
    }

    const ACME: IssuerCapabilities = IssuerCapabilities { wildcards: false };

    /// A Secret of ours with a certificate valid 2026-01-01 .. 2026-04-01 (90 days).
    fn secret_with(names: &[&str], key: &PrivateKey) -> SecretState {
        let (crt, pem) = self_signed(
            names,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-04-01T00:00:00Z"),
            key,
        );
        let mut annotations = BTreeMap::new();
        annotations.insert(CERTIFICATE_NAME.to_string(), "shop".to_string());
        annotations.insert(ISSUER_NAME.to_string(), "letsencrypt".to_string());
        annotations.insert(ISSUER_KIND.to_string(), "ClusterIssuer".to_string());
        SecretState::from_parts(&annotations, Some(crt.as_bytes()), Some(pem.as_bytes()))
    }

    fn ours() -> SecretState {
        secret_with(
            &["shop.example.com", "www.shop.example.com"],
            &PrivateKey::default(),
        )
    }

    fn inputs<'a>(
        spec: &'a CertificateSpec,
        secret: Option<&'a SecretState>,
        status: Option<&'a CertificateStatus>,
        now: &str,
    ) -> Inputs<'a> {
        Inputs {
            name: "shop",
            generation: Some(2),
            spec,
            status,
            secret,
            issuer: ACME,
            in_flight: None,
            now: ts(now),
        }
    }

    fn issuing(reason: &str, generation: i64) -> Condition {
        Condition {
            type_: ISSUING.into(),
            status: "False".into(),
            reason: reason.into(),
            message: "urn:ietf:params:acme:error:caa: CAA record forbids issuance".into(),
            observed_generation: Some(generation),
            last_transition_time: Time(ts("2026-02-01T00:00:00Z")),
        }
    }

    fn failed(reason: &str, generation: i64, next: &str) -> CertificateStatus {
        CertificateStatus {
            conditions: vec![issuing(reason, generation)],
            failed_issuance_attempts: Some(2),
            next_retry_time: Some(Time(ts(next))),
            ..CertificateStatus::default()
        }
    }

    #[test]
    fn renewal_at_two_thirds_or_renew_before() {
        let (nb, na) = (ts("2026-01-01T00:00:00Z"), ts("2026-04-01T00:00:00Z"));
        assert_eq!(renewal_time(nb, na, None), ts("2026-03-02T00:00:00Z"));
        let week = Duration::from_secs(7 * 86400);
        assert_eq!(renewal_time(nb, na, Some(week)), ts("2026-03-25T00:00:00Z"));
        // renewBefore longer than the lifetime: two thirds again.
        let year = Duration::from_secs(365 * 86400);
        assert_eq!(renewal_time(nb, na, Some(year)), ts("2026-03-02T00:00:00Z"));
    }

    #[test]
    fn missing_secret_issues() {
        let spec = spec();
        let d = decide(&inputs(&spec, None, None, "2026-02-01T00:00:00Z"));
        assert_eq!(
            d.action,
            Action::Issue {
                reason: IssueReason::Missing,
                reuse_key: false
            }
        );
        assert!(!d.ready.ready);
        assert_eq!(d.ready.reason, "Missing");
        assert_eq!(d.times, None);
    }

    #[test]
    fn current_certificate_is_ready_until_renewal() {
        let spec = spec();
        let secret = ours();
        let d = decide(&inputs(&spec, Some(&secret), None, "2026-02-01T00:00:00Z"));
        assert_eq!(d.action, Action::Ready);
        assert!(d.ready.ready);
        assert_eq!(d.ready.reason, reason::ISSUED);
        let renewal = ts("2026-03-02T00:00:00Z");
        assert_eq!(d.times.map(|t| t.renewal_time), Some(renewal));
        assert_eq!(d.requeue_at, Some(renewal));

        // At the renewal time: issue, and stay Ready meanwhile.
        let d = decide(&inputs(&spec, Some(&secret), None, "2026-03-02T00:00:00Z"));
        assert_eq!(
            d.action,
            Action::Issue {
                reason: IssueReason::Renewal,
                reuse_key: false
            }
        );
        assert!(d.ready.ready);
        // Still requeued at expiry, so Ready flips then even if renewal keeps failing.
        assert_eq!(d.requeue_at, Some(ts("2026-04-01T00:00:00Z")));
    }

    #[test]
    fn ready_turns_false_at_expiry() {
        let spec = spec();
        let secret = ours();
        let d = decide(&inputs(&spec, Some(&secret), None, "2026-03-31T23:59:59Z"));
        assert!(d.ready.ready);
        let d = decide(&inputs(&spec, Some(&secret), None, "2026-04-01T00:00:00Z"));
        assert!(!d.ready.ready);
        assert_eq!(d.ready.reason, "Expired");
        assert!(matches!(
            d.action,
            Action::Issue {
                reason: IssueReason::Expired,
                ..
            }
        ));
    }

    #[test]
    fn names_key_and_issuer_changes() {
        let mut spec = spec();
        let secret = ours();
        let now = "2026-02-01T00:00:00Z";
        spec.dns_names.push("api.shop.example.com".into());
        let d = decide(&inputs(&spec, Some(&secret), None, now));
        assert!(matches!(
            d.action,
            Action::Issue {
                reason: IssueReason::DnsNamesChanged,
                ..
            }
        ));
        assert!(!d.ready.ready);

        let mut spec = self::spec();
        // The order of names does not matter.
        spec.dns_names = vec!["www.shop.example.com".into(), "shop.example.com".into()];
        assert_eq!(
            decide(&inputs(&spec, Some(&secret), None, now)).action,
            Action::Ready
        );

        spec.private_key = Some(PrivateKey {
            algorithm: Some(KeyAlgorithm::Ecdsa),
            size: Some(384),
            rotation_policy: None,
        });
        let d = decide(&inputs(&spec, Some(&secret), None, now));
        assert!(matches!(
            d.action,
            Action::Issue {
                reason: IssueReason::KeyChanged,
                ..
            }
        ));

        let mut spec = self::spec();
        spec.issuer_ref.name = "other".into();
        let d = decide(&inputs(&spec, Some(&secret), None, now));
        assert!(matches!(
            d.action,
            Action::Issue {
                reason: IssueReason::IssuerChanged,
                ..
            }
        ));
        assert!(d.ready.ready, "the old issuer's certificate still serves");
    }

    #[test]
    fn a_requested_renewal_issues_at_once_and_stays_ready() {
        let spec = spec();
        let secret = ours();
        let status = CertificateStatus {
            conditions: vec![Condition {
                status: "True".into(),
                reason: reason::MANUALLY_TRIGGERED.into(),
                ..issuing(reason::MANUALLY_TRIGGERED, 2)
            }],
            ..CertificateStatus::default()
        };
        let d = decide(&inputs(
            &spec,
            Some(&secret),
            Some(&status),
            "2026-02-01T00:00:00Z",
        ));
        assert_eq!(
            d.action,
            Action::Issue {
                reason: IssueReason::Requested,
                reuse_key: false
            }
        );
        assert!(d.ready.ready);
    }

    #[test]
    fn rotation_never_reuses_a_fitting_key() {
        let mut spec = spec();
        spec.private_key = Some(PrivateKey {
            rotation_policy: Some(RotationPolicy::Never),
            ..PrivateKey::default()
        });
        let secret = ours();
        let d = decide(&inputs(&spec, Some(&secret), None, "2026-03-10T00:00:00Z"));
        assert_eq!(
            d.action,
            Action::Issue {
                reason: IssueReason::Renewal,
                reuse_key: true
            }
        );
    }

    #[test]
    fn wildcards_fail_permanently_with_http01_only() {
        let mut spec = spec();
        spec.dns_names = vec!["*.shop.example.com".into()];
        let d = decide(&inputs(&spec, None, None, "2026-02-01T00:00:00Z"));
        assert!(matches!(
            d.action,
            Action::PermanentFailure {
                reason: PermanentReason::WildcardNeedsDns01,
                ..
            }
        ));
        assert_eq!(d.ready.reason, reason::WILDCARD_NEEDS_DNS01);
        assert_eq!(d.requeue_at, None);

        let mut i = inputs(&spec, None, None, "2026-02-01T00:00:00Z");
        i.issuer = IssuerCapabilities::of(&IssuerSpec {
            acme: None,
            self_signed: Some(SelfSignedIssuer {}),
        });
        assert!(matches!(decide(&i).action, Action::Issue { .. }));
    }

    #[test]
    fn unsupported_keys_and_invalid_specs_fail_permanently() {
        let mut spec = spec();
        spec.private_key = Some(PrivateKey {
            algorithm: Some(KeyAlgorithm::Rsa),
            size: None,
            rotation_policy: None,
        });
        let d = decide(&inputs(&spec, None, None, "2026-02-01T00:00:00Z"));
        assert!(matches!(
            d.action,
            Action::PermanentFailure {
                reason: PermanentReason::KeyAlgorithmUnsupported,
                ..
            }
        ));
        let mut spec = self::spec();
        spec.renew_before = Some("0s".into());
        let d = decide(&inputs(&spec, None, None, "2026-02-01T00:00:00Z"));
        assert!(matches!(
            d.action,
            Action::PermanentFailure {
                reason: PermanentReason::InvalidSpec,
                ..
            }
        ));
    }

    #[test]
    fn secrets_of_others_are_conflicts() {
        let spec = spec();
        let now = "2026-02-01T00:00:00Z";
        let mut other = ours();
        other.certificate_name = Some("blog".into());
        let d = decide(&inputs(&spec, Some(&other), None, now));
        assert_eq!(
            d.action,
            Action::Conflict(ConflictReason::OtherCertificate("blog".into()))
        );
        assert_eq!(d.ready.reason, reason::SECRET_CONFLICT);
        assert!(!d.ready.ready);

        let mut cm = ours();
        cm.cert_manager_annotations = vec!["cert-manager.io/certificate-name".into()];
        assert!(matches!(
            decide(&inputs(&spec, Some(&cm), None, now)).action,
            Action::Conflict(ConflictReason::CertManager(_))
        ));

        let mut foreign = ours();
        foreign.certificate_name = None;
        assert_eq!(
            decide(&inputs(&spec, Some(&foreign), None, now)).action,
            Action::Conflict(ConflictReason::NotOurs)
        );
    }

    #[test]
    fn one_order_at_a_time() {
        let spec = spec();
        let order = InFlightOrder {
            url: "https://ca.test/order/7".into(),
            generation: Some(2),
        };
        let mut i = inputs(&spec, None, None, "2026-02-01T00:00:00Z");
        i.in_flight = Some(&order);
        assert_eq!(
            decide(&i).action,
            Action::Continue {
                order_url: order.url.clone()
            }
        );
        // An order for an older generation is dropped, and a new one started.
        let old = InFlightOrder {
            generation: Some(1),
            ..order.clone()
        };
        i.in_flight = Some(&old);
        let d = decide(&i);
        assert!(matches!(d.action, Action::Issue { .. }));
        assert!(d.clear_order);
        // Nothing to do any more: forget the order.
        let secret = ours();
        let mut i = inputs(&spec, Some(&secret), None, "2026-02-01T00:00:00Z");
        i.in_flight = Some(&order);
        let d = decide(&i);
        assert_eq!(d.action, Action::Ready);
        assert!(d.clear_order);
    }

    #[test]
    fn backoff_and_rate_limits_wait() {
        let spec = spec();
        let now = "2026-02-01T00:00:00Z";
        let status = failed(reason::FAILED, 2, "2026-02-01T00:20:00Z");
        let d = decide(&inputs(&spec, None, Some(&status), now));
        assert_eq!(
            d.action,
            Action::Wait {
                until: ts("2026-02-01T00:20:00Z"),
                reason: WaitReason::Backoff,
                then: IssueReason::Missing
            }
        );
        assert_eq!(d.requeue_at, Some(ts("2026-02-01T00:20:00Z")));
        // No certificate to serve: Ready keeps the failure and its CA detail.
        assert!(!d.ready.ready);
        assert_eq!(d.ready.reason, reason::FAILED);
        assert!(d.ready.message.contains("CAA"), "{}", d.ready.message);
        // After the wait: issue.
        let d = decide(&inputs(&spec, None, Some(&status), "2026-02-01T00:20:00Z"));
        assert!(matches!(d.action, Action::Issue { .. }));
        // A spec change skips our own backoff…
        let old = failed(reason::FAILED, 1, "2026-02-01T00:20:00Z");
        assert!(matches!(
            decide(&inputs(&spec, None, Some(&old), now)).action,
            Action::Issue { .. }
        ));
        // …but not the CA's rate limit.
        let limited = failed(reason::RATE_LIMITED, 1, "2026-02-01T05:00:00Z");
        assert!(matches!(
            decide(&inputs(&spec, None, Some(&limited), now)).action,
            Action::Wait {
                reason: WaitReason::RateLimited,
                ..
            }
        ));
    }

    #[test]
    fn rejection_sticks_until_the_spec_changes() {
        let spec = spec();
        let now = "2026-02-01T00:00:00Z";
        let status = CertificateStatus {
            conditions: vec![issuing(reason::REJECTED, 2)],
            failed_issuance_attempts: Some(1),
            ..CertificateStatus::default()
        };
        let d = decide(&inputs(&spec, None, Some(&status), now));
        assert!(matches!(
            d.action,
            Action::PermanentFailure {
                reason: PermanentReason::Rejected,
                ..
            }
        ));
        assert_eq!(d.ready.reason, reason::REJECTED);
        assert!(d.ready.message.contains("CAA"));
        assert_eq!(d.requeue_at, None);
        // Generation 3 is a new spec: try again.
        let mut i = inputs(&spec, None, Some(&status), now);
        i.generation = Some(3);
        assert!(matches!(decide(&i).action, Action::Issue { .. }));
        // A rejected renewal leaves the current certificate Ready until it expires.
        let secret = ours();
        let d = decide(&inputs(
            &spec,
            Some(&secret),
            Some(&status),
            "2026-03-10T00:00:00Z",
        ));
        assert!(matches!(d.action, Action::PermanentFailure { .. }));
        assert!(d.ready.ready);
        assert_eq!(d.requeue_at, Some(ts("2026-04-01T00:00:00Z")));
    }

    #[test]
    fn unreadable_or_mismatched_secrets_are_reissued() {
        let spec = spec();
        let mut annotations = BTreeMap::new();
        annotations.insert(CERTIFICATE_NAME.to_string(), "shop".to_string());
        let junk = SecretState::from_parts(&annotations, Some(b"junk"), None);
        let d = decide(&inputs(&spec, Some(&junk), None, "2026-02-01T00:00:00Z"));
        assert!(matches!(
            d.action,
            Action::Issue {
                reason: IssueReason::InvalidSecret,
                ..
            }
        ));
        assert!(!d.ready.ready);

        let mut mismatched = ours();
        if let Ok(c) = mismatched.certificate.as_mut() {
            c.key_matches = false;
        }
        let d = decide(&inputs(
            &spec,
            Some(&mismatched),
            None,
            "2026-02-01T00:00:00Z",
        ));
        assert!(matches!(
            d.action,
            Action::Issue {
                reason: IssueReason::InvalidSecret,
                ..
            }
        ));
    }
}
