//! The proxy's request metrics, read for analysis: a parser for the Prometheus text format, the
//! counters of one rollout's new backend picked out of a scrape, and the measurement of one
//! interval as the difference between two scrapes (what `increase()` and
//! `histogram_quantile()` compute in PromQL). Pure: the shell fetches the text.
//!
//! Which requests are the new backend's (the labels ingress-nginx gives them):
//! - canary: `canary="<namespace>-<service>-<port>"` on the stable Ingress's series (a canary
//!   request is counted under the route it attached to, as ingress-nginx does);
//! - blue-green: every series of the preview Ingress (it routes only to the new backend).
//!
//! Counters start again from zero when a proxy restarts, and a series disappears when its
//! Ingress does; as in PromQL, a counter that went down is counted from zero.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use switchyard_crds::Backend;

use super::analysis::Measurement;
use super::expand::child_name;

/// ingress-nginx's request counter (no `_total` suffix).
pub const REQUESTS: &str = "nginx_ingress_controller_requests";
/// ingress-nginx's request latency histogram, in seconds.
pub const DURATION: &str = "nginx_ingress_controller_request_duration_seconds";

/// One sample of the text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not in the Prometheus text format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}: {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub why: &'static str,
    /// The line, cut to 120 characters.
    pub text: String,
}

/// Parses the samples of the families `wanted` accepts (by sample name) out of Prometheus text
/// (version 0.0.4, what ingress-nginx and our proxy serve). Comments and blank lines are
/// skipped; the samples of other families are not parsed beyond their name.
pub fn parse(text: &str, wanted: impl Fn(&str) -> bool) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |why| ParseError {
            line: index + 1,
            why,
            text: raw.chars().take(120).collect(),
        };
        let name_end = line
            .find(|c: char| c == '{' || c.is_ascii_whitespace())
            .ok_or_else(|| fail("no value"))?;
        let (name, rest) = line.split_at(name_end);
        if !is_metric_name(name) {
            return Err(fail("not a metric name"));
        }
        if !wanted(name) {
            continue;
        }
        let (labels, rest) = if let Some(inside) = rest.strip_prefix('{') {
            parse_labels(inside).map_err(fail)?
        } else {
            (Vec::new(), rest)
        };
        // A value, then an optional timestamp in milliseconds.
        let mut fields = rest.split_ascii_whitespace();
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| fail("no number after the labels"))?;
        match (fields.next(), fields.next()) {
            (None, _) => {}
            (Some(ts), None) if ts.parse::<i64>().is_ok() => {}
            _ => return Err(fail("unexpected text after the value")),
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

type Labels = Vec<(String, String)>;

/// `a="1",b="x\"y"}` (after the opening brace) → labels and the text after the closing brace.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("a label without =")?;
        let name = s[..eq].trim();
        if !is_metric_name(name) || name.contains(':') {
            return Err("not a label name");
        }
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    _ => return Err("an unknown escape in a label value"),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("labels not separated by ,");
        }
    }
}

/// Go's float text: `1`, `0.003`, `1e+06`, `+Inf`, `-Inf`, `NaN`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// The requests of one rollout's new backend, as the proxy labels them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    namespace: String,
    /// The stable Ingress, whose series carry the canary's requests.
    stable_ingress: String,
    /// `<namespace>-<service>-<port>`.
    canary_label: String,
    /// The blue-green preview Ingress.
    preview_ingress: String,
}

impl Selector {
    /// The new backend `target` of the route `namespace`/`route`.
    pub fn new(namespace: &str, route: &str, target: &Backend) -> Selector {
        let port = match &target.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        };
        Selector {
            namespace: namespace.to_owned(),
            stable_ingress: route.to_owned(),
            canary_label: format!("{namespace}-{}-{port}", target.service),
            preview_ingress: child_name(route, "-preview"),
        }
    }

    fn matches(&self, sample: &Sample) -> bool {
        if sample.label("namespace") != Some(self.namespace.as_str()) {
            return false;
        }
        let ingress = sample.label("ingress").unwrap_or_default();
        let canary = sample.label("canary").unwrap_or_default();
        (ingress == self.stable_ingress && canary == self.canary_label)
            || ingress == self.preview_ingress
    }
}

/// The counters of one series (one label combination, `le` aside).
#[derive(Clone, Debug, Default, PartialEq)]
struct Counters {
    requests: f64,
    /// Whether the series' status is 5xx.
    server_error: bool,
    /// Cumulative bucket counts by upper bound (`le`), as exposed.
    buckets: Vec<(f64, f64)>,
    /// The histogram's `_count`.
    count: f64,
}

/// What one proxy replica had counted for a rollout's new backend at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// By the series' labels (sorted, `le` left out), as text.
    series: BTreeMap<String, Counters>,
}

impl Snapshot {
    /// Picks the new backend's series out of one replica's scrape.
    pub fn new(samples: &[Sample], selector: &Selector) -> Snapshot {
        let mut series: BTreeMap<String, Counters> = BTreeMap::new();
        let bucket = format!("{DURATION}_bucket");
        let count = format!("{DURATION}_count");
        for sample in samples.iter().filter(|s| selector.matches(s)) {
            let key = series_key(sample);
            let name = sample.name.as_str();
            if name == REQUESTS {
                let entry = series.entry(key).or_default();
                entry.requests = sample.value;
                entry.server_error = sample
                    .label("status")
                    .is_some_and(|s| s.len() == 3 && s.starts_with('5'));
            } else if name == bucket {
                let Some(le) = sample.label("le").and_then(parse_value) else {
                    continue;
                };
                series
                    .entry(key)
                    .or_default()
                    .buckets
                    .push((le, sample.value));
            } else if name == count {
                series.entry(key).or_default().count = sample.value;
            }
        }
        Snapshot { series }
    }

    /// Scrapes the text of one replica (see [`parse`]) into a snapshot.
    pub fn parse(text: &str, selector: &Selector) -> Result<Snapshot, ParseError> {
        let samples = parse(text, |name| {
            name == REQUESTS
                || name
                    .strip_prefix(DURATION)
                    .is_some_and(|rest| rest == "_bucket" || rest == "_count")
        })?;
        Ok(Snapshot::new(&samples, selector))
    }
}

/// The labels that name a series, whatever the family: all but `le`, sorted.
fn series_key(sample: &Sample) -> String {
    let mut labels: Vec<&(String, String)> =
        sample.labels.iter().filter(|(n, _)| n != "le").collect();
    labels.sort();
    let mut key = String::new();
    for (name, value) in labels {
        key.push_str(name);
        key.push('=');
        key.push_str(&value.replace('\\', "\\\\").replace(',', "\\,"));
        key.push(',');
    }
    key
}

/// The new backend's traffic in one interval, summed over the proxy replicas.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub requests: f64,
    pub server_errors: f64,
    /// Latency observations by bucket upper bound (seconds), cumulative.
    buckets: BTreeMap<OrderedBound, f64>,
}

/// An `le` bound that sorts (bounds are never NaN: `parse_value` of a bucket bound is checked).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrderedBound(f64);

impl Eq for OrderedBound {}

impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Window {
    /// What happened between two scrapes of the same replicas. Replicas scraped only now (new,
    /// or unreachable last time) are left out: their counts span an unknown time. A series
    /// whose counters went down was reset (the proxy restarted): all of its counts are new.
    pub fn between(before: &HashMap<String, Snapshot>, now: &HashMap<String, Snapshot>) -> Window {
        let mut window = Window::default();
        for (replica, current) in now {
            let Some(previous) = before.get(replica) else {
                continue;
            };
            for (key, counters) in &current.series {
                let old = previous.series.get(key);
                let reset = old.is_some_and(|old| {
                    counters.requests < old.requests || counters.count < old.count
                });
                let base = match old {
                    Some(old) if !reset => old.clone(),
                    _ => Counters::default(),
                };
                window.add(counters, &base);
            }
        }
        window
    }

    fn add(&mut self, now: &Counters, before: &Counters) {
        let requests = (now.requests - before.requests).max(0.0);
        self.requests += requests;
        if now.server_error {
            self.server_errors += requests;
        }
        for &(le, cumulative) in &now.buckets {
            if le.is_nan() {
                continue;
            }
            let old = before
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c);
            *self.buckets.entry(OrderedBound(le)).or_default() += (cumulative - old).max(0.0);
        }
    }

    /// The latency below which `q` (0 to 1) of the interval's requests finished, interpolated
    /// linearly inside a bucket as PromQL's `histogram_quantile` does; `None` without
    /// observations or without the `+Inf` bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let mut buckets: Vec<(f64, f64)> = self.buckets.iter().map(|(b, c)| (b.0, *c)).collect();
        if buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
            return None;
        }
        // Cumulative counts never go down; summed deltas can, by a few, when a series was cut
        // off mid-scrape. As PromQL, take the running maximum.
        let mut highest = 0.0_f64;
        for (_, count) in &mut buckets {
            highest = highest.max(*count);
            *count = highest;
        }
        let total = buckets.last().map_or(0.0, |(_, c)| *c);
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let index = buckets.iter().position(|(_, c)| *c >= rank)?;
        let (upper, count) = buckets[index];
        if upper == f64::INFINITY {
            // Beyond the highest finite bound: that bound is all that is known.
            return match index {
                0 => None,
                _ => Some(buckets[index - 1].0),
            };
        }
        let (lower, below) = match index {
            0 if upper <= 0.0 => return Some(upper),
            0 => (0.0, 0.0),
            _ => buckets[index - 1],
        };
        let inside = count - below;
        if inside <= 0.0 {
            return Some(upper);
        }
        Some(lower + (upper - lower) * ((rank - below) / inside))
    }

    /// The measurement of `backend` at `time` (the latency at `percentile`, 0 to 100).
    pub fn measurement(
        &self,
        backend: &Backend,
        time: Timestamp,
        percentile: Option<f64>,
    ) -> Measurement {
        let requests = self.requests.round();
        let success_rate =
            (requests > 0.0).then(|| ((requests - self.server_errors) / requests).clamp(0.0, 1.0));
        let latency = percentile
            .and_then(|p| self.quantile(p / 100.0))
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        Measurement {
            backend: backend.clone(),
            time,
            // Counters are whole numbers; a float's rounding error is not a request.
            requests: if requests.is_finite() && requests > 0.0 {
                requests as u64
            } else {
                0
            },
            success_rate,
            latency,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests;
