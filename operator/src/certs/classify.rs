//! What a failed issuance means for the next attempt: rate limited (wait as the CA says),
//! permanent (stop until the spec changes), or transient (exponential backoff). Pure.

use std::time::Duration;

use instant_acme::Problem;
use jiff::{SignedDuration, Timestamp};

/// ACME error types (RFC 8555 section 6.7) this module names.
pub mod problem {
    pub const PREFIX: &str = "urn:ietf:params:acme:error:";
    pub const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";
    pub const COMPOUND: &str = "urn:ietf:params:acme:error:compound";
}

/// Error types after which another attempt for the same spec would fail the same way.
const PERMANENT: &[&str] = &[
    "rejectedIdentifier",
    "malformed",
    "caa",
    "unsupportedIdentifier",
    "badCSR",
    "badSignatureAlgorithm",
    "invalidContact",
    "unsupportedContact",
    "externalAccountRequired",
    "userActionRequired",
];

/// How a failure affects the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The CA's rate limit: wait for its Retry-After.
    RateLimited,
    /// Retrying the same spec cannot succeed: stop until the spec changes.
    Permanent,
    /// Anything else (network, CA errors, timeouts): back off and try again.
    Transient,
}

/// Why a Certificate waits before its next issuance attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitReason {
    /// Exponential backoff after transient failures.
    Backoff,
    /// The CA asked us to wait (Retry-After on a rate limit).
    RateLimited,
}

impl WaitReason {
    /// The condition reason for this wait.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Backoff => "Backoff",
            WaitReason::RateLimited => "RateLimited",
        }
    }
}

/// The class of one ACME error type, given with or without the `urn:ietf:params:acme:error:`
/// prefix. Unknown types are transient: retrying is the safe default, the backoff bounds it.
pub fn classify_type(problem_type: &str) -> FailureClass {
    let short = problem_type
        .strip_prefix(problem::PREFIX)
        .unwrap_or(problem_type);
    if short == "rateLimited" {
        FailureClass::RateLimited
    } else if PERMANENT.contains(&short) {
        FailureClass::Permanent
    } else {
        FailureClass::Transient
    }
}

/// The class of a whole problem document. A compound problem (or one with subproblems) is
/// rate limited if any part is, else transient if any part is, else permanent: one name that
/// might pass next time is worth another attempt.
pub fn classify_problem(problem: &Problem) -> FailureClass {
    let top = problem.r#type.as_deref().map(classify_type);
    if problem.subproblems.is_empty() || top == Some(FailureClass::RateLimited) {
        return match (top, problem.status) {
            (_, Some(429)) => FailureClass::RateLimited,
            (Some(class), _) => class,
            (None, _) => FailureClass::Transient,
        };
    }
    worst(problem.subproblems.iter().map(|sub| {
        sub.r#type
            .as_deref()
            .map_or(FailureClass::Transient, classify_type)
    }))
}

/// Combines the classes of several parts (names of one order): rate limited beats transient
/// beats permanent; no parts at all is transient.
pub fn worst(classes: impl IntoIterator<Item = FailureClass>) -> FailureClass {
    let mut result: Option<FailureClass> = None;
    for class in classes {
        result = Some(match (result, class) {
            (Some(FailureClass::RateLimited), _) | (_, FailureClass::RateLimited) => {
                FailureClass::RateLimited
            }
            (Some(FailureClass::Transient), _) | (_, FailureClass::Transient) => {
                FailureClass::Transient
            }
            _ => FailureClass::Permanent,
        });
    }
    result.unwrap_or(FailureClass::Transient)
}

/// The first wait after a transient failure.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(5 * 60);
/// The longest wait after transient failures.
pub const BACKOFF_CAP: Duration = Duration::from_secs(6 * 3600);
/// The shortest wait after any failure, even when the CA says "retry now": no order loops.
pub const MIN_WAIT: Duration = Duration::from_secs(60);

/// The wait after the `attempts`-th failure in a row (`status.failedIssuanceAttempts` including
/// this one): 5m, 10m, 20m, … doubling, capped at 6h. Deterministic, so the retry time shown in
/// status is the one that happens.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    BACKOFF_INITIAL
        .checked_mul(1 << doublings)
        .map_or(BACKOFF_CAP, |d| d.min(BACKOFF_CAP))
}

/// When to try again, and why then; `None` for a permanent failure (wait for a spec change).
pub fn next_attempt(
    class: FailureClass,
    retry_after: Option<Timestamp>,
    attempts: u32,
    now: Timestamp,
) -> Option<(Timestamp, WaitReason)> {
    // Only calendar units can make Timestamp arithmetic fail; a plain duration saturates.
    let after = |d: Duration| {
        now.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX)
    };
    match class {
        FailureClass::Permanent => None,
        FailureClass::Transient => Some((after(backoff(attempts)), WaitReason::Backoff)),
        FailureClass::RateLimited => {
            // The CA's word wins over our formula, in both directions, but never below MIN_WAIT.
            let at = retry_after.unwrap_or_else(|| after(backoff(attempts)));
            Some((at.max(after(MIN_WAIT)), WaitReason::RateLimited))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: serde_json::Value) -> Problem {
        serde_json::from_value(json).expect("problem")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn error_types() {
        use FailureClass::*;
        for (t, class) in [
            ("urn:ietf:params:acme:error:rateLimited", RateLimited),
            ("urn:ietf:params:acme:error:rejectedIdentifier", Permanent),
            ("urn:ietf:params:acme:error:malformed", Permanent),
            ("urn:ietf:params:acme:error:caa", Permanent),
            // A failed HTTP-01 check is most often a route not in place yet: back off, retry.
            ("urn:ietf:params:acme:error:unauthorized", Transient),
            ("urn:ietf:params:acme:error:badCSR", Permanent),
            ("urn:ietf:params:acme:error:serverInternal", Transient),
            ("urn:ietf:params:acme:error:connection", Transient),
            ("urn:ietf:params:acme:error:dns", Transient),
            ("urn:ietf:params:acme:error:badNonce", Transient),
            ("urn:ietf:params:acme:error:somethingNew", Transient),
            ("unauthorized", Transient),
            ("about:blank", Transient),
        ] {
            assert_eq!(classify_type(t), class, "{t}");
        }
    }

    #[test]
    fn problems_with_status_and_subproblems() {
        // A 429 is a rate limit whatever its type says.
        let p = problem(serde_json::json!({"type": "about:blank", "status": 429}));
        assert_eq!(classify_problem(&p), FailureClass::RateLimited);
        let p = problem(serde_json::json!({"status": 500}));
        assert_eq!(classify_problem(&p), FailureClass::Transient);

        let compound = |a: &str, b: &str| {
            problem(serde_json::json!({
                "type": problem::COMPOUND,
                "subproblems": [
                    {"type": a, "identifier": {"type": "dns", "value": "a.example"}},
                    {"type": b, "identifier": {"type": "dns", "value": "b.example"}},
                ],
            }))
        };
        let e = |s: &str| format!("{}{s}", problem::PREFIX);
        assert_eq!(
            classify_problem(&compound(&e("caa"), &e("rejectedIdentifier"))),
            FailureClass::Permanent
        );
        assert_eq!(
            classify_problem(&compound(&e("caa"), &e("dns"))),
            FailureClass::Transient
        );
        assert_eq!(
            classify_problem(&compound(&e("dns"), &e("rateLimited"))),
            FailureClass::RateLimited
        );
        assert_eq!(worst([]), FailureClass::Transient);
    }

    #[test]
    fn backoff_doubles_from_five_minutes_to_six_hours() {
        let minutes: Vec<u64> = (0..=9).map(|n| backoff(n).as_secs() / 60).collect();
        assert_eq!(minutes, [5, 5, 10, 20, 40, 80, 160, 320, 360, 360]);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn next_attempt_honours_retry_after() {
        let now = ts("2026-11-22T21:00:00Z");
        assert_eq!(
            next_attempt(FailureClass::Transient, None, 3, now),
            Some((ts("2026-11-22T21:20:00Z"), WaitReason::Backoff))
        );
        // Retry-After wins even when it is far beyond the backoff cap…
        let later = ts("2026-11-25T00:00:00Z");
        assert_eq!(
            next_attempt(FailureClass::RateLimited, Some(later), 1, now),
            Some((later, WaitReason::RateLimited))
        );
        // …but never below a minute, and the formula stands in when it is missing.
        assert_eq!(
            next_attempt(FailureClass::RateLimited, Some(now), 1, now),
            Some((ts("2026-11-22T21:01:00Z"), WaitReason::RateLimited))
        );
        assert_eq!(
            next_attempt(FailureClass::RateLimited, None, 2, now),
            Some((ts("2026-11-22T21:10:00Z"), WaitReason::RateLimited))
        );
        assert_eq!(next_attempt(FailureClass::Permanent, None, 1, now), None);
    }
}
