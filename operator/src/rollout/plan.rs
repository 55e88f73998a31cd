//! The spec, validated and parsed once, so that the state machine works with durations and
//! numbers instead of strings and never meets a parse error half-way through a transition.

use std::time::Duration;

use switchyard_crds::{
    AnalysisSpec, CanaryStep, RolloutRouteError, RolloutRouteSpec, Strategy as SpecStrategy,
};

/// A canary step with its duration parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Weight(u32),
    /// `None` waits for a promote.
    Pause(Option<Duration>),
}

/// The analysis settings with their defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checks {
    pub interval: Duration,
    pub failure_limit: u32,
    pub min_requests: u64,
    pub success_min: Option<f64>,
    pub latency: Option<LatencyLimit>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LatencyLimit {
    pub percentile: f64,
    pub max: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Strategy {
    Canary {
        steps: Vec<Step>,
    },
    BlueGreen {
        /// Switch this long after the rollout starts.
        auto_promotion: Option<Duration>,
    },
}

/// A valid spec's rollout settings.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub strategy: Strategy,
    pub analysis: Option<Checks>,
}

impl Plan {
    /// Validates the spec and parses what the state machine needs.
    pub fn new(spec: &RolloutRouteSpec) -> Result<Plan, RolloutRouteError> {
        spec.validate()?;
        match spec.strategy.get() {
            Some(SpecStrategy::Canary(canary)) => Ok(Plan {
                strategy: Strategy::Canary {
                    steps: steps(&canary.steps)?,
                },
                analysis: checks(canary.analysis.as_ref(), "spec.strategy.canary.analysis")?,
            }),
            Some(SpecStrategy::BlueGreen(blue_green)) => Ok(Plan {
                strategy: Strategy::BlueGreen {
                    auto_promotion: blue_green
                        .auto_promotion_seconds
                        .map(|s| Duration::from_secs(u64::from(s))),
                },
                analysis: checks(
                    blue_green.analysis.as_ref(),
                    "spec.strategy.blueGreen.analysis",
                )?,
            }),
            // validate() refuses both of these; kept as errors rather than a panic.
            None if spec.strategy.canary.is_some() => Err(RolloutRouteError::BothStrategies),
            None => Err(RolloutRouteError::NoStrategy),
        }
    }

    /// The canary steps; empty for blue-green.
    pub fn steps(&self) -> &[Step] {
        match &self.strategy {
            Strategy::Canary { steps } => steps,
            Strategy::BlueGreen { .. } => &[],
        }
    }

    pub fn is_canary(&self) -> bool {
        matches!(self.strategy, Strategy::Canary { .. })
    }
}

fn steps(steps: &[CanaryStep]) -> Result<Vec<Step>, RolloutRouteError> {
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| match step {
            CanaryStep::SetWeight(weight) => Ok(Step::Weight(*weight)),
            CanaryStep::Pause(pause) => {
                pause
                    .duration()
                    .map(Step::Pause)
                    .map_err(|source| RolloutRouteError::Duration {
                        field: format!("spec.strategy.canary.steps[{index}].pause.duration"),
                        source,
                    })
            }
        })
        .collect()
}

fn checks(spec: Option<&AnalysisSpec>, field: &str) -> Result<Option<Checks>, RolloutRouteError> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let duration_error = |name: &str| {
        let field = format!("{field}.{name}");
        move |source| RolloutRouteError::Duration { field, source }
    };
    let latency = match &spec.latency {
        Some(latency) => Some(LatencyLimit {
            percentile: latency.percentile,
            max: latency.max().map_err(duration_error("latency.max"))?,
        }),
        None => None,
    };
    Ok(Some(Checks {
        interval: spec.interval().map_err(duration_error("interval"))?,
        failure_limit: spec.failure_limit(),
        min_requests: spec.min_requests(),
        success_min: spec.success_rate.as_ref().map(|rate| rate.min),
        latency,
    }))
}
