//! `kubectl switchyard status NAME`: one RolloutRoute in detail: its line, the steps with the
//! current one marked (or the blue-green setup), the analysis settings and results of each
//! interval, and the conditions.

use std::fmt::Write as _;

use switchyard_crds::{AnalysisSpec, CanaryStep, Phase, RolloutRoute, Strategy};

use crate::plugin::{conditions_block, rollout_rows, table};

/// The whole detail view.
pub fn route_detail(route: &RolloutRoute) -> String {
    let status = route.status.clone().unwrap_or_default();
    let mut out = rollout_rows(std::slice::from_ref(route), false);
    let rolling = matches!(status.phase, Some(Phase::Progressing | Phase::Paused))
        && status.desired_backend.is_some()
        && status.desired_backend != status.stable_backend;
    let analysis = match route.spec.strategy.get() {
        Some(Strategy::Canary(canary)) => {
            out.push('\n');
            out.push_str(&steps_block(&canary.steps, status.current_step, rolling));
            if let Some(m) = &canary.r#match {
                let mut parts = Vec::new();
                if let Some(h) = &m.header {
                    parts.push(match (&h.value, &h.regex) {
                        (Some(v), _) => format!("header {}: {v}", h.name),
                        (_, Some(r)) => format!("header {} matching /{r}/", h.name),
                        _ => format!("header {}: always", h.name),
                    });
                }
                if let Some(c) = &m.cookie {
                    parts.push(format!("cookie {c}=always"));
                }
                let _ = writeln!(
                    out,
                    "Match: {} (these requests reach the new backend during a rollout)",
                    parts.join(", ")
                );
            }
            canary.analysis.as_ref()
        }
        Some(Strategy::BlueGreen(bg)) => {
            out.push('\n');
            let preview = if bg.preview_hosts.is_empty() {
                "no preview hosts".to_owned()
            } else {
                format!("preview hosts {}", bg.preview_hosts.join(", "))
            };
            let switch = match bg.auto_promotion_seconds {
                Some(s) => format!("switches {s}s after the rollout starts"),
                None if bg.analysis.is_some() => "switches when analysis passes".to_owned(),
                None => "switches on promote".to_owned(),
            };
            let _ = writeln!(out, "Blue-green: {preview}; {switch}");
            bg.analysis.as_ref()
        }
        None => None,
    };
    if let Some(spec) = analysis {
        out.push('\n');
        out.push_str(&analysis_block(spec, &status));
    }
    out.push('\n');
    out.push_str(&conditions_block(&status.conditions));
    out
}

fn steps_block(steps: &[CanaryStep], current: Option<u32>, rolling: bool) -> String {
    let mut out = String::from("Steps:\n");
    if steps.is_empty() {
        out.push_str("  (none: a new backend takes all traffic at once)\n");
        return out;
    }
    let current = current.and_then(|c| usize::try_from(c).ok());
    for (index, step) in steps.iter().enumerate() {
        let text = match step {
            CanaryStep::SetWeight(w) => format!("setWeight {w}"),
            CanaryStep::Pause(p) => match &p.duration {
                Some(d) => format!("pause {d}"),
                None => "pause until promoted".to_owned(),
            },
        };
        let mark = match current {
            Some(c) if rolling && c == index => "=>",
            Some(c) if c > index => "ok",
            _ => "  ",
        };
        let _ = writeln!(out, "  {mark} {:>2}. {text}", index + 1);
    }
    if !rolling && current.is_some_and(|c| c >= steps.len()) {
        out.push_str("  all steps done\n");
    }
    out
}

fn analysis_block(spec: &AnalysisSpec, status: &switchyard_crds::RolloutRouteStatus) -> String {
    let mut checks = Vec::new();
    if let Some(rate) = &spec.success_rate {
        checks.push(format!("success rate >= {}", rate.min));
    }
    if let Some(latency) = &spec.latency {
        checks.push(format!(
            "p{} latency <= {}",
            latency.percentile, latency.max
        ));
    }
    let mut out = format!(
        "Analysis: every {}, {}; aborts after {} failed interval(s) in a row; fewer than {} \
         request(s) is Inconclusive\n",
        spec.interval.as_deref().unwrap_or("30s"),
        checks.join(", "),
        spec.failure_limit(),
        spec.min_requests(),
    );
    let Some(analysis) = &status.analysis else {
        out.push_str("  no measurement yet\n");
        return out;
    };
    let _ = writeln!(
        out,
        "  failed in a row: {}",
        analysis.consecutive_failures.unwrap_or(0)
    );
    if analysis.runs.is_empty() {
        out.push_str("  no measurement yet\n");
        return out;
    }
    let rows: Vec<Vec<String>> = analysis
        .runs
        .iter()
        .map(|run| {
            vec![
                run.time.0.to_string(),
                format!("{:?}", run.verdict),
                run.requests.map_or("-".into(), |r| r.to_string()),
                run.success_rate.map_or("-".into(), |r| r.to_string()),
                run.latency.clone().unwrap_or_else(|| "-".into()),
                run.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let table = table(
        &[
            "TIME", "VERDICT", "REQUESTS", "SUCCESS", "LATENCY", "MESSAGE",
        ],
        &rows,
    );
    for line in table.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_analysis_and_conditions_in_one_view() {
        let route: RolloutRoute = serde_json::from_value(serde_json::json!({
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "RolloutRoute",
            "metadata": {"name": "shop", "namespace": "web"},
            "spec": {
                "hosts": ["shop.example.com"],
                "backend": {"service": "shop-v2", "port": 80},
                "strategy": {"canary": {
                    "steps": [{"setWeight": 10}, {"pause": {"duration": "2s"}},
                              {"setWeight": 50}, {"pause": {}}],
                    "match": {"header": {"name": "X-Canary", "value": "true"}},
                    "analysis": {"interval": "1s", "failureLimit": 2,
                                 "successRate": {"min": 0.99}}
                }}
            },
            "status": {
                "phase": "Paused",
                "stableBackend": {"service": "shop-v1", "port": 80},
                "desiredBackend": {"service": "shop-v2", "port": 80},
                "currentStep": 3,
                "canaryWeight": 50,
                "analysis": {"consecutiveFailures": 1, "runs": [
                    {"time": "2026-11-22T21:30:00Z", "verdict": "Failed", "requests": 40,
                     "successRate": 0.5, "message": "success rate 0.5 < 0.99"}
                ]}
            }
        }))
        .expect("route");
        let out = route_detail(&route);
        assert!(out.contains("  ok  1. setWeight 10\n"), "{out}");
        assert!(out.contains("  =>  4. pause until promoted\n"), "{out}");
        assert!(
            out.contains("Match: header X-Canary: true (these requests"),
            "{out}"
        );
        assert!(
            out.contains("Analysis: every 1s, success rate >= 0.99; aborts after 2"),
            "{out}"
        );
        assert!(out.contains("  failed in a row: 1\n"), "{out}");
        assert!(out.contains("Failed    40"), "{out}");
        assert!(out.contains("success rate 0.5 < 0.99"), "{out}");
        assert!(out.contains("Conditions: none yet"), "{out}");
    }
}
