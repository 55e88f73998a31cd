//! Problems become Warning Events on the Ingress they name, once per appearance: a problem that
//! persists across recompiles is not published again; one that goes away and comes back is.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::model::{Problem, Severity};

/// `reportingController` of our Events.
pub const REPORTING_CONTROLLER: &str = "switchyard.dev/ingress-controller";
/// events.k8s.io requires an action; ours is always the same one.
const ACTION: &str = "Route";
/// The API rejects longer reasons and notes.
const MAX_REASON: usize = 128;
const MAX_NOTE: usize = 1024;

/// The Event reason of a problem, or `None` when it is not published as an Event: only faults
/// (not the Info lines that explain a decision) of Ingresses and the controller ConfigMap.
pub fn event_reason(problem: &Problem) -> Option<String> {
    let published_kind = matches!(problem.kind, "Ingress" | "ConfigMap");
    if !published_kind || problem.severity == Severity::Info {
        return None;
    }
    // Compile's reasons are CamelCase already; this keeps a stray character from making the
    // API reject the Event.
    let reason: String = problem
        .reason
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(MAX_REASON)
        .collect();
    Some(if reason.is_empty() {
        "Problem".to_owned()
    } else {
        reason
    })
}

/// The problems already published, so that only new ones are.
#[derive(Debug, Default)]
pub struct Ledger {
    reported: HashSet<Problem>,
}

impl Ledger {
    /// Forgets the problems that went away (so they are published again if they come back) and
    /// returns the publishable ones not published yet.
    pub fn fresh<'a>(&mut self, problems: &'a [Problem]) -> Vec<&'a Problem> {
        let publishable: Vec<&Problem> = problems
            .iter()
            .filter(|p| event_reason(p).is_some())
            .collect();
        let present: HashSet<&Problem> = publishable.iter().copied().collect();
        self.reported.retain(|p| present.contains(p));
        let mut seen = HashSet::new();
        publishable
            .into_iter()
            .filter(|p| !self.reported.contains(*p) && seen.insert(*p))
            .collect()
    }

    /// Records a published problem. Failed ones are not recorded, so they are tried again.
    pub fn published(&mut self, problem: &Problem) {
        self.reported.insert(problem.clone());
    }

    /// On losing leadership: a later leader term publishes what is current then.
    pub fn clear(&mut self) {
        self.reported.clear();
    }
}

/// The Event a problem becomes, `None` when it becomes none.
pub fn event(problem: &Problem) -> Option<Event> {
    let reason = event_reason(problem)?;
    Some(Event {
        type_: EventType::Warning,
        reason,
        note: Some(truncate(&problem.message, MAX_NOTE)),
        action: ACTION.to_owned(),
        secondary: None,
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Publishes through events.k8s.io.
#[derive(Clone)]
pub struct Publisher {
    client: kube::Client,
    reporter: Reporter,
}

impl Publisher {
    pub fn new(client: kube::Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.to_owned(),
            instance: Some(instance.to_owned()).filter(|i| !i.is_empty()),
        };
        Self { client, reporter }
    }

    pub async fn publish(
        &self,
        problem: &Problem,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let Some(event) = event(problem) else {
            return Ok(());
        };
        // A Recorder folds Events with the same reason on the same object into one series and
        // keeps the first note, which would hide a second, different problem (two missing
        // Services). The Ledger already publishes each problem once, so each gets its own.
        Recorder::new(self.client.clone(), self.reporter.clone())
            .publish(&event, regarding)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKey;

    fn problem(kind: &'static str, severity: Severity, reason: &'static str) -> Problem {
        Problem {
            kind,
            object: ObjectKey::new("ns", "shop"),
            severity,
            reason,
            message: format!("{reason} happened"),
        }
    }

    #[test]
    fn ingress_faults_map_to_warning_events_with_their_reason() {
        for reason in [
            "ServiceNotFound",
            "NoEndpoints",
            "Conflict",
            "InvalidPath",
            "UnsupportedBackend",
            "MissingSecret",
        ] {
            for severity in [Severity::Warning, Severity::Error] {
                let p = problem("Ingress", severity, reason);
                assert_eq!(event_reason(&p).as_deref(), Some(reason));
                let e = event(&p).expect("an event");
                assert_eq!(e.type_, EventType::Warning);
                assert_eq!(e.note.as_deref(), Some(p.message.as_str()));
            }
        }
    }

    #[test]
    fn info_and_other_kinds_are_not_events() {
        assert_eq!(
            event_reason(&problem("Ingress", Severity::Info, "NotOurClass")),
            None
        );
        assert_eq!(
            event_reason(&problem("Secret", Severity::Warning, "MissingSecret")),
            None
        );
        assert_eq!(
            event_reason(&problem("Ingress", Severity::Error, "Bad-Thing!")).as_deref(),
            Some("BadThing")
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let s = "é".repeat(600);
        let cut = truncate(&s, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE && s.starts_with(&cut));
    }

    #[test]
    fn a_problem_is_published_when_it_first_appears_and_again_after_it_went_away() {
        let missing = problem("Ingress", Severity::Warning, "ServiceNotFound");
        let conflict = problem("Ingress", Severity::Warning, "Conflict");
        let info = problem("Ingress", Severity::Info, "NotOurClass");
        let mut ledger = Ledger::default();

        let first = [missing.clone(), info.clone()];
        assert_eq!(ledger.fresh(&first), vec![&missing]);
        ledger.published(&missing);
        // Persists across a recompile: nothing new.
        assert!(ledger.fresh(&first).is_empty());

        let second = [missing.clone(), conflict.clone()];
        assert_eq!(ledger.fresh(&second), vec![&conflict]);
        // Not recorded (the publish failed): offered again.
        assert_eq!(ledger.fresh(&second), vec![&conflict]);
        ledger.published(&conflict);

        // Gone, then back: published again.
        assert!(ledger.fresh(std::slice::from_ref(&conflict)).is_empty());
        assert_eq!(ledger.fresh(&second), vec![&missing]);

        ledger.clear();
        assert_eq!(ledger.fresh(&second), vec![&missing, &conflict]);
    }
}
