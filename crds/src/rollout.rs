//! `RolloutRoute`: a route (hosts × paths) whose backend changes progressively — canary weight
//! steps or a blue-green switch — expanded by the operator into plain Ingresses.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::networking::v1::ServiceBackendPort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::certificate::{IssuerRef, IssuerRefError};
use crate::duration::{DURATION_PATTERN, DurationError, parse_duration};
use crate::names::{HOST_PATTERN, is_valid_host};

/// The desired state of a RolloutRoute.
// Several printcolumn(...) share `type_ = "string"`, which clippy mistakes for a repeat.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "RolloutRoute",
    plural = "rolloutroutes",
    namespaced,
    status = "RolloutRouteStatus",
    shortname = "rr",
    category = "switchyard",
    derive = "PartialEq",
    doc = "Routes hosts and paths to a Service and moves that traffic to a new version \
           progressively: canary weight steps with pauses, or a blue-green switch, with optional \
           automatic analysis and rollback. Change spec.backend to start a rollout.",
    printcolumn(
        name = "Stable",
        type_ = "string",
        json_path = ".status.stableBackend.service"
    ),
    printcolumn(
        name = "Desired",
        type_ = "string",
        json_path = ".spec.backend.service"
    ),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(name = "Step", type_ = "integer", json_path = ".status.currentStep"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = 1,
        json_path = ".status.message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRouteSpec {
    /// The IngressClass of the generated Ingresses. Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,

    /// The host names this route serves, e.g. [shop.example.com]. A leading *. matches exactly
    /// one extra DNS label.
    #[schemars(length(min = 1), inner(pattern(HOST_PATTERN)))]
    pub hosts: Vec<String>,

    /// The paths served on every host. Default: [{path: /, pathType: Prefix}].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<RoutePath>,

    /// Serve the hosts over HTTPS with the certificate in this Secret; with issuerRef, a
    /// Certificate for the hosts is created and kept renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,

    /// Annotations copied onto every generated Ingress, e.g. any
    /// nginx.ingress.kubernetes.io/* setting the proxy understands. On the canary Ingress only
    /// those that apply to canaries (affinity, load balancing) are copied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// The version that should serve. Changing it starts a rollout from status.stableBackend to
    /// this one; setting it back to the stable one aborts the rollout.
    pub backend: Backend,

    /// How traffic moves to a new backend: exactly one of canary or blueGreen.
    pub strategy: RolloutStrategy,

    /// Hold the rollout where it is (kubectl switchyard pause / resume). Traffic stays split as
    /// it is now and timed pauses stop counting down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A path served on every host of the route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutePath {
    /// The URL path, starting with /.
    pub path: String,

    /// How the path matches, as in an Ingress: Prefix (default; by whole path elements),
    /// Exact, or ImplementationSpecific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_type: Option<PathType>,
}

impl RoutePath {
    /// The path type, with its default (`Prefix`) applied.
    pub fn path_type(&self) -> PathType {
        self.path_type.unwrap_or_default()
    }
}

/// How an Ingress path matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PathType {
    #[default]
    Prefix,
    Exact,
    ImplementationSpecific,
}

impl PathType {
    /// The name as written in Ingress objects.
    pub fn as_str(self) -> &'static str {
        match self {
            PathType::Prefix => "Prefix",
            PathType::Exact => "Exact",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// TLS for the route's hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// The kubernetes.io/tls Secret with the certificate for the hosts.
    pub secret_name: String,

    /// Issue the certificate into secretName from this Issuer or ClusterIssuer (a Certificate
    /// named after the Secret is created). Without it the Secret is managed elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
}

/// A Service port that receives traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Name of the Service, in the route's namespace.
    pub service: String,

    /// The Service port, by number (80) or by name (http).
    pub port: IntOrString,
}

impl Backend {
    /// The port in the form an Ingress backend takes.
    pub fn service_backend_port(&self) -> ServiceBackendPort {
        match &self.port {
            IntOrString::Int(number) => ServiceBackendPort {
                number: Some(*number),
                name: None,
            },
            IntOrString::String(name) => ServiceBackendPort {
                number: None,
                name: Some(name.clone()),
            },
        }
    }

    fn validate(&self, field: &str) -> Result<(), RolloutRouteError> {
        if self.service.is_empty() {
            return Err(RolloutRouteError::EmptyService {
                field: field.to_owned(),
            });
        }
        match &self.port {
            IntOrString::Int(port) if !(1..=65535).contains(port) => {
                Err(RolloutRouteError::PortOutOfRange {
                    field: field.to_owned(),
                    port: *port,
                })
            }
            IntOrString::String(name) if name.is_empty() => Err(RolloutRouteError::EmptyPortName {
                field: field.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// `service:port`, as in messages and Events.
impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            IntOrString::Int(port) => write!(f, "{}:{port}", self.service),
            IntOrString::String(port) => write!(f, "{}:{port}", self.service),
        }
    }
}

/// How traffic moves to a new backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.canary) != has(self.blueGreen)",
    "message": "set exactly one of canary or blueGreen",
}]))]
pub struct RolloutStrategy {
    /// Shift a growing share of requests to the new backend, step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,

    /// Run the new backend beside the old one on preview hosts, then switch all traffic at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// The strategy of a valid spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy<'a> {
    Canary(&'a CanaryStrategy),
    BlueGreen(&'a BlueGreenStrategy),
}

impl RolloutStrategy {
    /// The one strategy that is set; `None` when none or both are (see `validate`).
    pub fn get(&self) -> Option<Strategy<'_>> {
        match (&self.canary, &self.blue_green) {
            (Some(canary), None) => Some(Strategy::Canary(canary)),
            (None, Some(blue_green)) => Some(Strategy::BlueGreen(blue_green)),
            _ => None,
        }
    }
}

/// A canary rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// The steps, in order. After the last one the new backend takes all traffic. Example:
    /// [{setWeight: 10}, {pause: {duration: 30s}}, {setWeight: 50}, {pause: {}}].
    #[serde(default)]
    pub steps: Vec<CanaryStep>,

    /// Requests that reach the new backend during the whole rollout, whatever the weight:
    /// for testing the new version by header or cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<CanaryMatch>,

    /// Checks on the new backend's traffic; failing them aborts the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// One canary step: set a weight, or pause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = one_of_to_cel)]
pub enum CanaryStep {
    /// Send this percentage (0-100) of the route's requests to the new backend.
    SetWeight(#[schemars(range(max = 100))] u32),
    /// Wait: for a duration, or with {} until promoted (kubectl switchyard promote).
    Pause(PauseStep),
}

/// Replaces the `oneOf` that schemars makes of an enum by one object with every variant's field
/// and a CEL rule that exactly one is set: the apiserver reports a failed `oneOf` as "must validate
/// one and only one schema", while the rule's message says what to write.
fn one_of_to_cel(schema: &mut schemars::Schema) {
    let Some(serde_json::Value::Array(variants)) = schema.remove("oneOf") else {
        return;
    };
    let mut properties = serde_json::Map::new();
    for variant in variants {
        let description = variant.get("description").cloned();
        let Some(serde_json::Value::Object(fields)) = variant.get("properties").cloned() else {
            continue;
        };
        for (name, mut field) in fields {
            // The variant's doc comment describes the field better than the field's type does.
            if let (Some(description), Some(field)) = (&description, field.as_object_mut()) {
                field.insert("description".into(), description.clone());
            }
            properties.insert(name, field);
        }
    }
    let names: Vec<String> = properties.keys().cloned().collect();
    let count = names
        .iter()
        .map(|name| format!("(has(self.{name}) ? 1 : 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), properties.into());
    schema.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([{
            "rule": format!("{count} == 1"),
            "message": format!("set exactly one of {}", names.join(" or ")),
        }]),
    );
}

/// A pause in a canary rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait before the next step, e.g. 30s or 10m. Absent: wait until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub duration: Option<String>,
}

impl PauseStep {
    /// The pause's length; `Ok(None)` waits for a promote.
    pub fn duration(&self) -> Result<Option<Duration>, DurationError> {
        self.duration.as_deref().map(parse_duration).transpose()
    }
}

/// Requests that always reach the new backend during a canary rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryMatch {
    /// Requests with this header (value or regex) go to the new backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderMatch>,

    /// Requests with a cookie of this name set to "always" go to the new backend ("never":
    /// never), as ingress-nginx's canary-by-cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}

/// A request header to match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.value) && has(self.regex))",
    "message": "set at most one of value or regex",
}]))]
pub struct HeaderMatch {
    /// The header name, e.g. X-Canary.
    pub name: String,

    /// Match this exact value. With neither value nor regex, the values "always" and "never"
    /// decide, as ingress-nginx's canary-by-header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Match values against this regular expression instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Automatic analysis of the new backend, from the proxy's own request metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.successRate) || has(self.latency)",
    "message": "set successRate, latency, or both",
}]))]
pub struct AnalysisSpec {
    /// How often to measure, e.g. 30s (default) or 1m. Each measurement covers one interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub interval: Option<String>,

    /// Failed measurements in a row that abort the rollout. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_limit: Option<u32>,

    /// Fewer requests than this in an interval make it Inconclusive rather than failed.
    /// Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,

    /// Fail when the share of non-5xx responses from the new backend drops below min.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRateCheck>,

    /// Fail when the new backend's latency at the percentile exceeds max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyCheck>,
}

/// The success rate a backend must keep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuccessRateCheck {
    /// The lowest acceptable share of successful (non-5xx) responses, from 0 to 1, e.g. 0.99.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min: f64,
}

/// The latency a backend must keep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyCheck {
    /// Which percentile to measure, above 0 and up to 100, e.g. 99.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percentile: f64,

    /// The highest acceptable latency at that percentile, e.g. 500ms.
    #[schemars(pattern(DURATION_PATTERN))]
    pub max: String,
}

/// Analysis interval when the spec has none.
pub const DEFAULT_ANALYSIS_INTERVAL: Duration = Duration::from_secs(30);

impl AnalysisSpec {
    /// The interval, with its default applied.
    pub fn interval(&self) -> Result<Duration, DurationError> {
        self.interval
            .as_deref()
            .map_or(Ok(DEFAULT_ANALYSIS_INTERVAL), parse_duration)
    }

    /// The failure limit, with its default (1) applied.
    pub fn failure_limit(&self) -> u32 {
        self.failure_limit.unwrap_or(1)
    }

    /// The minimum request count, with its default (1) applied.
    pub fn min_requests(&self) -> u64 {
        self.min_requests.unwrap_or(1)
    }

    fn validate(&self, field: &str) -> Result<(), RolloutRouteError> {
        let bad_duration = |name: &str| {
            let field = format!("{field}.{name}");
            move |source| RolloutRouteError::Duration { field, source }
        };
        if self.interval().map_err(bad_duration("interval"))?.is_zero() {
            return Err(RolloutRouteError::ZeroInterval {
                field: format!("{field}.interval"),
            });
        }
        if self.failure_limit == Some(0) {
            return Err(RolloutRouteError::ZeroFailureLimit {
                field: format!("{field}.failureLimit"),
            });
        }
        if self.success_rate.is_none() && self.latency.is_none() {
            return Err(RolloutRouteError::NoAnalysisCheck {
                field: field.to_owned(),
            });
        }
        if let Some(rate) = &self.success_rate
            && !(0.0..=1.0).contains(&rate.min)
        {
            return Err(RolloutRouteError::SuccessRateOutOfRange {
                field: format!("{field}.successRate.min"),
            });
        }
        if let Some(latency) = &self.latency {
            // Written as a negated range check so that NaN is refused too.
            if !(latency.percentile > 0.0 && latency.percentile <= 100.0) {
                return Err(RolloutRouteError::PercentileOutOfRange {
                    field: format!("{field}.latency.percentile"),
                });
            }
            parse_duration(&latency.max).map_err(bad_duration("latency.max"))?;
        }
        Ok(())
    }
}

impl LatencyCheck {
    /// The latency limit parsed.
    pub fn max(&self) -> Result<Duration, DurationError> {
        parse_duration(&self.max)
    }
}

/// A blue-green rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Hosts that route to the new backend as soon as a rollout starts, so it can be tried
    /// before the switch, e.g. [preview.shop.example.com].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(HOST_PATTERN)))]
    pub preview_hosts: Vec<String>,

    /// Switch automatically this many seconds after the rollout starts. Absent: wait until
    /// promoted (or until analysis passes, when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<u32>,

    /// Checks on the preview traffic; passing them switches, failing them aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// The observed state of a RolloutRoute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRouteStatus {
    /// Healthy: one backend serves everything. Progressing: a rollout is moving traffic.
    /// Paused: a rollout waits (a pause step, or spec.paused). Degraded: the rollout was
    /// aborted or undone and the stable backend serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The backend that serves all traffic outside a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_backend: Option<Backend>,

    /// The backend the current rollout moves to (spec.backend when the rollout started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_backend: Option<Backend>,

    /// The backend that served before the last completed rollout, for undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_backend: Option<Backend>,

    /// Index (from 0) of the canary step in progress; equal to the number of steps when all
    /// are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<u32>,

    /// Percentage of requests the new backend receives now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub canary_weight: Option<u32>,

    /// When the current timed pause ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_ends_at: Option<Time>,

    /// A human-readable summary of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Progressing, Paused, Promoted and Degraded, for kubectl wait
    /// --for=condition=Promoted and friends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::condition::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// Results of the analysis of the current (or last) rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStatus>,

    /// The last value of each `switchyard.dev/<verb>` annotation (promote, promote-full, abort,
    /// retry, undo) that the operator acted on, by verb; a new value triggers the verb once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handled_actions: BTreeMap<String, String>,
}

/// The phase of a RolloutRoute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    Healthy,
    Progressing,
    Paused,
    Degraded,
}

/// The analysis of a rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// Failed measurements in a row; the rollout aborts at spec failureLimit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,

    /// The most recent measurements, oldest first (the operator keeps a few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<AnalysisRun>,
}

/// One analysis measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRun {
    /// When the interval ended.
    pub time: Time,

    /// Successful, Failed, or Inconclusive (too few requests to judge).
    pub verdict: Verdict,

    /// Requests the new backend received in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,

    /// The measured share of successful responses, from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,

    /// The measured latency at the configured percentile, e.g. 412ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,

    /// What was compared, in words, e.g. "success rate 0.91 < 0.99".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The verdict of one analysis measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    Successful,
    Failed,
    Inconclusive,
}

/// Why a RolloutRoute spec is invalid. Field paths are as users write them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutRouteError {
    #[error("spec.hosts must name at least one host")]
    NoHosts,
    #[error("{field} {host:?} is not a valid host name (lower case, optionally *. in front)")]
    InvalidHost { field: String, host: String },
    #[error("spec.paths[{index}].path {path:?} must start with /")]
    RelativePath { index: usize, path: String },
    #[error("spec.tls.secretName must not be empty")]
    EmptyTlsSecret,
    #[error(transparent)]
    IssuerRef(#[from] IssuerRefError),
    #[error("{field}.service must not be empty")]
    EmptyService { field: String },
    #[error("{field}.port {port} is not a port number (1-65535)")]
    PortOutOfRange { field: String, port: i32 },
    #[error("{field}.port must not be an empty name")]
    EmptyPortName { field: String },
    #[error("spec.strategy must set exactly one of canary or blueGreen, not both")]
    BothStrategies,
    #[error("spec.strategy must set one of canary or blueGreen")]
    NoStrategy,
    #[error("spec.strategy.canary.steps[{index}].setWeight {weight} is above 100")]
    WeightOutOfRange { index: usize, weight: u32 },
    #[error("{field}: {source}")]
    Duration {
        field: String,
        #[source]
        source: DurationError,
    },
    #[error("spec.strategy.canary.match.header.name must not be empty")]
    EmptyHeaderName,
    #[error("spec.strategy.canary.match.header sets both value and regex; set at most one")]
    HeaderValueAndRegex,
    #[error("spec.strategy.canary.match.cookie must not be empty")]
    EmptyCookie,
    #[error("{field} must be longer than 0s")]
    ZeroInterval { field: String },
    #[error("{field} must be at least 1")]
    ZeroFailureLimit { field: String },
    #[error("{field} must set successRate, latency, or both")]
    NoAnalysisCheck { field: String },
    #[error("{field} must be between 0 and 1")]
    SuccessRateOutOfRange { field: String },
    #[error("{field} must be above 0 and at most 100")]
    PercentileOutOfRange { field: String },
}

impl RolloutRouteSpec {
    /// Checks what the schema cannot say (or what a client may have skipped): host names,
    /// paths, the backend, exactly one strategy, weights, durations, analysis settings.
    pub fn validate(&self) -> Result<(), RolloutRouteError> {
        if self.hosts.is_empty() {
            return Err(RolloutRouteError::NoHosts);
        }
        check_hosts("spec.hosts", &self.hosts)?;
        if let Some((index, path)) = self
            .paths
            .iter()
            .enumerate()
            .find(|(_, p)| !p.path.starts_with('/'))
        {
            return Err(RolloutRouteError::RelativePath {
                index,
                path: path.path.clone(),
            });
        }
        if let Some(tls) = &self.tls {
            if tls.secret_name.is_empty() {
                return Err(RolloutRouteError::EmptyTlsSecret);
            }
            if let Some(issuer) = &tls.issuer_ref {
                issuer.validate("spec.tls.issuerRef")?;
            }
        }
        self.backend.validate("spec.backend")?;

        match (&self.strategy.canary, &self.strategy.blue_green) {
            (Some(_), Some(_)) => Err(RolloutRouteError::BothStrategies),
            (None, None) => Err(RolloutRouteError::NoStrategy),
            (Some(canary), None) => canary.validate(),
            (None, Some(blue_green)) => blue_green.validate(),
        }
    }

    /// The paths to serve, with the default (`/`, Prefix) when the spec lists none.
    pub fn paths(&self) -> Vec<RoutePath> {
        if self.paths.is_empty() {
            vec![RoutePath {
                path: "/".into(),
                path_type: Some(PathType::Prefix),
            }]
        } else {
            self.paths.clone()
        }
    }

    /// Whether `spec.paused` is set.
    pub fn is_paused(&self) -> bool {
        self.paused.unwrap_or(false)
    }
}

impl CanaryStrategy {
    fn validate(&self) -> Result<(), RolloutRouteError> {
        for (index, step) in self.steps.iter().enumerate() {
            match step {
                CanaryStep::SetWeight(weight) if *weight > 100 => {
                    return Err(RolloutRouteError::WeightOutOfRange {
                        index,
                        weight: *weight,
                    });
                }
                CanaryStep::SetWeight(_) => {}
                CanaryStep::Pause(pause) => {
                    pause
                        .duration()
                        .map_err(|source| RolloutRouteError::Duration {
                            field: format!("spec.strategy.canary.steps[{index}].pause.duration"),
                            source,
                        })?;
                }
            }
        }
        if let Some(matching) = &self.r#match {
            if let Some(header) = &matching.header {
                if header.name.is_empty() {
                    return Err(RolloutRouteError::EmptyHeaderName);
                }
                if header.value.is_some() && header.regex.is_some() {
                    return Err(RolloutRouteError::HeaderValueAndRegex);
                }
            }
            if matching.cookie.as_deref() == Some("") {
                return Err(RolloutRouteError::EmptyCookie);
            }
        }
        if let Some(analysis) = &self.analysis {
            analysis.validate("spec.strategy.canary.analysis")?;
        }
        Ok(())
    }
}

impl BlueGreenStrategy {
    fn validate(&self) -> Result<(), RolloutRouteError> {
        check_hosts("spec.strategy.blueGreen.previewHosts", &self.preview_hosts)?;
        if let Some(analysis) = &self.analysis {
            analysis.validate("spec.strategy.blueGreen.analysis")?;
        }
        Ok(())
    }
}

fn check_hosts(field: &str, hosts: &[String]) -> Result<(), RolloutRouteError> {
    match hosts.iter().enumerate().find(|(_, h)| !is_valid_host(h)) {
        Some((index, host)) => Err(RolloutRouteError::InvalidHost {
            field: format!("{field}[{index}]"),
            host: host.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::IssuerKind;

    fn analysis() -> AnalysisSpec {
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

    fn canary() -> CanaryStrategy {
        CanaryStrategy {
            steps: vec![
                CanaryStep::SetWeight(10),
                CanaryStep::Pause(PauseStep {
                    duration: Some("30s".into()),
                }),
                CanaryStep::SetWeight(50),
                CanaryStep::Pause(PauseStep::default()),
            ],
            r#match: Some(CanaryMatch {
                header: Some(HeaderMatch {
                    name: "X-Canary".into(),
                    value: Some("true".into()),
                    regex: None,
                }),
                cookie: Some("canary".into()),
            }),
            analysis: Some(analysis()),
        }
    }

    fn spec() -> RolloutRouteSpec {
        RolloutRouteSpec {
            ingress_class_name: Some("switchyard".into()),
            hosts: vec!["shop.example.com".into()],
            paths: vec![],
            tls: Some(RouteTls {
                secret_name: "shop-tls".into(),
                issuer_ref: Some(IssuerRef {
                    kind: Some(IssuerKind::ClusterIssuer),
                    name: "letsencrypt".into(),
                    group: None,
                }),
            }),
            annotations: BTreeMap::new(),
            backend: Backend {
                service: "shop-v2".into(),
                port: IntOrString::Int(80),
            },
            strategy: RolloutStrategy {
                canary: Some(canary()),
                blue_green: None,
            },
            paused: None,
        }
    }

    fn blue_green() -> BlueGreenStrategy {
        BlueGreenStrategy {
            preview_hosts: vec!["preview.shop.example.com".into()],
            auto_promotion_seconds: Some(300),
            analysis: Some(analysis()),
        }
    }

    fn with_canary(canary: CanaryStrategy) -> RolloutRouteSpec {
        RolloutRouteSpec {
            strategy: RolloutStrategy {
                canary: Some(canary),
                blue_green: None,
            },
            ..spec()
        }
    }

    fn with_analysis(analysis: AnalysisSpec) -> RolloutRouteSpec {
        with_canary(CanaryStrategy {
            analysis: Some(analysis),
            ..canary()
        })
    }

    #[test]
    fn valid_specs() {
        assert_eq!(spec().validate(), Ok(()));
        let bg = RolloutRouteSpec {
            strategy: RolloutStrategy {
                canary: None,
                blue_green: Some(blue_green()),
            },
            ..spec()
        };
        assert_eq!(bg.validate(), Ok(()));
        assert!(matches!(bg.strategy.get(), Some(Strategy::BlueGreen(_))));
        // No steps at all: the new backend takes over at once. Legal.
        let no_steps = with_canary(CanaryStrategy {
            steps: vec![],
            r#match: None,
            analysis: None,
        });
        assert_eq!(no_steps.validate(), Ok(()));
    }

    #[test]
    fn exactly_one_strategy() {
        let both = RolloutRouteSpec {
            strategy: RolloutStrategy {
                canary: Some(canary()),
                blue_green: Some(blue_green()),
            },
            ..spec()
        };
        assert_eq!(both.validate(), Err(RolloutRouteError::BothStrategies));
        assert_eq!(both.strategy.get(), None);
        let neither = RolloutRouteSpec {
            strategy: RolloutStrategy {
                canary: None,
                blue_green: None,
            },
            ..spec()
        };
        assert_eq!(neither.validate(), Err(RolloutRouteError::NoStrategy));
    }

    #[test]
    fn refuses_bad_routes() {
        let cases = [
            (
                RolloutRouteSpec {
                    hosts: vec![],
                    ..spec()
                },
                RolloutRouteError::NoHosts,
            ),
            (
                RolloutRouteSpec {
                    hosts: vec!["shop.example.com".into(), "Shop.Example.com".into()],
                    ..spec()
                },
                RolloutRouteError::InvalidHost {
                    field: "spec.hosts[1]".into(),
                    host: "Shop.Example.com".into(),
                },
            ),
            (
                RolloutRouteSpec {
                    paths: vec![RoutePath {
                        path: "api".into(),
                        path_type: None,
                    }],
                    ..spec()
                },
                RolloutRouteError::RelativePath {
                    index: 0,
                    path: "api".into(),
                },
            ),
            (
                RolloutRouteSpec {
                    tls: Some(RouteTls {
                        secret_name: String::new(),
                        issuer_ref: None,
                    }),
                    ..spec()
                },
                RolloutRouteError::EmptyTlsSecret,
            ),
            (
                RolloutRouteSpec {
                    backend: Backend {
                        service: "shop-v2".into(),
                        port: IntOrString::Int(0),
                    },
                    ..spec()
                },
                RolloutRouteError::PortOutOfRange {
                    field: "spec.backend".into(),
                    port: 0,
                },
            ),
            (
                RolloutRouteSpec {
                    backend: Backend {
                        service: "shop-v2".into(),
                        port: IntOrString::String(String::new()),
                    },
                    ..spec()
                },
                RolloutRouteError::EmptyPortName {
                    field: "spec.backend".into(),
                },
            ),
            (
                RolloutRouteSpec {
                    backend: Backend {
                        service: String::new(),
                        port: IntOrString::Int(80),
                    },
                    ..spec()
                },
                RolloutRouteError::EmptyService {
                    field: "spec.backend".into(),
                },
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(spec.validate(), Err(expected));
        }
    }

    #[test]
    fn refuses_bad_canaries() {
        let mut heavy = canary();
        heavy.steps[2] = CanaryStep::SetWeight(150);
        assert_eq!(
            with_canary(heavy).validate(),
            Err(RolloutRouteError::WeightOutOfRange {
                index: 2,
                weight: 150
            })
        );

        let mut slow = canary();
        slow.steps[1] = CanaryStep::Pause(PauseStep {
            duration: Some("1 week".into()),
        });
        let err = with_canary(slow).validate().map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(
                "spec.strategy.canary.steps[1].pause.duration: invalid duration \"1 week\": \
                 unknown unit \" week\" (use one of ns, us, ms, s, m, h)"
                    .into()
            )
        );

        let mut both = canary();
        if let Some(header) = both.r#match.as_mut().and_then(|m| m.header.as_mut()) {
            header.regex = Some("^t.*".into());
        }
        assert_eq!(
            with_canary(both).validate(),
            Err(RolloutRouteError::HeaderValueAndRegex)
        );

        let mut nameless = canary();
        if let Some(header) = nameless.r#match.as_mut().and_then(|m| m.header.as_mut()) {
            header.name = String::new();
        }
        assert_eq!(
            with_canary(nameless).validate(),
            Err(RolloutRouteError::EmptyHeaderName)
        );
    }

    #[test]
    fn refuses_bad_analysis() {
        let field = "spec.strategy.canary.analysis";
        let cases = [
            (
                AnalysisSpec {
                    interval: Some("0s".into()),
                    ..analysis()
                },
                RolloutRouteError::ZeroInterval {
                    field: format!("{field}.interval"),
                },
            ),
            (
                AnalysisSpec {
                    failure_limit: Some(0),
                    ..analysis()
                },
                RolloutRouteError::ZeroFailureLimit {
                    field: format!("{field}.failureLimit"),
                },
            ),
            (
                AnalysisSpec {
                    success_rate: None,
                    latency: None,
                    ..analysis()
                },
                RolloutRouteError::NoAnalysisCheck {
                    field: field.into(),
                },
            ),
            (
                AnalysisSpec {
                    success_rate: Some(SuccessRateCheck { min: 99.0 }),
                    ..analysis()
                },
                RolloutRouteError::SuccessRateOutOfRange {
                    field: format!("{field}.successRate.min"),
                },
            ),
            (
                AnalysisSpec {
                    latency: Some(LatencyCheck {
                        percentile: 0.0,
                        max: "1s".into(),
                    }),
                    ..analysis()
                },
                RolloutRouteError::PercentileOutOfRange {
                    field: format!("{field}.latency.percentile"),
                },
            ),
            (
                AnalysisSpec {
                    latency: Some(LatencyCheck {
                        percentile: f64::NAN,
                        max: "1s".into(),
                    }),
                    ..analysis()
                },
                RolloutRouteError::PercentileOutOfRange {
                    field: format!("{field}.latency.percentile"),
                },
            ),
            (
                AnalysisSpec {
                    latency: Some(LatencyCheck {
                        percentile: 99.0,
                        max: "fast".into(),
                    }),
                    ..analysis()
                },
                RolloutRouteError::Duration {
                    field: format!("{field}.latency.max"),
                    source: DurationError::Syntax {
                        input: "fast".into(),
                    },
                },
            ),
        ];
        for (analysis, expected) in cases {
            assert_eq!(with_analysis(analysis).validate(), Err(expected));
        }

        let bad_preview = RolloutRouteSpec {
            strategy: RolloutStrategy {
                canary: None,
                blue_green: Some(BlueGreenStrategy {
                    preview_hosts: vec!["preview_shop".into()],
                    ..blue_green()
                }),
            },
            ..spec()
        };
        assert_eq!(
            bad_preview.validate(),
            Err(RolloutRouteError::InvalidHost {
                field: "spec.strategy.blueGreen.previewHosts[0]".into(),
                host: "preview_shop".into(),
            })
        );
    }

    #[test]
    fn defaults_and_accessors() {
        let spec = spec();
        assert_eq!(
            spec.paths(),
            vec![RoutePath {
                path: "/".into(),
                path_type: Some(PathType::Prefix)
            }]
        );
        assert!(!spec.is_paused());
        let bare = AnalysisSpec {
            interval: None,
            failure_limit: None,
            min_requests: None,
            ..analysis()
        };
        assert_eq!(bare.interval(), Ok(DEFAULT_ANALYSIS_INTERVAL));
        assert_eq!(bare.failure_limit(), 1);
        assert_eq!(bare.min_requests(), 1);
        assert_eq!(
            analysis().latency.map(|l| l.max()),
            Some(Ok(Duration::from_millis(500)))
        );
        assert_eq!(spec.backend.to_string(), "shop-v2:80");
        assert_eq!(
            spec.backend.service_backend_port(),
            ServiceBackendPort {
                number: Some(80),
                name: None
            }
        );
        let named = Backend {
            service: "shop-v1".into(),
            port: IntOrString::String("http".into()),
        };
        assert_eq!(named.to_string(), "shop-v1:http");
        assert_eq!(named.service_backend_port().name.as_deref(), Some("http"));
    }
}
