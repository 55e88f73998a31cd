//! Fixtures and a small simulator for the table-driven tests: the simulator plays the shell
//! (run a pass, persist the status through JSON as the apiserver would, expand) so each table
//! row reads as what a user does and what they then see.

mod decide;
mod expand;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use switchyard_crds::{
    AnalysisSpec, Backend, BlueGreenStrategy, CanaryMatch, CanaryStep, CanaryStrategy, HeaderMatch,
    LatencyCheck, PauseStep, RolloutRoute, RolloutRouteSpec, RolloutRouteStatus, RolloutStrategy,
    SuccessRateCheck,
};

use super::{Decision, Measurement, Observed, desired_ingresses, next_status};

pub(super) const NGINX: &str = "nginx.ingress.kubernetes.io/";

pub(super) fn backend(service: &str) -> Backend {
    Backend {
        service: service.into(),
        port: IntOrString::Int(80),
    }
}

/// Seconds after a fixed start.
pub(super) fn t(seconds: i64) -> Timestamp {
    let start: Timestamp = "2026-11-22T21:00:00Z".parse().expect("timestamp");
    start
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .expect("in range")
}

pub(super) fn weight(w: u32) -> CanaryStep {
    CanaryStep::SetWeight(w)
}

pub(super) fn pause(duration: &str) -> CanaryStep {
    CanaryStep::Pause(PauseStep {
        duration: Some(duration.into()),
    })
}

pub(super) fn wait_for_promote() -> CanaryStep {
    CanaryStep::Pause(PauseStep::default())
}

pub(super) fn header_match() -> CanaryMatch {
    CanaryMatch {
        header: Some(HeaderMatch {
            name: "X-Canary".into(),
            value: Some("true".into()),
            regex: None,
        }),
        cookie: Some("canary".into()),
    }
}

/// interval 30s, failureLimit 2, minRequests 50, success rate ≥ 0.99, p99 ≤ 500ms.
pub(super) fn analysis() -> AnalysisSpec {
    AnalysisSpec {
        interval: Some("30s".into()),
        failure_limit: Some(2),
        min_requests: Some(50),
        success_rate: Some(SuccessRateCheck { min: 0.99 }),
        latency: Some(LatencyCheck {
            percentile: 99.0,
            max: "500ms".into(),
        }),
    }
}

pub(super) fn canary(steps: Vec<CanaryStep>, matching: Option<CanaryMatch>) -> RolloutStrategy {
    RolloutStrategy {
        canary: Some(CanaryStrategy {
            steps,
            r#match: matching,
            analysis: None,
        }),
        blue_green: None,
    }
}

pub(super) fn blue_green(auto: Option<u32>, analysis: Option<AnalysisSpec>) -> RolloutStrategy {
    RolloutStrategy {
        canary: None,
        blue_green: Some(BlueGreenStrategy {
            preview_hosts: vec!["preview.shop.example.com".into()],
            auto_promotion_seconds: auto,
            analysis,
        }),
    }
}

/// The example: steps [10, pause 30s, 50, pause {}], header and cookie match.
pub(super) fn example_steps() -> RolloutStrategy {
    canary(
        vec![weight(10), pause("30s"), weight(50), wait_for_promote()],
        Some(header_match()),
    )
}

pub(super) fn route(strategy: RolloutStrategy) -> RolloutRoute {
    RolloutRoute {
        metadata: ObjectMeta {
            name: Some("shop".into()),
            namespace: Some("shop".into()),
            uid: Some("6f1c-uid".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: RolloutRouteSpec {
            ingress_class_name: Some("switchyard".into()),
            hosts: vec!["shop.example.com".into()],
            paths: vec![],
            tls: None,
            annotations: BTreeMap::new(),
            backend: backend("shop-v1"),
            strategy,
            paused: None,
        },
        status: None,
    }
}

/// What happens before a pass.
#[derive(Clone, Copy, Debug)]
pub(super) enum Do {
    Nothing,
    Backend(&'static str),
    /// `kubectl switchyard <verb>`: the annotation set to a new value.
    Verb(&'static str),
    Pause(bool),
    /// A measurement of shop-v2: requests, success rate, p99 in ms.
    Measure(u64, f64, u64),
    /// A measurement of another backend than the rollout's target.
    MeasureOther(&'static str, u64),
    Conflict(&'static str),
    /// The operator restarts: nothing survives but the route object itself.
    Restart,
}

/// A table row, positionally: at, act, brief, events, ingresses, requeue.
pub(super) const fn row(
    at: i64,
    act: Do,
    brief: &'static str,
    events: &'static [&'static str],
    ingresses: &'static [&'static str],
    requeue: Option<u64>,
) -> Row {
    Row {
        at,
        act,
        brief,
        events,
        ingresses,
        requeue,
    }
}

/// One row: at `at` seconds, do `act`, then expect what a user sees.
pub(super) struct Row {
    pub at: i64,
    pub act: Do,
    /// Phase, backends, step and weight: see [`brief`].
    pub brief: &'static str,
    pub events: &'static [&'static str],
    /// See [`ingress_summary`].
    pub ingresses: &'static [&'static str],
    pub requeue: Option<u64>,
}

/// Plays the shell: passes, persistence, user edits.
pub(super) struct Sim {
    pub route: RolloutRoute,
    pub last: Option<Decision>,
    verb_count: u32,
}

impl Sim {
    pub fn new(route: RolloutRoute) -> Sim {
        Sim {
            route,
            last: None,
            verb_count: 0,
        }
    }

    pub fn status(&self) -> RolloutRouteStatus {
        self.route.status.clone().unwrap_or_default()
    }

    pub fn apply(&mut self, act: Do, at: i64) -> Decision {
        let mut observed = Observed::default();
        match act {
            Do::Nothing => {}
            Do::Backend(service) => {
                self.route.spec.backend = backend(service);
                self.bump_generation();
            }
            Do::Verb(verb) => self.verb(verb, at),
            Do::Pause(paused) => {
                self.route.spec.paused = Some(paused);
                self.bump_generation();
            }
            Do::Measure(requests, rate, p99_ms) => {
                observed.measurement = Some(measurement("shop-v2", at, requests, rate, p99_ms));
            }
            Do::MeasureOther(service, requests) => {
                observed.measurement = Some(measurement(service, at, requests, 0.0, 9000));
            }
            Do::Conflict(name) => observed.conflicts = vec![name.to_owned()],
            Do::Restart => self.restart(),
        }
        self.pass(&observed, at)
    }

    pub fn pass(&mut self, observed: &Observed, at: i64) -> Decision {
        let decision = next_status(&self.route, observed, t(at));
        // Through JSON, as the apiserver stores it: nothing in memory may matter.
        let json = serde_json::to_value(&decision.status).expect("status serializes");
        self.route.status = Some(serde_json::from_value(json).expect("status deserializes"));
        self.last = Some(decision.clone());
        decision
    }

    pub fn verb(&mut self, verb: &str, at: i64) {
        self.verb_count += 1;
        let value = format!("{}#{}", t(at), self.verb_count);
        self.route
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(format!("switchyard.dev/{verb}"), value);
    }

    fn restart(&mut self) {
        let json = serde_json::to_string(&self.route).expect("route serializes");
        self.route = serde_json::from_str(&json).expect("route deserializes");
        self.last = None;
    }

    fn bump_generation(&mut self) {
        let generation = self.route.metadata.generation.unwrap_or(0);
        self.route.metadata.generation = Some(generation + 1);
    }

    pub fn ingresses(&self) -> Vec<String> {
        desired_ingresses(&self.route, &self.status())
            .iter()
            .map(ingress_summary)
            .collect()
    }

    /// Runs a table, asserting every row.
    pub fn play(&mut self, rows: &[Row]) {
        for (index, row) in rows.iter().enumerate() {
            let decision = self.apply(row.act, row.at);
            let at = format!("row {index} (t={}s, {:?})", row.at, row.act);
            assert_eq!(brief(&decision.status), row.brief, "{at}: status");
            let reasons: Vec<&str> = decision.events.iter().map(|e| e.reason).collect();
            assert_eq!(reasons, row.events, "{at}: events {:#?}", decision.events);
            assert_eq!(self.ingresses(), row.ingresses, "{at}: ingresses");
            assert_eq!(
                decision.requeue,
                row.requeue.map(Duration::from_secs),
                "{at}: requeue"
            );
        }
    }
}

fn measurement(service: &str, at: i64, requests: u64, rate: f64, p99_ms: u64) -> Measurement {
    Measurement {
        backend: backend(service),
        time: t(at),
        requests,
        success_rate: Some(rate),
        latency: Some(Duration::from_millis(p99_ms)),
        error: None,
    }
}

/// "Phase stable=… desired=… [previous=…] [step=N] [weight=N]".
pub(super) fn brief(status: &RolloutRouteStatus) -> String {
    let service = |b: &Option<Backend>| b.as_ref().map_or("-".into(), |b| b.service.clone());
    let mut text = format!(
        "{} stable={} desired={}",
        status.phase.map_or("-".into(), |p| format!("{p:?}")),
        service(&status.stable_backend),
        service(&status.desired_backend),
    );
    if status.previous_backend.is_some() {
        text += &format!(" previous={}", service(&status.previous_backend));
    }
    if let Some(step) = status.current_step {
        text += &format!(" step={step}");
    }
    if let Some(weight) = status.canary_weight {
        text += &format!(" weight={weight}");
    }
    text
}

/// "name -> service:port on host,host [every nginx canary* annotation, prefix dropped]".
pub(super) fn ingress_summary(ingress: &Ingress) -> String {
    let spec = ingress.spec.clone().unwrap_or_default();
    let rules = spec.rules.unwrap_or_default();
    let hosts: Vec<String> = rules.iter().filter_map(|r| r.host.clone()).collect();
    let mut backends: Vec<String> = rules
        .iter()
        .filter_map(|r| r.http.as_ref())
        .flat_map(|http| http.paths.iter())
        .filter_map(|p| p.backend.service.as_ref())
        .map(|s| {
            let port = s.port.clone().unwrap_or_default();
            let port = port
                .number
                .map_or_else(|| port.name.unwrap_or_default(), |n| n.to_string());
            format!("{}:{port}", s.name)
        })
        .collect();
    backends.dedup();
    let canary: Vec<String> = ingress
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(NGINX)?;
            key.starts_with("canary").then(|| format!("{key}={v}"))
        })
        .collect();
    let mut text = format!(
        "{} -> {} on {}",
        ingress.metadata.name.as_deref().unwrap_or_default(),
        backends.join(","),
        hosts.join(",")
    );
    if !canary.is_empty() {
        text += &format!(" [{}]", canary.join(" "));
    }
    text
}
