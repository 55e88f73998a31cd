//! Judging one analysis interval: the shell measures the new backend's traffic through the
//! proxy's metrics; this turns a measurement into a verdict with the compared values in words.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use switchyard_crds::{AnalysisRun, Backend, Verdict, format_duration};

use super::plan::Checks;

/// Runs kept in `status.analysis.runs`: enough for `kubectl switchyard status` to show a trend,
/// few enough that the status object stays small.
pub const MAX_RUNS: usize = 10;

/// What the shell measured for one analysis interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The backend whose requests were counted; a measurement of another backend than the
    /// rollout's target is ignored.
    pub backend: Backend,
    /// When the interval ended.
    pub time: Timestamp,
    /// Requests the backend received in the interval.
    pub requests: u64,
    /// Share of non-5xx responses, from 0 to 1; `None` when nothing could be computed.
    pub success_rate: Option<f64>,
    /// Latency at the spec's percentile; `None` when nothing could be computed.
    pub latency: Option<Duration>,
    /// Why nothing could be measured (no proxy answered its metrics, say): the interval is
    /// Inconclusive, never a failure, and says so in status.
    pub error: Option<String>,
}

impl Measurement {
    /// An interval that could not be measured.
    pub fn failed(backend: Backend, time: Timestamp, error: String) -> Measurement {
        Measurement {
            backend,
            time,
            requests: 0,
            success_rate: None,
            latency: None,
            error: Some(error),
        }
    }
}

/// The verdict on one measurement, as recorded in status.
pub(crate) fn judge(checks: &Checks, m: &Measurement) -> AnalysisRun {
    let (verdict, message) = verdict(checks, m);
    AnalysisRun {
        time: Time(m.time),
        verdict,
        requests: m.error.is_none().then_some(m.requests),
        success_rate: m.success_rate.map(round4),
        latency: m.latency.map(format_duration),
        message: Some(message),
    }
}

fn verdict(checks: &Checks, m: &Measurement) -> (Verdict, String) {
    if let Some(error) = &m.error {
        return (Verdict::Inconclusive, format!("not measured: {error}"));
    }
    // Too little traffic says nothing about the backend: neither a pass nor a failure.
    if m.requests < checks.min_requests {
        return (
            Verdict::Inconclusive,
            format!(
                "{} requests < minRequests {}",
                m.requests, checks.min_requests
            ),
        );
    }
    let mut passed = Vec::new();
    if let Some(min) = checks.success_min {
        let Some(rate) = m.success_rate else {
            return (Verdict::Inconclusive, "no success rate measured".into());
        };
        let rate = round4(rate);
        if rate < min {
            return (Verdict::Failed, format!("success rate {rate} < {min}"));
        }
        passed.push(format!("success rate {rate} >= {min}"));
    }
    if let Some(limit) = checks.latency {
        let p = limit.percentile;
        let Some(latency) = m.latency else {
            return (Verdict::Inconclusive, format!("no p{p} latency measured"));
        };
        let (measured, max) = (format_duration(latency), format_duration(limit.max));
        if latency > limit.max {
            return (Verdict::Failed, format!("p{p} latency {measured} > {max}"));
        }
        passed.push(format!("p{p} latency {measured} <= {max}"));
    }
    (Verdict::Successful, passed.join(", "))
}

/// Four decimals are what a person compares against a threshold like 0.995.
fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::plan::LatencyLimit;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn checks() -> Checks {
        Checks {
            interval: Duration::from_secs(30),
            failure_limit: 2,
            min_requests: 50,
            success_min: Some(0.99),
            latency: Some(LatencyLimit {
                percentile: 99.0,
                max: Duration::from_millis(500),
            }),
        }
    }

    fn measured(requests: u64, rate: Option<f64>, latency_ms: Option<u64>) -> Measurement {
        Measurement {
            backend: Backend {
                service: "shop-v2".into(),
                port: IntOrString::Int(80),
            },
            time: Timestamp::UNIX_EPOCH,
            requests,
            success_rate: rate,
            latency: latency_ms.map(Duration::from_millis),
            error: None,
        }
    }

    #[test]
    fn verdicts_name_the_measured_values() {
        let cases = [
            (
                measured(212, Some(1.0), Some(41)),
                Verdict::Successful,
                "success rate 1 >= 0.99, p99 latency 41ms <= 500ms",
            ),
            (
                measured(49, Some(0.1), Some(900)),
                Verdict::Inconclusive,
                "49 requests < minRequests 50",
            ),
            (
                measured(100, Some(0.912345), Some(41)),
                Verdict::Failed,
                "success rate 0.9123 < 0.99",
            ),
            (
                measured(100, Some(0.995), Some(812)),
                Verdict::Failed,
                "p99 latency 812ms > 500ms",
            ),
            (
                measured(100, None, Some(10)),
                Verdict::Inconclusive,
                "no success rate measured",
            ),
        ];
        for (m, verdict, message) in cases {
            let run = judge(&checks(), &m);
            assert_eq!(run.verdict, verdict, "{message}");
            assert_eq!(run.message.as_deref(), Some(message));
            assert_eq!(run.requests, Some(m.requests));
        }
    }

    #[test]
    fn an_unmeasured_interval_is_inconclusive_and_says_why() {
        let m = Measurement::failed(
            measured(0, None, None).backend,
            Timestamp::UNIX_EPOCH,
            "no proxy metrics URL answered".into(),
        );
        let run = judge(&checks(), &m);
        assert_eq!(run.verdict, Verdict::Inconclusive);
        assert_eq!(
            run.message.as_deref(),
            Some("not measured: no proxy metrics URL answered")
        );
        assert_eq!(run.requests, None);
    }

    #[test]
    fn exactly_min_requests_is_judged() {
        let run = judge(&checks(), &measured(50, Some(0.5), Some(10)));
        assert_eq!(run.verdict, Verdict::Failed);
    }
}
