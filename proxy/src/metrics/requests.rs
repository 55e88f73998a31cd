//! ingress-nginx's per-request metrics (`nginx_ingress_controller_requests` and its histograms),
//! recorded without a lock on the hot path and written out exactly as its Go client writes
//! them.
//!
//! Each route gets its [`RouteSeries`] when its table is swapped in; a request then finds its
//! series by (host, method, status) in a map that is read without locking and copied on the
//! rare insert of a new combination.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::gofmt::{push_count, push_float, push_label_value};

/// Prometheus's default buckets, ingress-nginx's `--time-buckets` default.
const TIME_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// ingress-nginx's `--length-buckets` default: 10 buckets of 10 bytes.
const LENGTH_BUCKETS: [f64; 10] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0];
/// ingress-nginx's `--size-buckets` default: powers of ten from 10 bytes.
const SIZE_BUCKETS: [f64; 7] = [10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7];

/// A histogram updated with atomics only.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    /// Per bucket, not cumulative; the last slot is +Inf.
    buckets: [AtomicU64; N],
    overflow: AtomicU64,
    count: AtomicU64,
    /// f64 bits.
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn observe(&self, value: f64) {
        match self.bounds.iter().position(|bound| value <= *bound) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// `_bucket` lines (cumulative, then +Inf), `_sum` and `_count`, as the Go client orders
    /// them.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = write!(out, "{name}_bucket{{{labels},le=\"");
            push_float(out, *bound);
            out.push_str("\"} ");
            push_count(out, cumulative);
            out.push('\n');
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = write!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} ");
        push_count(out, cumulative);
        let _ = write!(out, "\n{name}_sum{{{labels}}} ");
        push_float(out, f64::from_bits(self.sum.load(Ordering::Relaxed)));
        let _ = write!(out, "\n{name}_count{{{labels}}} ");
        push_count(out, self.count());
        out.push('\n');
    }
}

/// What one finished request contributes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observation {
    pub request_time: Duration,
    pub request_size: u64,
    pub bytes_sent: u64,
    /// Upstream timings; `None` when the proxy answered itself.
    pub upstream_header_time: Option<Duration>,
    pub upstream_response_time: Option<Duration>,
}

/// The counters of one label combination.
#[derive(Debug)]
pub struct Series {
    requests: AtomicU64,
    request_duration: Histogram<11>,
    header_duration: Histogram<11>,
    response_duration: Histogram<11>,
    request_size: Histogram<10>,
    response_size: Histogram<10>,
    bytes_sent: Histogram<7>,
}

impl Series {
    fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            request_duration: Histogram::new(&TIME_BUCKETS),
            header_duration: Histogram::new(&TIME_BUCKETS),
            response_duration: Histogram::new(&TIME_BUCKETS),
            request_size: Histogram::new(&LENGTH_BUCKETS),
            response_size: Histogram::new(&LENGTH_BUCKETS),
            bytes_sent: Histogram::new(&SIZE_BUCKETS),
        }
    }

    pub fn record(&self, o: &Observation) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.request_duration.observe(o.request_time.as_secs_f64());
        self.request_size.observe(o.request_size as f64);
        self.response_size.observe(o.bytes_sent as f64);
        self.bytes_sent.observe(o.bytes_sent as f64);
        if let Some(t) = o.upstream_header_time {
            self.header_duration.observe(t.as_secs_f64());
        }
        if let Some(t) = o.upstream_response_time {
            self.response_duration.observe(t.as_secs_f64());
        }
    }
}

/// The labels a route fixes. `host` is not among them: one route can serve several hosts
/// (a defaultBackend) and the host comes with the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteLabels {
    pub canary: String,
    pub ingress: String,
    pub namespace: String,
    pub path: String,
    pub service: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    host: Arc<str>,
    method: &'static str,
    status: u16,
}

/// The series of one route, by host, method and status.
#[derive(Debug)]
pub struct RouteSeries {
    labels: RouteLabels,
    series: ArcSwap<HashMap<SeriesKey, Arc<Series>>>,
}

impl RouteSeries {
    /// The series for this request; `host` is the matched host's label.
    pub fn get(&self, host: &Arc<str>, method: &'static str, status: u16) -> Arc<Series> {
        let key = SeriesKey {
            host: host.clone(),
            method,
            status,
        };
        if let Some(series) = self.series.load().get(&key) {
            return series.clone();
        }
        // A new combination: copy the map once. Concurrent inserts retry; none is lost.
        let mut created = None;
        self.series.rcu(|current| {
            let mut next = HashMap::clone(current);
            let series = next
                .entry(key.clone())
                .or_insert_with(|| {
                    created
                        .get_or_insert_with(|| Arc::new(Series::new()))
                        .clone()
                })
                .clone();
            created = Some(series);
            next
        });
        created.unwrap_or_else(|| Arc::new(Series::new()))
    }
}

/// All request series, and their exposition.
#[derive(Debug)]
pub struct RequestMetrics {
    routes: Mutex<HashMap<RouteLabels, Arc<RouteSeries>>>,
    /// `controller_class="…",controller_namespace="…",controller_pod="…"`, escaped once.
    constant_labels: String,
}

/// The families in the order the Go client writes them (sorted by name).
const FAMILIES: [(&str, &str, &str); 7] = [
    (
        "nginx_ingress_controller_bytes_sent",
        "DEPRECATED The number of bytes sent to a client",
        "histogram",
    ),
    (
        "nginx_ingress_controller_header_duration_seconds",
        "The time spent on receiving first header from the upstream server",
        "histogram",
    ),
    (
        "nginx_ingress_controller_request_duration_seconds",
        "The request processing time in milliseconds",
        "histogram",
    ),
    (
        "nginx_ingress_controller_request_size",
        "The request length (including request line, header, and request body)",
        "histogram",
    ),
    (
        "nginx_ingress_controller_requests",
        "The total number of client requests",
        "counter",
    ),
    (
        "nginx_ingress_controller_response_duration_seconds",
        "The time spent on receiving the response from the upstream server",
        "histogram",
    ),
    (
        "nginx_ingress_controller_response_size",
        "The response length (including request line, header, and request body)",
        "histogram",
    ),
];

impl RequestMetrics {
    pub fn new(controller_class: &str, controller_namespace: &str, controller_pod: &str) -> Self {
        let mut constant_labels = String::new();
        for (name, value) in [
            ("controller_class", controller_class),
            ("controller_namespace", controller_namespace),
            ("controller_pod", controller_pod),
        ] {
            if !constant_labels.is_empty() {
                constant_labels.push(',');
            }
            let _ = write!(constant_labels, "{name}=\"");
            push_label_value(&mut constant_labels, value);
            constant_labels.push('"');
        }
        Self {
            routes: Mutex::new(HashMap::new()),
            constant_labels,
        }
    }

    /// The series of a route; called when a table is swapped in, not per request.
    pub fn route(&self, labels: &RouteLabels) -> Arc<RouteSeries> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes
            .entry(labels.clone())
            .or_insert_with(|| {
                Arc::new(RouteSeries {
                    labels: labels.clone(),
                    series: ArcSwap::from_pointee(HashMap::new()),
                })
            })
            .clone()
    }

    /// Forgets the series of Ingresses that are no longer served, as ingress-nginx removes the
    /// metrics of removed Ingresses. A served Ingress keeps the series of routes it changed,
    /// so counts a scrape has not seen yet are not lost mid-rollout.
    pub fn forget_unserved(&self, served: &HashSet<(&str, &str)>) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.retain(|labels, series| {
            Arc::strong_count(series) > 1
                || served.contains(&(labels.namespace.as_str(), labels.ingress.as_str()))
        });
    }

    /// The request families in the Go client's text format, each as (name, text).
    pub fn families(&self, out: &mut Vec<(&'static str, String)>) {
        let mut rows: Vec<(String, Arc<Series>)> = Vec::new();
        {
            let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            for route in routes.values() {
                for (key, series) in route.series.load().iter() {
                    rows.push((self.label_text(&route.labels, key), series.clone()));
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        // The Go client sorts series by their label values in label-name order; the label text
        // starts with the same names in the same order, so sorting the text sorts the same way
        // for every value that has no quote or backslash.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, help, kind) in FAMILIES {
            let mut body = String::new();
            for (labels, series) in &rows {
                match name {
                    "nginx_ingress_controller_requests" => {
                        let _ = write!(body, "{name}{{{labels}}} ");
                        push_count(&mut body, series.requests.load(Ordering::Relaxed));
                        body.push('\n');
                    }
                    "nginx_ingress_controller_bytes_sent" => {
                        series.bytes_sent.write(&mut body, name, labels)
                    }
                    "nginx_ingress_controller_request_size" => {
                        series.request_size.write(&mut body, name, labels)
                    }
                    "nginx_ingress_controller_response_size" => {
                        series.response_size.write(&mut body, name, labels)
                    }
                    "nginx_ingress_controller_request_duration_seconds" => {
                        series.request_duration.write(&mut body, name, labels)
                    }
                    _ => {
                        let histogram = if name.contains("header_duration") {
                            &series.header_duration
                        } else {
                            &series.response_duration
                        };
                        // Upstream timings exist only for requests that reached an upstream.
                        if histogram.count() > 0 {
                            histogram.write(&mut body, name, labels);
                        }
                    }
                }
            }
            // Like the Go client, a family without series is not written at all.
            if !body.is_empty() {
                out.push((
                    name,
                    format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{body}"),
                ));
            }
        }
    }

    fn label_text(&self, route: &RouteLabels, key: &SeriesKey) -> String {
        let mut text = String::with_capacity(256);
        let label = |text: &mut String, name: &str, value: &str| {
            if !text.is_empty() {
                text.push(',');
            }
            let _ = write!(text, "{name}=\"");
            push_label_value(text, value);
            text.push('"');
        };
        label(&mut text, "canary", &route.canary);
        text.push(',');
        text.push_str(&self.constant_labels);
        label(&mut text, "host", &key.host);
        label(&mut text, "ingress", &route.ingress);
        label(&mut text, "method", key.method);
        label(&mut text, "namespace", &route.namespace);
        label(&mut text, "path", &route.path);
        label(&mut text, "service", &route.service);
        label(&mut text, "status", &key.status.to_string());
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(metrics: &RequestMetrics) -> String {
        let mut families = Vec::new();
        metrics.families(&mut families);
        families.into_iter().map(|(_, text)| text).collect()
    }

    fn route_labels() -> RouteLabels {
        RouteLabels {
            canary: String::new(),
            ingress: "demo".into(),
            namespace: "apps".into(),
            path: "/".into(),
            service: "blue".into(),
        }
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let h = Histogram::new(&TIME_BUCKETS);
        for v in [0.001, 0.02, 0.02, 30.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"1\"");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "x_bucket{a=\"1\",le=\"0.005\"} 1");
        assert_eq!(lines[1], "x_bucket{a=\"1\",le=\"0.01\"} 1");
        assert_eq!(lines[2], "x_bucket{a=\"1\",le=\"0.025\"} 3");
        assert_eq!(lines[10], "x_bucket{a=\"1\",le=\"10\"} 3");
        assert_eq!(lines[11], "x_bucket{a=\"1\",le=\"+Inf\"} 4");
        assert_eq!(lines[12], "x_sum{a=\"1\"} 30.041");
        assert_eq!(lines[13], "x_count{a=\"1\"} 4");
    }

    #[test]
    fn one_request_is_exposed_like_ingress_nginx() {
        let metrics = RequestMetrics::new("switchyard.dev/ingress-controller", "ns", "pod-1");
        let route = metrics.route(&route_labels());
        let host: Arc<str> = Arc::from("demo.example");
        route.get(&host, "GET", 200).record(&Observation {
            request_time: Duration::from_millis(3),
            request_size: 75,
            bytes_sent: 120,
            upstream_header_time: Some(Duration::from_millis(2)),
            upstream_response_time: Some(Duration::from_millis(2)),
        });
        let out = render(&metrics);
        let labels = "canary=\"\",controller_class=\"switchyard.dev/ingress-controller\",controller_namespace=\"ns\",controller_pod=\"pod-1\",host=\"demo.example\",ingress=\"demo\",method=\"GET\",namespace=\"apps\",path=\"/\",service=\"blue\",status=\"200\"";
        assert!(out.contains(&format!(
            "# HELP nginx_ingress_controller_requests The total number of client requests\n\
             # TYPE nginx_ingress_controller_requests counter\n\
             nginx_ingress_controller_requests{{{labels}}} 1\n"
        )));
        assert!(out.contains(&format!(
            "# TYPE nginx_ingress_controller_request_duration_seconds histogram\n\
             nginx_ingress_controller_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1\n"
        )));
        assert!(out.contains(&format!(
            "nginx_ingress_controller_request_duration_seconds_sum{{{labels}}} 0.003\n\
             nginx_ingress_controller_request_duration_seconds_count{{{labels}}} 1\n"
        )));
        assert!(out.contains(&format!(
            "nginx_ingress_controller_response_size_bucket{{{labels},le=\"100\"}} 0\n\
             nginx_ingress_controller_response_size_bucket{{{labels},le=\"+Inf\"}} 1\n\
             nginx_ingress_controller_response_size_sum{{{labels}}} 120\n"
        )));
        assert!(out.contains(&format!(
            "nginx_ingress_controller_bytes_sent_bucket{{{labels},le=\"1e+06\"}} 1\n"
        )));
        // Families come sorted by name, as the Go registry gathers them.
        let order: Vec<usize> = FAMILIES
            .iter()
            .map(|(name, _, _)| out.find(&format!("# HELP {name} ")).unwrap_or(usize::MAX))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn series_are_split_by_host_method_and_status_and_sorted() {
        let metrics = RequestMetrics::new("c", "ns", "pod");
        let route = metrics.route(&route_labels());
        let b: Arc<str> = Arc::from("b.example");
        let a: Arc<str> = Arc::from("a.example");
        let o = Observation::default();
        route.get(&b, "GET", 200).record(&o);
        route.get(&a, "POST", 503).record(&o);
        route.get(&a, "GET", 200).record(&o);
        route.get(&a, "GET", 200).record(&o);
        let out = render(&metrics);
        let requests: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("nginx_ingress_controller_requests{"))
            .collect();
        assert_eq!(requests.len(), 3, "{out}");
        assert!(
            requests[0].contains("host=\"a.example\"")
                && requests[0].contains("method=\"GET\"")
                && requests[0].ends_with(" 2")
        );
        assert!(
            requests[1].contains("host=\"a.example\"") && requests[1].contains("status=\"503\"")
        );
        assert!(requests[2].contains("host=\"b.example\""));
        // Nothing reached an upstream: no upstream timing series.
        assert!(!out.contains("header_duration_seconds"));
    }

    #[test]
    fn series_of_ingresses_no_longer_served_are_forgotten() {
        let metrics = RequestMetrics::new("c", "ns", "pod");
        let held = metrics.route(&route_labels());
        let host: Arc<str> = Arc::from("h");
        held.get(&host, "GET", 200).record(&Observation::default());
        metrics.forget_unserved(&HashSet::new());
        let out = render(&metrics);
        assert!(out.contains("nginx_ingress_controller_requests{"));
        drop(held);
        // The Ingress is still served (another of its routes, say): kept.
        metrics.forget_unserved(&HashSet::from([("apps", "demo")]));
        assert!(!render(&metrics).is_empty());
        metrics.forget_unserved(&HashSet::new());
        let out = render(&metrics);
        assert!(out.is_empty(), "{out}");
    }
}
