//! RolloutRoute: progressive delivery at the routing layer.
//!
//! This folder is the pure core of the controller; the shell (watch, apply, metrics, Events)
//! calls it once per reconcile:
//!
//! 1. [`analysis_due`]: if a measurement of the rollout's target backend is due, scrape the
//!    proxy's metrics and put a [`Measurement`] into [`Observed`], with any children that exist
//!    but are not ours (`Observed::conflicts`).
//! 2. [`next_status`]`(route, observed, now)` → [`Decision`]: the new status, Events, requeue.
//! 3. [`desired_ingresses`]`(route, &decision.status)`: apply them (server-side apply, one field
//!    manager), skipping conflicting names; delete [`stale_children`]; write the status; publish
//!    the Events; requeue.
//!
//! All rollout state lives in `status` (step, weight, pause end, analysis runs, handled verbs),
//! so an operator restart resumes where the last pass left off.

mod analysis;
pub mod decide;
pub mod expand;
pub mod metrics;
mod plan;
mod state;

#[cfg(test)]
mod tests;

pub use analysis::{MAX_RUNS, Measurement};
pub use decide::{
    AnalysisDue, Decision, Event, EventType, Observed, VERBS, analysis_due, next_status,
};
pub use expand::{ROUTE_LABEL, child_name, desired_ingresses, label_value, stale_children};
pub use state::{reason, rollout_target};
