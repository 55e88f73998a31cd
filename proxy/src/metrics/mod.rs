//! Prometheus metrics. Where ingress-nginx has a name, ours is the same and is written line for
//! line as its Go client writes it (dashboards, alerts, Flagger and Argo analyses keep working);
//! what it has no name for is `switchyard_*`, through prometheus-client.

mod gofmt;
pub mod requests;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use requests::{Observation, RequestMetrics, RouteLabels, RouteSeries, Series};

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: RequestMetrics,
    pub config_reloads: Counter,
    pub config_problems: Gauge,
    pub config_routes: Gauge,
    pub open_connections: Gauge,
    pub connections_accepted: Counter,
    pub access_log_dropped: Counter,
    /// Unix time of the last swap; also exposed under ingress-nginx's reload metric names.
    last_reload: AtomicI64,
    reloads: AtomicU64,
    /// The constant labels, escaped, for the controller-level ingress-nginx families.
    constant_labels: String,
}

impl Metrics {
    pub fn new(controller_class: &str, controller_namespace: &str, controller_pod: &str) -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let config_reloads = Counter::default();
        registry.register(
            "config_reloads",
            "Route tables compiled and swapped in since start",
            config_reloads.clone(),
        );
        let config_problems = Gauge::default();
        registry.register(
            "config_problems",
            "Warnings and errors found by the last compile",
            config_problems.clone(),
        );
        let config_routes = Gauge::default();
        registry.register(
            "config_routes",
            "Paths in the route table being served",
            config_routes.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now (HTTP and HTTPS)",
            open_connections.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Client connections accepted since start",
            connections_accepted.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the log writer could not keep up",
            access_log_dropped.clone(),
        );
        let mut constant_labels = String::new();
        let _ = write!(constant_labels, "controller_class=\"");
        gofmt::push_label_value(&mut constant_labels, controller_class);
        let _ = write!(constant_labels, "\",controller_namespace=\"");
        gofmt::push_label_value(&mut constant_labels, controller_namespace);
        let _ = write!(constant_labels, "\",controller_pod=\"");
        gofmt::push_label_value(&mut constant_labels, controller_pod);
        constant_labels.push('"');
        Self {
            registry,
            requests: RequestMetrics::new(controller_class, controller_namespace, controller_pod),
            config_reloads,
            config_problems,
            config_routes,
            open_connections,
            connections_accepted,
            access_log_dropped,
            last_reload: AtomicI64::new(0),
            reloads: AtomicU64::new(0),
            constant_labels,
        }
    }

    /// A new route table is in place.
    pub fn table_swapped(&self, unix_time: i64, problems: i64, routes: i64) {
        self.config_reloads.inc();
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.config_problems.set(problems);
        self.config_routes.set(routes);
        self.last_reload.store(unix_time, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4: no `# EOF`).
    pub fn render(&self) -> String {
        let mut families: Vec<(&'static str, String)> = Vec::new();
        self.requests.families(&mut families);
        if self.reloads.load(Ordering::Relaxed) > 0 {
            // A swap cannot half-fail here (bad objects are skipped, not fatal), so the last
            // "reload" always succeeded.
            let labels = &self.constant_labels;
            families.push((
                "nginx_ingress_controller_config_last_reload_successful",
                format!(
                    "# HELP nginx_ingress_controller_config_last_reload_successful Whether the last configuration reload attempt was successful\n\
                     # TYPE nginx_ingress_controller_config_last_reload_successful gauge\n\
                     nginx_ingress_controller_config_last_reload_successful{{{labels}}} 1\n"
                ),
            ));
            let mut timestamp = format!(
                "# HELP nginx_ingress_controller_config_last_reload_successful_timestamp_seconds Timestamp of the last successful configuration reload.\n\
                 # TYPE nginx_ingress_controller_config_last_reload_successful_timestamp_seconds gauge\n\
                 nginx_ingress_controller_config_last_reload_successful_timestamp_seconds{{{labels}}} "
            );
            gofmt::push_float(
                &mut timestamp,
                self.last_reload.load(Ordering::Relaxed) as f64,
            );
            timestamp.push('\n');
            families.push((
                "nginx_ingress_controller_config_last_reload_successful_timestamp_seconds",
                timestamp,
            ));
        }
        families.sort_by_key(|(name, _)| *name);
        let mut out: String = families.into_iter().map(|(_, text)| text).collect();
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
    fn controller_families_carry_the_constant_labels_and_switchyard_ones_follow() {
        let metrics = Metrics::new("switchyard.dev/ingress-controller", "ns", "pod-1");
        assert!(!metrics.render().contains("nginx_ingress_controller"));
        metrics.table_swapped(1_700_000_000, 2, 5);
        let text = metrics.render();
        assert!(text.contains("nginx_ingress_controller_config_last_reload_successful{controller_class=\"switchyard.dev/ingress-controller\",controller_namespace=\"ns\",controller_pod=\"pod-1\"} 1\n"), "{text}");
        assert!(text.contains("nginx_ingress_controller_config_last_reload_successful_timestamp_seconds{controller_class=\"switchyard.dev/ingress-controller\",controller_namespace=\"ns\",controller_pod=\"pod-1\"} 1.7e+09\n"), "{text}");
        assert!(
            text.contains("switchyard_config_reloads_total 1\n"),
            "{text}"
        );
        assert!(text.contains("switchyard_config_problems 2\n"), "{text}");
        assert!(!text.contains("# EOF"));
    }
}
