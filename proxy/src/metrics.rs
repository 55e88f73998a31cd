//! Prometheus metrics. ingress-nginx's names and labels where it has one, exposed in the
//! Prometheus text format line for line as its Go client writes them: counters without a
//! `_total` suffix, labels in alphabetical order, help text as given.

use std::fmt::{self, Write as _};
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, text::encode_registry,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// A counter whose sample carries its family name unchanged. prometheus-client's own
/// `Counter` always appends `_total`, which ingress-nginx's metrics do not have.
#[derive(Clone, Debug, Default)]
pub struct PlainCounter(Counter<u64, AtomicU64>);

impl PlainCounter {
    pub fn inc(&self) {
        self.0.inc();
    }
}

impl TypedMetric for PlainCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for PlainCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        // Gauge encoding writes `name{labels} value` with no suffix; the TYPE line still says
        // counter (see `Exact`).
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Registers a metric under an exact name and help text: `Registry::register` appends a `.` to
/// help texts, which would differ from ingress-nginx's.
#[derive(Debug)]
struct Exact<M> {
    name: &'static str,
    help: &'static str,
    metric: M,
}

impl<M: EncodeMetric + fmt::Debug + Send + Sync + 'static> Collector for Exact<M> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // Like the Go client, a family with no series is not exposed at all.
        if self.metric.is_empty() {
            return Ok(());
        }
        let metric =
            encoder.encode_descriptor(self.name, self.help, None, self.metric.metric_type())?;
        self.metric.encode(metric)
    }
}

/// ingress-nginx's request labels; fields in alphabetical order, as the Go client sorts them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub canary: String,
    pub controller_class: String,
    pub controller_namespace: String,
    pub controller_pod: String,
    pub host: String,
    pub ingress: String,
    pub method: String,
    pub namespace: String,
    pub path: String,
    pub service: String,
    pub status: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, PlainCounter>,
    pub config_reloads: PlainCounter,
    pub config_last_reload_timestamp: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub config_problems: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Constant labels of every request series.
    pub controller_class: String,
    pub controller_namespace: String,
    pub controller_pod: String,
}

impl Metrics {
    pub fn new(controller_class: &str, controller_namespace: &str, controller_pod: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, PlainCounter>::default();
        registry.register_collector(Box::new(Exact {
            name: "nginx_ingress_controller_requests",
            help: "The total number of client requests",
            metric: requests.clone(),
        }));
        let config_reloads = PlainCounter::default();
        registry.register_collector(Box::new(Exact {
            name: "switchyard_config_reloads_total",
            help: "Route tables compiled and swapped in since start",
            metric: config_reloads.clone(),
        }));
        let config_last_reload_timestamp = Gauge::default();
        registry.register_collector(Box::new(Exact {
            name: "switchyard_config_last_reload_timestamp_seconds",
            help: "When the current route table was swapped in (Unix time)",
            metric: config_last_reload_timestamp.clone(),
        }));
        let config_problems = Gauge::default();
        registry.register_collector(Box::new(Exact {
            name: "switchyard_config_problems",
            help: "Warnings and errors found by the last compile",
            metric: config_problems.clone(),
        }));
        Self {
            registry,
            requests,
            config_reloads,
            config_last_reload_timestamp,
            config_problems,
            controller_class: controller_class.to_owned(),
            controller_namespace: controller_namespace.to_owned(),
            controller_pod: controller_pod.to_owned(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4: no `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = encode_registry(&mut out, &self.registry) {
            let _ = writeln!(out, "# encoding failed: {err}");
        }
        out
    }
}

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_counter_is_exposed_like_ingress_nginx() {
        let metrics = Metrics::new("switchyard.dev/ingress-controller", "ns", "pod-1");
        assert!(
            !metrics
                .render()
                .contains("nginx_ingress_controller_requests")
        );
        let labels = RequestLabels {
            canary: String::new(),
            controller_class: metrics.controller_class.clone(),
            controller_namespace: metrics.controller_namespace.clone(),
            controller_pod: metrics.controller_pod.clone(),
            host: "demo.example".into(),
            ingress: "demo".into(),
            method: "GET".into(),
            namespace: "apps".into(),
            path: "/".into(),
            service: "blue".into(),
            status: "200".into(),
        };
        metrics.requests.get_or_create(&labels).inc();
        metrics.requests.get_or_create(&labels).inc();
        metrics.config_reloads.inc();
        let text = metrics.render();
        let expected = "# HELP nginx_ingress_controller_requests The total number of client requests\n\
             # TYPE nginx_ingress_controller_requests counter\n\
             nginx_ingress_controller_requests{canary=\"\",controller_class=\"switchyard.dev/ingress-controller\",controller_namespace=\"ns\",controller_pod=\"pod-1\",host=\"demo.example\",ingress=\"demo\",method=\"GET\",namespace=\"apps\",path=\"/\",service=\"blue\",status=\"200\"} 2\n";
        assert!(text.starts_with(expected), "{text}");
        assert!(text.contains("# TYPE switchyard_config_reloads_total counter\nswitchyard_config_reloads_total 1\n"), "{text}");
        assert!(!text.contains("# EOF"));
    }
}
