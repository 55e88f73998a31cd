//! The RolloutRoute state machine: from the route (spec, annotations, last status), what the
//! shell measured, and the time, the next status, the Events to emit and when to look again.
//! Pure: no IO and no clock, so every transition is a unit test.
//!
//! One pass, in order: first apply; `spec.paused` being set or cleared; spec.backend changes
//! (start, restart, clean abort); one-shot verbs (abort, undo, retry, promote-full, promote);
//! analysis of the interval just measured; then the steps or the blue-green timer move on.
//! Conditions, phase and message are derived from the result, so they always agree.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use switchyard_crds::condition::{DEGRADED, PAUSED, PROGRESSING, PROMOTED, READY, find};
use switchyard_crds::{
    AnalysisStatus, Backend, Phase, RolloutRoute, RolloutRouteError, RolloutRouteStatus, Verdict,
    format_duration,
};

use super::analysis::{MAX_RUNS, Measurement, judge};
use super::expand::desired_ingresses;
use super::plan::{Checks, Plan, Step, Strategy};
use super::state::{
    Fault, Mode, held_since, mode, progressing_since, reason, rollout_target, was_held,
};
use crate::controllers::conditions::{condition, set};
use crate::plugin::action_annotation;

/// The one-shot verbs, highest priority first: when several new values arrive together, the
/// first that applies acts and the others are recorded as handled (an abort must win).
pub const VERBS: [&str; 5] = ["abort", "undo", "retry", "promote-full", "promote"];

/// Verbs that move traffic forward: while `spec.paused` holds the route they wait (stay
/// unhandled) and act on resume, whereas abort and undo act at once.
const DEFERRED_WHILE_PAUSED: [&str; 3] = ["retry", "promote-full", "promote"];

/// What the shell measured since the last pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The analysis measurement for the interval that just ended, if one was due (see
    /// [`analysis_due`]). Ignored when it is for another backend or too early.
    pub measurement: Option<Measurement>,
    /// Names of children that exist but were not created by this route (not adopted).
    pub conflicts: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes Event to publish on the route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    /// One of [`reason`](super::state::reason).
    pub reason: &'static str,
    pub message: String,
}

/// The outcome of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write (after applying [`desired_ingresses`] of it).
    pub status: RolloutRouteStatus,
    /// Events for the transitions of this pass; empty when nothing changed.
    pub events: Vec<Event>,
    /// Look again after this long (a pause ends, an analysis interval is due); `None` waits
    /// for the next change to the route.
    pub requeue: Option<Duration>,
}

/// When the shell should measure the rollout's target backend next.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisDue {
    pub backend: Backend,
    /// When the rollout (or its resumption) began moving traffic: measurements taken before
    /// it belong to another rollout.
    pub since: Timestamp,
    /// The interval ends here; a measurement taken earlier is ignored.
    pub at: Timestamp,
    pub interval: Duration,
    /// The latency percentile to report, when the spec checks latency.
    pub percentile: Option<f64>,
}

/// The next status of `route` at `now`, given what the shell `observed`.
pub fn next_status(route: &RolloutRoute, observed: &Observed, now: Timestamp) -> Decision {
    let old = route.status.clone().unwrap_or_default();
    match Plan::new(&route.spec) {
        Ok(plan) => Machine::new(route, plan, old, now).run(observed),
        Err(error) => invalid(route, old, &error, now),
    }
}

/// When the next analysis measurement is due for the rollout `status` describes; `None` when
/// no analysis runs (no rollout, no analysis in the spec, or `spec.paused`).
pub fn analysis_due(route: &RolloutRoute, status: &RolloutRouteStatus) -> Option<AnalysisDue> {
    if route.spec.is_paused() {
        return None;
    }
    let plan = Plan::new(&route.spec).ok()?;
    let checks = plan.analysis.as_ref()?;
    let backend = rollout_target(status)?.clone();
    let since = progressing_since(status)?;
    let at = due_at(status, checks, since);
    Some(AnalysisDue {
        backend,
        since,
        at,
        interval: checks.interval,
        percentile: checks.latency.map(|l| l.percentile),
    })
}

/// A spec that cannot be acted on changes nothing but Ready; the shell should leave the
/// children as they are.
fn invalid(
    route: &RolloutRoute,
    old: RolloutRouteStatus,
    error: &RolloutRouteError,
    now: Timestamp,
) -> Decision {
    let mut status = old;
    let generation = route.metadata.generation;
    status.observed_generation = generation;
    let message = format!("invalid spec: {error}");
    let changed = set(
        &mut status.conditions,
        condition(
            READY,
            "False",
            reason::INVALID_SPEC,
            &message,
            generation,
            now,
        ),
    );
    status.message = Some(message.clone());
    let events = if changed {
        vec![warning(reason::INVALID_SPEC, message)]
    } else {
        vec![]
    };
    Decision {
        status,
        events,
        requeue: None,
    }
}

/// A condition to set: type, status, reason, message.
type Cond = (&'static str, &'static str, &'static str, String);

/// Why a step or the blue-green switch is waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Timed(Timestamp),
    Promote,
    Analysis,
    Nothing,
}

struct Machine<'a> {
    route: &'a RolloutRoute,
    plan: Plan,
    now: Timestamp,
    old: RolloutRouteStatus,
    /// The status being built.
    s: RolloutRouteStatus,
    mode: Mode,
    held: bool,
    /// Why the route became Degraded in this pass (kept in the Degraded condition after).
    fault_message: Option<String>,
    /// The canary step changed in this pass, so a `pause: {}` reached now is announced.
    entered_step: bool,
    events: Vec<Event>,
}

impl<'a> Machine<'a> {
    fn new(route: &'a RolloutRoute, plan: Plan, old: RolloutRouteStatus, now: Timestamp) -> Self {
        Machine {
            route,
            plan,
            now,
            mode: mode(&old),
            held: route.spec.is_paused(),
            s: old.clone(),
            old,
            fault_message: None,
            entered_step: false,
            events: Vec::new(),
        }
    }

    fn run(mut self, observed: &Observed) -> Decision {
        if self.mode == Mode::New {
            self.first_apply();
        }
        self.hold_transitions();
        let verbs = self.pending_verbs();
        self.spec_transitions();
        self.act(&verbs);
        if self.mode == Mode::Rolling && !self.held {
            self.analyse(observed);
        }
        if self.mode == Mode::Rolling && !self.held {
            self.progress();
        }
        self.finish(observed)
    }

    fn spec_backend(&self) -> &'a Backend {
        &self.route.spec.backend
    }

    fn stable(&self) -> Backend {
        self.s
            .stable_backend
            .clone()
            .unwrap_or_else(|| self.spec_backend().clone())
    }

    fn target(&self) -> Backend {
        self.s
            .desired_backend
            .clone()
            .unwrap_or_else(|| self.spec_backend().clone())
    }

    fn step_count(&self) -> u32 {
        u32::try_from(self.plan.steps().len()).unwrap_or(u32::MAX)
    }

    fn emit(&mut self, type_: EventType, reason: &'static str, message: String) {
        self.events.push(Event {
            type_,
            reason,
            message,
        });
    }

    // ---- transitions -------------------------------------------------------------------

    /// Nothing to roll out: the backend serves at once. Verb annotations already present
    /// (copied from a template, say) are recorded so they never act later by surprise.
    fn first_apply(&mut self) {
        let backend = self.spec_backend().clone();
        self.s.stable_backend = Some(backend.clone());
        self.s.desired_backend = Some(backend.clone());
        for verb in VERBS {
            if let Some(value) = self.annotation(verb) {
                self.s.handled_actions.insert(verb.to_owned(), value);
            }
        }
        self.mode = Mode::Healthy;
        self.emit(
            EventType::Normal,
            reason::PROMOTED,
            format!("{backend} serves all traffic (first apply: nothing to roll out)"),
        );
    }

    fn hold_transitions(&mut self) {
        let was = was_held(&self.old);
        if self.held && !was {
            self.emit(
                EventType::Normal,
                reason::PAUSED,
                "paused by spec.paused: traffic stays as it is and pauses stop counting down"
                    .into(),
            );
        } else if !self.held && was {
            self.resume_timer();
            self.emit(
                EventType::Normal,
                reason::RESUMED,
                "resumed: spec.paused is no longer set".into(),
            );
        }
    }

    /// A timed pause (or blue-green delay) resumes with the time it had left when the hold
    /// began.
    fn resume_timer(&mut self) {
        let (Some(since), Some(end)) = (held_since(&self.old), self.s.pause_ends_at.as_ref())
        else {
            return;
        };
        let left = until(since, end.0);
        self.s.pause_ends_at = Some(Time(after(self.now, left)));
    }

    fn spec_transitions(&mut self) {
        let wanted = self.spec_backend().clone();
        let stable = self.stable();
        let target = self.target();
        match self.mode {
            Mode::New => {}
            Mode::Healthy if wanted != stable && !self.held => {
                self.start_rollout(format!("rolling out {wanted} (replacing {stable})"));
            }
            Mode::Healthy => {}
            Mode::Rolling if wanted == stable => self.cancel(&target),
            Mode::Rolling if wanted != target && !self.held => self.start_rollout(format!(
                "spec.backend changed to {wanted} during the rollout of {target}: restarting \
                 from step 0 (replacing {stable})"
            )),
            Mode::Rolling => {}
            Mode::Degraded(_) if wanted == target => {}
            Mode::Degraded(_) if wanted == stable => self.back_to_stable(),
            Mode::Degraded(_) if !self.held => {
                self.start_rollout(format!("rolling out {wanted} (replacing {stable})"));
            }
            Mode::Degraded(_) => {}
        }
    }

    fn start_rollout(&mut self, message: String) {
        let canary = self.plan.is_canary();
        self.s.desired_backend = Some(self.spec_backend().clone());
        self.s.current_step = canary.then_some(0);
        self.s.canary_weight = Some(0);
        self.s.pause_ends_at = match self.plan.strategy {
            Strategy::BlueGreen {
                auto_promotion: Some(delay),
            } => Some(Time(after(self.now, delay))),
            _ => None,
        };
        self.s.analysis = self.plan.analysis.as_ref().map(|_| AnalysisStatus {
            consecutive_failures: Some(0),
            runs: Vec::new(),
        });
        self.mode = Mode::Rolling;
        self.entered_step = true;
        self.emit(EventType::Normal, reason::ROLLOUT_STARTED, message);
    }

    /// spec.backend set back to the stable backend mid-rollout: a clean abort, not a fault.
    fn cancel(&mut self, target: &Backend) {
        let stable = self.stable();
        self.settle_on_stable();
        self.emit(
            EventType::Normal,
            reason::ABORTED,
            format!(
                "spec.backend is the stable {stable} again: rollout of {target} cancelled, \
                 {stable} serves all traffic"
            ),
        );
    }

    /// spec.backend set to the stable backend of an aborted or undone route.
    fn back_to_stable(&mut self) {
        let stable = self.stable();
        self.settle_on_stable();
        self.emit(
            EventType::Normal,
            reason::PROMOTED,
            format!("spec.backend is {stable}, which serves all traffic"),
        );
    }

    fn settle_on_stable(&mut self) {
        self.s.desired_backend = self.s.stable_backend.clone();
        self.s.canary_weight = None;
        self.s.current_step = None;
        self.s.pause_ends_at = None;
        self.mode = Mode::Healthy;
    }

    /// The new backend serves everything; the old stable one is kept for undo.
    fn complete(&mut self, why: &str) {
        let (old, new) = (self.stable(), self.target());
        self.s.previous_backend = Some(old.clone());
        self.s.stable_backend = Some(new.clone());
        self.s.desired_backend = Some(new.clone());
        self.s.current_step = self.plan.is_canary().then(|| self.step_count());
        self.s.canary_weight = None;
        self.s.pause_ends_at = None;
        self.mode = Mode::Healthy;
        self.emit(
            EventType::Normal,
            reason::PROMOTED,
            format!("{new} serves all traffic ({why}); {old} is kept for undo"),
        );
    }

    /// All traffic back to stable; stays so until spec.backend changes or a retry.
    fn abort(&mut self, fault: Fault, message: String) {
        self.s.canary_weight = Some(0);
        self.s.pause_ends_at = None;
        self.mode = Mode::Degraded(fault);
        self.fault_message = Some(message.clone());
        self.emit(EventType::Warning, fault.reason(), message);
    }

    fn undo(&mut self, previous: Backend) {
        let current = self.stable();
        let wanted = self.spec_backend().clone();
        self.s.stable_backend = Some(previous.clone());
        self.s.previous_backend = Some(current.clone());
        self.s.desired_backend = Some(wanted.clone());
        self.s.canary_weight = Some(0);
        self.s.current_step = None;
        self.s.pause_ends_at = None;
        let message = format!(
            "undone: {previous} serves all traffic again instead of {current}; spec.backend \
             {wanted} is not served until it changes"
        );
        self.mode = Mode::Degraded(Fault::Undone);
        self.fault_message = Some(message.clone());
        self.emit(EventType::Warning, reason::UNDONE, message);
    }

    // ---- one-shot verbs ----------------------------------------------------------------

    fn annotation(&self, verb: &str) -> Option<String> {
        self.route
            .metadata
            .annotations
            .as_ref()?
            .get(&action_annotation(verb))
            .cloned()
    }

    /// New annotation values, recorded as handled (except those deferred by spec.paused).
    fn pending_verbs(&mut self) -> Vec<&'static str> {
        let mut pending = Vec::new();
        for verb in VERBS {
            let Some(value) = self.annotation(verb) else {
                continue;
            };
            if self.s.handled_actions.get(verb) == Some(&value)
                || (self.held && DEFERRED_WHILE_PAUSED.contains(&verb))
            {
                continue;
            }
            self.s.handled_actions.insert(verb.to_owned(), value);
            pending.push(verb);
        }
        pending
    }

    fn act(&mut self, verbs: &[&'static str]) {
        let mut acted: Option<&str> = None;
        for verb in verbs {
            let outcome = match acted {
                Some(first) => Err(format!("{first} was handled in the same pass")),
                None => self.apply_verb(verb),
            };
            match outcome {
                Ok(()) => acted = Some(verb),
                Err(why) => self.emit(
                    EventType::Normal,
                    reason::ACTION_IGNORED,
                    format!("{verb} ignored: {why}"),
                ),
            }
        }
    }

    fn apply_verb(&mut self, verb: &str) -> Result<(), String> {
        let rolling = self.mode == Mode::Rolling;
        let no_rollout = || "no rollout in progress".to_owned();
        match verb {
            "abort" if rolling => {
                let (target, stable) = (self.target(), self.stable());
                self.abort(
                    Fault::Aborted,
                    format!("rollout of {target} aborted on request; {stable} serves all traffic"),
                );
                Ok(())
            }
            "undo" => self.try_undo(),
            "retry" => self.try_retry(),
            "promote-full" if rolling => {
                self.complete("promoted in full on request");
                Ok(())
            }
            "promote" if rolling => {
                self.promote();
                Ok(())
            }
            _ => Err(no_rollout()),
        }
    }

    fn try_undo(&mut self) -> Result<(), String> {
        match (self.mode, self.s.previous_backend.clone()) {
            (Mode::Rolling, _) => Err("a rollout is in progress; abort it instead".into()),
            (Mode::Healthy, Some(previous)) if previous != self.stable() => {
                self.undo(previous);
                Ok(())
            }
            (Mode::Degraded(Fault::Undone), _) => Err("already undone".into()),
            _ => Err("no previous backend to switch back to".into()),
        }
    }

    fn try_retry(&mut self) -> Result<(), String> {
        let wanted = self.spec_backend().clone();
        let stable = self.stable();
        match self.mode {
            Mode::Degraded(_) | Mode::Rolling if wanted != stable => {
                self.start_rollout(format!(
                    "retrying the rollout of {wanted} from step 0 (replacing {stable})"
                ));
                Ok(())
            }
            _ => Err(format!("nothing to retry: {stable} serves all traffic")),
        }
    }

    /// Canary: end the current step (a pause) now. Blue-green: switch.
    fn promote(&mut self) {
        if !self.plan.is_canary() {
            self.complete("promoted on request");
            return;
        }
        let index = self.s.current_step.unwrap_or(0);
        let n = self.step_count();
        self.advance();
        self.emit(
            EventType::Normal,
            reason::STEP_ADVANCED,
            format!("step {} of {n} ended by promote", index.saturating_add(1)),
        );
    }

    fn advance(&mut self) {
        self.s.current_step = Some(self.s.current_step.unwrap_or(0).saturating_add(1));
        self.s.pause_ends_at = None;
        self.entered_step = true;
    }

    // ---- analysis ----------------------------------------------------------------------

    fn analyse(&mut self, observed: &Observed) {
        let Some(checks) = self.plan.analysis.clone() else {
            return;
        };
        let Some(m) = &observed.measurement else {
            return;
        };
        // Just started (or resumed): the first interval counts from now.
        let since = progressing_since(&self.old).unwrap_or(self.now);
        if m.backend != self.target() || m.time < due_at(&self.s, &checks, since) {
            return;
        }
        let run = judge(&checks, m);
        let verdict = run.verdict;
        let message = run.message.clone().unwrap_or_default();
        let failures = self.record(run);
        if verdict == Verdict::Failed && failures >= checks.failure_limit {
            let (target, stable) = (self.target(), self.stable());
            self.abort(
                Fault::AnalysisFailed,
                format!(
                    "analysis failed {failures} time(s) in a row ({message}): rollout of \
                     {target} aborted, {stable} serves all traffic"
                ),
            );
        } else if verdict == Verdict::Successful && self.promotes_on_analysis() {
            self.complete(&format!("analysis passed: {message}"));
        }
    }

    /// Adds a run and returns the failures in a row. Inconclusive runs neither count as
    /// failures nor break a streak of them.
    fn record(&mut self, run: switchyard_crds::AnalysisRun) -> u32 {
        let analysis = self.s.analysis.get_or_insert_with(AnalysisStatus::default);
        let failures = analysis.consecutive_failures.unwrap_or(0);
        let failures = match run.verdict {
            Verdict::Failed => failures.saturating_add(1),
            Verdict::Successful => 0,
            Verdict::Inconclusive => failures,
        };
        analysis.consecutive_failures = Some(failures);
        analysis.runs.push(run);
        let excess = analysis.runs.len().saturating_sub(MAX_RUNS);
        analysis.runs.drain(..excess);
        failures
    }

    /// Blue-green without auto-promotion switches on the first passing interval; with it,
    /// analysis only gates the timed switch.
    fn promotes_on_analysis(&self) -> bool {
        matches!(
            self.plan.strategy,
            Strategy::BlueGreen {
                auto_promotion: None
            }
        )
    }

    fn failures(&self) -> u32 {
        self.s
            .analysis
            .as_ref()
            .and_then(|a| a.consecutive_failures)
            .unwrap_or(0)
    }

    // ---- steps and timers --------------------------------------------------------------

    fn progress(&mut self) {
        match self.plan.strategy {
            Strategy::Canary { .. } => self.run_steps(),
            Strategy::BlueGreen { auto_promotion } => self.blue_green_timer(auto_promotion),
        }
    }

    /// Runs weight steps at once and stops at the first pause that is not over.
    fn run_steps(&mut self) {
        let steps = self.plan.steps().to_vec();
        let n = self.step_count();
        loop {
            let index = self.s.current_step.unwrap_or(0);
            let Some(step) = usize::try_from(index).ok().and_then(|i| steps.get(i)) else {
                self.complete(&format!("all {n} steps done"));
                return;
            };
            let number = index.saturating_add(1);
            match *step {
                Step::Weight(weight) => {
                    self.s.canary_weight = Some(weight);
                    self.advance();
                    let target = self.target();
                    self.emit(
                        EventType::Normal,
                        reason::STEP_ADVANCED,
                        format!("step {number} of {n}: {target} receives {weight}% of requests"),
                    );
                }
                Step::Pause(Some(length)) => match self.s.pause_ends_at.as_ref().map(|t| t.0) {
                    None => {
                        let end = after(self.now, length);
                        self.s.pause_ends_at = Some(Time(end));
                        let text = format_duration(length);
                        self.emit(
                            EventType::Normal,
                            reason::PAUSED,
                            format!("step {number} of {n}: pausing {text}, until {end}"),
                        );
                        return;
                    }
                    Some(end) if self.now >= end => self.advance(),
                    Some(_) => return,
                },
                Step::Pause(None) => {
                    if self.entered_step {
                        let name = self.route.metadata.name.as_deref().unwrap_or_default();
                        self.emit(
                            EventType::Normal,
                            reason::PAUSED,
                            format!(
                                "step {number} of {n}: waiting for kubectl switchyard promote \
                                 {name}"
                            ),
                        );
                    }
                    return;
                }
            }
        }
    }

    /// The switch waits while analysis has a failure streak that has not reached the limit.
    fn blue_green_timer(&mut self, delay: Option<Duration>) {
        let (Some(delay), Some(end)) = (delay, self.s.pause_ends_at.as_ref()) else {
            return;
        };
        if self.now >= end.0 && self.failures() == 0 {
            let seconds = delay.as_secs();
            self.complete(&format!("auto-promotion after {seconds}s"));
        }
    }

    // ---- derived status ----------------------------------------------------------------

    fn wait(&self) -> Wait {
        if self.mode != Mode::Rolling {
            return Wait::Nothing;
        }
        let end = self.s.pause_ends_at.as_ref().map(|t| t.0);
        match &self.plan.strategy {
            Strategy::Canary { steps } => {
                let step = self
                    .s
                    .current_step
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| steps.get(i));
                match (step, end) {
                    (Some(Step::Pause(Some(_))), Some(end)) => Wait::Timed(end),
                    (Some(Step::Pause(None)), _) => Wait::Promote,
                    _ => Wait::Nothing,
                }
            }
            Strategy::BlueGreen { .. } => match end {
                Some(end) if end > self.now => Wait::Timed(end),
                _ if self.plan.analysis.is_some() => Wait::Analysis,
                _ => Wait::Promote,
            },
        }
    }

    /// spec.backend changed while spec.paused holds a healthy route.
    fn pending(&self) -> bool {
        self.held && self.mode == Mode::Healthy && *self.spec_backend() != self.stable()
    }

    fn phase(&self, wait: Wait) -> Phase {
        match self.mode {
            Mode::Degraded(_) => Phase::Degraded,
            Mode::Healthy | Mode::New if self.pending() => Phase::Paused,
            Mode::Healthy | Mode::New => Phase::Healthy,
            Mode::Rolling if self.held => Phase::Paused,
            Mode::Rolling => match wait {
                Wait::Timed(_) | Wait::Promote => Phase::Paused,
                Wait::Analysis | Wait::Nothing => Phase::Progressing,
            },
        }
    }

    fn fault_text(&self, fault: Fault) -> String {
        if let Some(message) = &self.fault_message {
            return message.clone();
        }
        find(&self.old.conditions, DEGRADED)
            .filter(|c| c.status == "True" && c.reason == fault.reason())
            .map(|c| c.message.clone())
            .unwrap_or_else(|| format!("{} serves all traffic", self.stable()))
    }

    fn message(&self, wait: Wait) -> String {
        let stable = self.stable();
        match self.mode {
            Mode::Degraded(fault) => self.fault_text(fault),
            _ if self.pending() => format!(
                "paused: the rollout of {} starts on resume",
                self.spec_backend()
            ),
            Mode::Healthy | Mode::New => format!("{stable} serves all traffic"),
            Mode::Rolling => {
                let where_ = match self.plan.strategy {
                    Strategy::Canary { .. } => self.step_text(wait),
                    Strategy::BlueGreen { .. } => self.preview_text(wait),
                };
                match self.held_left() {
                    Some(left) => format!(
                        "paused by spec.paused at {where_}; {} of the pause left",
                        format_duration(left)
                    ),
                    None if self.held => format!("paused by spec.paused at {where_}"),
                    None => where_,
                }
            }
        }
    }

    /// The pause time a hold keeps for the resume.
    fn held_left(&self) -> Option<Duration> {
        if !self.held {
            return None;
        }
        let end = self.s.pause_ends_at.as_ref()?.0;
        let since = held_since(&self.old).unwrap_or(self.now);
        Some(until(since, end))
    }

    fn step_text(&self, wait: Wait) -> String {
        let n = self.step_count();
        let index = self.s.current_step.unwrap_or(0);
        let weight = self.s.canary_weight.unwrap_or(0);
        let number = index.saturating_add(1);
        let what = match (
            wait,
            usize::try_from(index)
                .ok()
                .and_then(|i| self.plan.steps().get(i)),
        ) {
            (_, Some(Step::Pause(Some(length)))) => format!("pause {}", format_duration(*length)),
            (Wait::Promote, _) => "waiting for promote".to_owned(),
            (_, Some(Step::Weight(w))) => format!("set weight {w}"),
            _ => "done".to_owned(),
        };
        format!("step {number} of {n}: {what} (weight {weight})")
    }

    fn preview_text(&self, wait: Wait) -> String {
        let target = self.target();
        match wait {
            Wait::Timed(end) => format!("preview serves {target}; switching at {end}"),
            Wait::Analysis => format!("preview serves {target}; switching when analysis passes"),
            Wait::Promote | Wait::Nothing => {
                format!("preview serves {target}; waiting for promote")
            }
        }
    }

    fn conditions(&self, wait: Wait, observed: &Observed) -> Vec<Cond> {
        let stable = self.stable();
        let target = self.target();
        let serving = format!("{stable} serves all traffic");
        let (progressing, promoted, degraded) = match self.mode {
            Mode::Rolling => {
                let share = match self.plan.strategy {
                    Strategy::Canary { .. } => format!(
                        "{target} receives {}% of requests",
                        self.s.canary_weight.unwrap_or(0)
                    ),
                    Strategy::BlueGreen { .. } => format!("{target} serves the preview hosts only"),
                };
                let moving = format!("moving traffic from {stable} to {target}");
                let progressing = if self.held {
                    ("Unknown", reason::PAUSED_BY_USER, moving)
                } else {
                    ("True", reason::ROLLOUT_IN_PROGRESS, moving)
                };
                (
                    progressing,
                    ("False", reason::ROLLOUT_IN_PROGRESS, share),
                    ("False", reason::ROLLOUT_IN_PROGRESS, String::new()),
                )
            }
            Mode::Degraded(fault) => {
                let text = self.fault_text(fault);
                (
                    ("False", fault.reason(), text.clone()),
                    ("False", fault.reason(), text.clone()),
                    ("True", fault.reason(), text),
                )
            }
            _ if self.pending() => {
                let waits = format!("{} waits for resume", self.spec_backend());
                (
                    ("Unknown", reason::PAUSED_BY_USER, waits.clone()),
                    ("False", reason::ROLLOUT_PENDING, waits),
                    ("False", reason::STABLE, String::new()),
                )
            }
            Mode::Healthy | Mode::New => (
                ("False", reason::STABLE, serving.clone()),
                ("True", reason::STABLE, serving),
                ("False", reason::STABLE, String::new()),
            ),
        };
        vec![
            self.ready(observed),
            (PROGRESSING, progressing.0, progressing.1, progressing.2),
            self.paused(wait),
            (PROMOTED, promoted.0, promoted.1, promoted.2),
            (DEGRADED, degraded.0, degraded.1, degraded.2),
        ]
    }

    fn ready(&self, observed: &Observed) -> Cond {
        if !observed.conflicts.is_empty() {
            let names = observed.conflicts.join(", ");
            return (
                READY,
                "False",
                reason::INGRESS_CONFLICT,
                format!(
                    "Ingress {names} already exists and was not created by this route; it is \
                     left alone (rename or delete it)"
                ),
            );
        }
        let names: Vec<String> = desired_ingresses(self.route, &self.s)
            .into_iter()
            .filter_map(|i| i.metadata.name)
            .collect();
        (
            READY,
            "True",
            reason::INGRESSES_APPLIED,
            format!("serving through Ingress {}", names.join(", ")),
        )
    }

    fn paused(&self, wait: Wait) -> Cond {
        let (status, why, message) = match wait {
            _ if self.held => (
                "True",
                reason::PAUSED_BY_USER,
                "spec.paused is set: the rollout holds where it is".to_owned(),
            ),
            Wait::Timed(end) => ("True", reason::TIMED_PAUSE, format!("pausing until {end}")),
            Wait::Promote => (
                "True",
                reason::WAITING_FOR_PROMOTE,
                "waiting for kubectl switchyard promote".to_owned(),
            ),
            Wait::Analysis | Wait::Nothing => ("False", reason::NOT_PAUSED, String::new()),
        };
        (PAUSED, status, why, message)
    }

    fn requeue(&self) -> Option<Duration> {
        if self.mode != Mode::Rolling || self.held {
            return None;
        }
        let pause = self
            .s
            .pause_ends_at
            .as_ref()
            .map(|t| t.0)
            .filter(|end| *end > self.now);
        let analysis = self.plan.analysis.as_ref().map(|checks| {
            let since = progressing_since(&self.s).unwrap_or(self.now);
            let due = due_at(&self.s, checks, since);
            // Overdue means the shell had no measurement; try again an interval later.
            if due > self.now {
                due
            } else {
                after(self.now, checks.interval)
            }
        });
        let next = [pause, analysis].into_iter().flatten().min()?;
        Some(until(self.now, next))
    }

    fn finish(mut self, observed: &Observed) -> Decision {
        let wait = self.wait();
        let generation = self.route.metadata.generation;
        self.s.phase = Some(self.phase(wait));
        self.s.message = Some(self.message(wait));
        self.s.observed_generation = generation;
        let was_conflict =
            find(&self.old.conditions, READY).is_some_and(|c| c.reason == reason::INGRESS_CONFLICT);
        for (type_, status, why, message) in self.conditions(wait, observed) {
            let new = condition(type_, status, why, &message, generation, self.now);
            let changed = set(&mut self.s.conditions, new);
            if type_ == READY && changed && why == reason::INGRESS_CONFLICT {
                self.emit(EventType::Warning, reason::INGRESS_CONFLICT, message);
            } else if type_ == READY && was_conflict && why != reason::INGRESS_CONFLICT {
                self.emit(
                    EventType::Normal,
                    reason::INGRESS_CONFLICT_RESOLVED,
                    "no foreign Ingress stands in the way any more".into(),
                );
            }
        }
        let requeue = self.requeue();
        Decision {
            status: self.s,
            events: self.events,
            requeue,
        }
    }
}

/// The next measurement is due one interval after the last one, or after `since` (the start
/// of the rollout) when there is none yet.
fn due_at(status: &RolloutRouteStatus, checks: &Checks, since: Timestamp) -> Timestamp {
    let last = status
        .analysis
        .as_ref()
        .and_then(|a| a.runs.last())
        .map_or(since, |run| run.time.0);
    after(last, checks.interval)
}

fn warning(reason: &'static str, message: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason,
        message,
    }
}

/// `at + length`, saturating at the end of time rather than failing on absurd durations.
fn after(at: Timestamp, length: Duration) -> Timestamp {
    at.saturating_add(length).unwrap_or(Timestamp::MAX)
}

/// The time from `from` to `to`; zero when `to` has passed.
fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}
