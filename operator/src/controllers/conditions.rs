//! Setting a `metav1.Condition` the way Kubernetes expects: lastTransitionTime moves only when
//! the status flips, and an Event is due only on a change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Puts `new` into `conditions` (replacing the one of its type) and says whether anything a
/// user would notice changed (status, reason or message).
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            let changed =
                old.status != new.status || old.reason != new.reason || old.message != new.message;
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// A condition observed at `now`; `status` is "True", "False" or "Unknown".
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut conditions = Vec::new();
        let t0 = at("2026-11-22T10:00:00Z");
        let t1 = at("2026-11-22T11:00:00Z");
        assert!(set(
            &mut conditions,
            condition("Ready", "False", "Pending", "", Some(1), t0)
        ));
        // Same status, new reason: a change, but the transition time stays.
        assert!(set(
            &mut conditions,
            condition("Ready", "False", "Failed", "x", Some(2), t1)
        ));
        assert_eq!(conditions[0].last_transition_time, Time(t0));
        assert_eq!(conditions[0].observed_generation, Some(2));
        // Nothing new: no change to report.
        assert!(!set(
            &mut conditions,
            condition("Ready", "False", "Failed", "x", Some(2), t1)
        ));
        // A flip moves the time.
        assert!(set(
            &mut conditions,
            condition("Ready", "True", "Ok", "", Some(2), t1)
        ));
        assert_eq!(conditions[0].last_transition_time, Time(t1));
        assert_eq!(conditions.len(), 1);
    }
}
