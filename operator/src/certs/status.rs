//! How a Certificate's status moves: from a [`Decision`], when an order is created, while its
//! challenges are presented, when it fails and when it is issued. Pure (`now` is an input), so
//! the controller only reads, calls these and writes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use switchyard_crds::condition::{ISSUING, READY};
use switchyard_crds::{AuthorizationState, AuthorizationStatus, CertificateStatus, OrderReference};

use super::classify::{FailureClass, next_attempt};
use super::decide::{Action, Decision, reason, renewal_time};
use super::errors::Classified;
use super::secret::CertInfo;
use crate::controllers::conditions::{condition, set};

fn status_text(ready: bool) -> &'static str {
    if ready { "True" } else { "False" }
}

/// Applies what the decision says about the present: Ready, the certificate's times, a stale
/// order forgotten, and the Issuing condition of a final action (ready, refused, stopped).
/// Returns whether a condition changed (an Event is due).
pub fn apply_decision(
    status: &mut CertificateStatus,
    decision: &Decision,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let ready = &decision.ready;
    let mut changed = set(
        &mut status.conditions,
        condition(
            READY,
            status_text(ready.ready),
            ready.reason,
            ready.message.clone(),
            generation,
            now,
        ),
    );
    match decision.times {
        Some(t) => {
            status.not_before = Some(Time(t.not_before));
            status.not_after = Some(Time(t.not_after));
            status.renewal_time = Some(Time(t.renewal_time));
        }
        None => {
            status.not_before = None;
            status.not_after = None;
            status.renewal_time = None;
        }
    }
    if decision.clear_order {
        status.order = None;
    }
    let issuing = match &decision.action {
        Action::Ready => Some((
            reason::ISSUED,
            "no order in flight: the certificate is up to date".to_string(),
        )),
        Action::PermanentFailure { reason, message } => Some((reason.as_str(), message.clone())),
        Action::Conflict(conflict) => Some((reason::SECRET_CONFLICT, conflict.to_string())),
        // A wait keeps the failure that caused it; issuing and continuing are the shell's.
        Action::Wait { .. } | Action::Issue { .. } | Action::Continue { .. } => None,
    };
    if let Some((reason, message)) = issuing {
        if matches!(decision.action, Action::PermanentFailure { .. }) {
            status.next_retry_time = None;
            for a in &mut status.authorizations {
                a.next_retry_time = None;
            }
        }
        changed |= set(
            &mut status.conditions,
            condition(ISSUING, "False", reason, message, generation, now),
        );
    }
    changed
}

/// A new order was created for `dns_names`: record it (before anything else is done with it)
/// and say so in Issuing.
pub fn order_created(
    status: &mut CertificateStatus,
    url: &str,
    dns_names: &[String],
    generation: Option<i64>,
    now: Timestamp,
) {
    status.order = Some(OrderReference {
        url: url.to_string(),
        generation,
        created_time: Some(Time(now)),
    });
    status.authorizations = dns_names
        .iter()
        .map(|name| AuthorizationStatus {
            dns_name: name.clone(),
            state: AuthorizationState::Pending,
            error_type: None,
            error_detail: None,
            last_attempt_time: Some(Time(now)),
            next_retry_time: None,
        })
        .collect();
    set(
        &mut status.conditions,
        condition(
            ISSUING,
            "True",
            reason::ORDER_PENDING,
            format!("ACME order {url} created for {}", dns_names.join(", ")),
            generation,
            now,
        ),
    );
}

/// The order is in flight; `message` says what it waits for. Returns whether that is news.
pub fn in_progress(
    status: &mut CertificateStatus,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    set(
        &mut status.conditions,
        condition(
            ISSUING,
            "True",
            reason::ORDER_PENDING,
            message,
            generation,
            now,
        ),
    )
}

/// An issuance attempt failed. Counts it, computes the next attempt (backoff, the CA's
/// Retry-After, or none for a permanent failure), forgets the order and puts the CA's word
/// into Issuing — and into Ready when no usable certificate is in the Secret
/// (`still_ready` false). `authorizations` are the CA's view of each name, when known.
/// Returns the next attempt's time.
pub fn record_failure(
    status: &mut CertificateStatus,
    failure: &Classified,
    authorizations: Option<Vec<AuthorizationStatus>>,
    still_ready: bool,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Timestamp> {
    let attempts = status
        .failed_issuance_attempts
        .unwrap_or(0)
        .saturating_add(1);
    let next = next_attempt(failure.class, failure.retry_after, attempts, now).map(|(t, _)| t);
    let reason = match failure.class {
        FailureClass::RateLimited => reason::RATE_LIMITED,
        FailureClass::Permanent => reason::REJECTED,
        FailureClass::Transient => reason::FAILED,
    };
    let message = match next {
        Some(at) => format!("{}; next attempt at {at}", failure.message),
        None => format!(
            "{}; no further attempt until the Certificate's spec changes",
            failure.message
        ),
    };
    status.order = None;
    status.failed_issuance_attempts = Some(attempts);
    status.last_failure_time = Some(Time(now));
    status.next_retry_time = next.map(Time);
    if let Some(fresh) = authorizations {
        let previous = std::mem::take(&mut status.authorizations);
        status.authorizations = fresh
            .into_iter()
            .map(|mut a| {
                a.last_attempt_time = previous
                    .iter()
                    .find(|p| p.dns_name == a.dns_name)
                    .and_then(|p| p.last_attempt_time.clone())
                    .or(Some(Time(now)));
                a
            })
            .collect();
    }
    for a in &mut status.authorizations {
        a.next_retry_time = match a.state {
            AuthorizationState::Valid => None,
            _ => next.map(Time),
        };
    }
    set(
        &mut status.conditions,
        condition(ISSUING, "False", reason, message.clone(), generation, now),
    );
    if !still_ready {
        set(
            &mut status.conditions,
            condition(READY, "False", reason, message, generation, now),
        );
    }
    next
}

/// A certificate was issued and written: Ready, its times, no order, no failures.
pub fn record_issued(
    status: &mut CertificateStatus,
    info: &CertInfo,
    renew_before: Option<std::time::Duration>,
    generation: Option<i64>,
    now: Timestamp,
) -> Timestamp {
    let renewal = renewal_time(info.not_before, info.not_after, renew_before);
    status.not_before = Some(Time(info.not_before));
    status.not_after = Some(Time(info.not_after));
    status.renewal_time = Some(Time(renewal));
    status.order = None;
    status.failed_issuance_attempts = None;
    status.last_failure_time = None;
    status.next_retry_time = None;
    for a in &mut status.authorizations {
        a.state = AuthorizationState::Valid;
        a.error_type = None;
        a.error_detail = None;
        a.next_retry_time = None;
    }
    let message = format!(
        "issued for {}, valid until {}; renewal at {renewal}",
        info.dns_names.join(", "),
        info.not_after
    );
    set(
        &mut status.conditions,
        condition(
            READY,
            "True",
            reason::ISSUED,
            message.clone(),
            generation,
            now,
        ),
    );
    set(
        &mut status.conditions,
        condition(ISSUING, "False", reason::ISSUED, message, generation, now),
    );
    renewal
}

#[cfg(test)]
mod tests {
    use switchyard_crds::condition::find;

    use super::*;
    use crate::certs::decide::{CertTimes, PermanentReason, Readiness};
    use crate::certs::secret::KeyKind;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn names() -> Vec<String> {
        vec!["a.example.com".into(), "b.example.com".into()]
    }

    fn failure(class: FailureClass, retry_after: Option<Timestamp>) -> Classified {
        Classified {
            class,
            retry_after,
            problem_type: Some("urn:ietf:params:acme:error:unauthorized".into()),
            message: "the order is invalid: b.example.com: 404".into(),
        }
    }

    fn reason_of(status: &CertificateStatus, type_: &str) -> Option<(String, String)> {
        find(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
    }

    #[test]
    fn an_order_is_recorded_then_forgotten_on_failure_with_a_retry_time() {
        let now = ts("2026-02-01T00:00:00Z");
        let mut status = CertificateStatus::default();
        order_created(&mut status, "https://ca/order/1", &names(), Some(3), now);
        assert_eq!(
            status
                .order
                .as_ref()
                .map(|o| (o.url.as_str(), o.generation)),
            Some(("https://ca/order/1", Some(3)))
        );
        assert_eq!(
            reason_of(&status, ISSUING),
            Some(("True".into(), reason::ORDER_PENDING.into()))
        );
        assert_eq!(status.authorizations.len(), 2);

        let mut invalid = status.authorizations.clone();
        invalid[0].state = AuthorizationState::Valid;
        invalid[1].state = AuthorizationState::Invalid;
        invalid[1].error_type = Some("urn:ietf:params:acme:error:unauthorized".into());
        invalid[1].last_attempt_time = None;
        let next = record_failure(
            &mut status,
            &failure(FailureClass::Transient, None),
            Some(invalid),
            false,
            Some(3),
            now,
        );
        assert_eq!(next, Some(ts("2026-02-01T00:05:00Z")));
        assert_eq!(status.order, None);
        assert_eq!(status.failed_issuance_attempts, Some(1));
        assert_eq!(status.last_failure_time, Some(Time(now)));
        assert_eq!(status.next_retry_time, next.map(Time));
        assert_eq!(status.authorizations[0].next_retry_time, None);
        assert_eq!(status.authorizations[1].next_retry_time, next.map(Time));
        // The time the name was presented survives the CA's fresh view.
        assert_eq!(status.authorizations[1].last_attempt_time, Some(Time(now)));
        let ready = find(&status.conditions, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Failed")
        );
        assert!(
            ready.message.contains("404") && ready.message.contains("next attempt at"),
            "{}",
            ready.message
        );

        // The second failure in a row waits twice as long.
        let next = record_failure(
            &mut status,
            &failure(FailureClass::Transient, None),
            None,
            false,
            Some(3),
            now,
        );
        assert_eq!(next, Some(ts("2026-02-01T00:10:00Z")));
        assert_eq!(status.failed_issuance_attempts, Some(2));
    }

    #[test]
    fn rate_limits_and_rejections() {
        let now = ts("2026-02-01T00:00:00Z");
        let later = ts("2026-02-01T03:00:00Z");
        let mut status = CertificateStatus::default();
        let next = record_failure(
            &mut status,
            &failure(FailureClass::RateLimited, Some(later)),
            None,
            true,
            Some(1),
            now,
        );
        assert_eq!(next, Some(later));
        assert_eq!(
            reason_of(&status, ISSUING),
            Some(("False".into(), reason::RATE_LIMITED.into()))
        );
        // A certificate still serves: Ready is not touched.
        assert_eq!(find(&status.conditions, READY), None);

        let mut status = CertificateStatus::default();
        let next = record_failure(
            &mut status,
            &failure(FailureClass::Permanent, None),
            None,
            false,
            Some(1),
            now,
        );
        assert_eq!(next, None);
        assert_eq!(status.next_retry_time, None);
        let ready = find(&status.conditions, READY).expect("Ready");
        assert_eq!(ready.reason, reason::REJECTED);
        assert!(
            ready
                .message
                .contains("until the Certificate's spec changes")
        );
    }

    #[test]
    fn issuance_clears_failures_and_sets_times() {
        let now = ts("2026-02-01T00:00:00Z");
        let mut status = CertificateStatus::default();
        order_created(&mut status, "https://ca/order/1", &names(), Some(1), now);
        record_failure(
            &mut status,
            &failure(FailureClass::Transient, None),
            None,
            false,
            Some(1),
            now,
        );
        let info = CertInfo {
            not_before: ts("2026-02-01T00:00:00Z"),
            not_after: ts("2026-05-02T00:00:00Z"),
            dns_names: names(),
            key_kind: KeyKind::Ecdsa { bits: 256 },
            key_matches: true,
        };
        let renewal = record_issued(&mut status, &info, None, Some(1), now);
        assert_eq!(renewal, ts("2026-04-02T00:00:00Z"));
        assert_eq!(status.renewal_time, Some(Time(renewal)));
        assert_eq!(status.failed_issuance_attempts, None);
        assert_eq!(status.next_retry_time, None);
        assert_eq!(status.last_failure_time, None);
        assert!(
            status
                .authorizations
                .iter()
                .all(|a| a.state == AuthorizationState::Valid && a.next_retry_time.is_none())
        );
        assert_eq!(
            reason_of(&status, READY),
            Some(("True".into(), reason::ISSUED.into()))
        );
        assert_eq!(
            reason_of(&status, ISSUING),
            Some(("False".into(), reason::ISSUED.into()))
        );
    }

    #[test]
    fn decisions_set_ready_times_and_final_issuing() {
        let now = ts("2026-02-01T00:00:00Z");
        let mut status = CertificateStatus {
            next_retry_time: Some(Time(now)),
            order: Some(OrderReference {
                url: "https://ca/order/1".into(),
                generation: Some(1),
                created_time: None,
            }),
            ..CertificateStatus::default()
        };
        let decision = Decision {
            action: Action::PermanentFailure {
                reason: PermanentReason::WildcardNeedsDns01,
                message: "*.example.com is a wildcard".into(),
            },
            ready: Readiness {
                ready: false,
                reason: reason::WILDCARD_NEEDS_DNS01,
                message: "*.example.com is a wildcard".into(),
            },
            times: None,
            requeue_at: None,
            clear_order: true,
        };
        assert!(apply_decision(&mut status, &decision, Some(2), now));
        assert_eq!(status.order, None);
        assert_eq!(status.next_retry_time, None);
        assert_eq!(
            reason_of(&status, ISSUING),
            Some(("False".into(), reason::WILDCARD_NEEDS_DNS01.into()))
        );
        // The same decision again is no news.
        assert!(!apply_decision(&mut status, &decision, Some(2), now));

        let times = CertTimes {
            not_before: ts("2026-01-01T00:00:00Z"),
            not_after: ts("2026-04-01T00:00:00Z"),
            renewal_time: ts("2026-03-02T00:00:00Z"),
        };
        let ready = Decision {
            action: Action::Ready,
            ready: Readiness {
                ready: true,
                reason: reason::ISSUED,
                message: "up to date".into(),
            },
            times: Some(times),
            requeue_at: Some(times.renewal_time),
            clear_order: false,
        };
        assert!(apply_decision(&mut status, &ready, Some(2), now));
        assert_eq!(status.renewal_time, Some(Time(times.renewal_time)));
        assert_eq!(
            reason_of(&status, READY),
            Some(("True".into(), reason::ISSUED.into()))
        );
    }
}
