//! Reading where a route stands from its status alone: the operator keeps no state in memory,
//! so a restart (or another replica taking over) reads exactly what the last pass wrote.

use jiff::Timestamp;
use switchyard_crds::condition::{DEGRADED, PAUSED, PROGRESSING, find};
use switchyard_crds::{Backend, Phase, RolloutRouteStatus};

/// Condition and Event reasons of a RolloutRoute.
pub mod reason {
    /// Event: a rollout began (or began again, from step 0).
    pub const ROLLOUT_STARTED: &str = "RolloutStarted";
    /// Event: a canary step set a new weight.
    pub const STEP_ADVANCED: &str = "StepAdvanced";
    /// Event: a pause step began, or `spec.paused` was set.
    pub const PAUSED: &str = "Paused";
    /// Event: `spec.paused` was cleared.
    pub const RESUMED: &str = "Resumed";
    /// Event: the new backend serves all traffic.
    pub const PROMOTED: &str = "Promoted";
    /// Event and Degraded condition: the rollout was aborted (by request, or by setting
    /// spec.backend back to the stable backend, then only as an Event).
    pub const ABORTED: &str = "Aborted";
    /// Event and Degraded condition: analysis failed failureLimit times in a row.
    pub const ANALYSIS_FAILED: &str = "AnalysisFailed";
    /// Event and Degraded condition: traffic was switched back to the previous backend.
    pub const UNDONE: &str = "Undone";
    /// Event and Ready condition: an Ingress with a child's name exists and is not ours.
    pub const INGRESS_CONFLICT: &str = "IngressConflict";
    /// Event: the conflicting Ingress is gone.
    pub const INGRESS_CONFLICT_RESOLVED: &str = "IngressConflictResolved";
    /// Event and Ready condition: the spec cannot be acted on.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Event: a `switchyard.dev/<verb>` request that does not apply now.
    pub const ACTION_IGNORED: &str = "ActionIgnored";

    /// Ready True.
    pub const INGRESSES_APPLIED: &str = "IngressesApplied";
    /// Progressing True, Promoted False, Degraded False during a rollout.
    pub const ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
    /// Promoted False: spec.backend changed while paused; the rollout starts on resume.
    pub const ROLLOUT_PENDING: &str = "RolloutPending";
    /// Progressing False, Promoted True, Degraded False: one backend serves everything.
    pub const STABLE: &str = "Stable";
    /// Paused True (and Progressing Unknown): spec.paused holds the rollout.
    pub const PAUSED_BY_USER: &str = "PausedByUser";
    /// Paused True: a timed pause step, or blue-green's auto-promotion delay.
    pub const TIMED_PAUSE: &str = "TimedPause";
    /// Paused True: a `pause: {}` step, or blue-green without automatic promotion.
    pub const WAITING_FOR_PROMOTE: &str = "WaitingForPromote";
    /// Paused False.
    pub const NOT_PAUSED: &str = "NotPaused";
}

/// Why a route is Degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    Aborted,
    AnalysisFailed,
    Undone,
}

impl Fault {
    pub fn reason(self) -> &'static str {
        match self {
            Fault::Aborted => reason::ABORTED,
            Fault::AnalysisFailed => reason::ANALYSIS_FAILED,
            Fault::Undone => reason::UNDONE,
        }
    }

    fn from_reason(text: &str) -> Fault {
        match text {
            reason::UNDONE => Fault::Undone,
            reason::ANALYSIS_FAILED => Fault::AnalysisFailed,
            _ => Fault::Aborted,
        }
    }
}

/// Where a route stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Never reconciled: no stable backend yet.
    New,
    /// The stable backend serves everything.
    Healthy,
    /// Traffic is moving from the stable backend to `status.desiredBackend`.
    Rolling,
    /// Aborted or undone; the stable backend serves everything until spec.backend changes.
    Degraded(Fault),
}

pub(crate) fn mode(status: &RolloutRouteStatus) -> Mode {
    let Some(stable) = &status.stable_backend else {
        return Mode::New;
    };
    match status.phase {
        Some(Phase::Degraded) => Mode::Degraded(
            find(&status.conditions, DEGRADED)
                .map_or(Fault::Aborted, |c| Fault::from_reason(&c.reason)),
        ),
        Some(Phase::Progressing | Phase::Paused)
            if status.desired_backend.as_ref().is_some_and(|d| d != stable) =>
        {
            Mode::Rolling
        }
        _ => Mode::Healthy,
    }
}

/// The backend a rollout in progress moves to: the one the canary or preview Ingress serves.
pub fn rollout_target(status: &RolloutRouteStatus) -> Option<&Backend> {
    match mode(status) {
        Mode::Rolling => status.desired_backend.as_ref(),
        _ => None,
    }
}

/// Since when `spec.paused` has held a rollout: Progressing goes Unknown when the hold starts,
/// and its transition time is the only record of that moment (the remaining pause time is
/// computed from it on resume).
pub(crate) fn held_since(status: &RolloutRouteStatus) -> Option<Timestamp> {
    find(&status.conditions, PROGRESSING)
        .filter(|c| c.status == "Unknown" && c.reason == reason::PAUSED_BY_USER)
        .map(|c| c.last_transition_time.0)
}

/// When the current rollout began moving traffic: Progressing's flip to True. Analysis counts
/// its first interval from here.
pub(crate) fn progressing_since(status: &RolloutRouteStatus) -> Option<Timestamp> {
    find(&status.conditions, PROGRESSING)
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.0)
}

/// Whether the last pass saw `spec.paused`.
pub(crate) fn was_held(status: &RolloutRouteStatus) -> bool {
    find(&status.conditions, PAUSED)
        .is_some_and(|c| c.status == "True" && c.reason == reason::PAUSED_BY_USER)
}
