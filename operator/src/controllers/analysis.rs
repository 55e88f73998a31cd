//! The IO of rollout analysis: scrape every proxy replica's `/metrics` (the endpoints of
//! `--proxy-service`, or the `--proxy-metrics-url`s), keep the last scrape of each rollout in
//! memory as the start of the next interval, and turn two scrapes into a [`Measurement`]
//! (`crate::rollout::metrics` does the arithmetic).
//!
//! Only the start of the current interval lives in memory. After an operator restart the first
//! due pass takes a fresh starting scrape and the interval after it is measured: one interval
//! is lost, never judged on made-up numbers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;
use switchyard_crds::Backend;
use tokio::sync::Mutex;

use crate::cli::Namespaced;
use crate::rollout::metrics::{Selector, Snapshot, Window};
use crate::rollout::{AnalysisDue, Measurement};

/// How long one replica may take to answer a scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest metrics page read (a proxy with very many Ingresses writes a few MB).
const MAX_BODY: usize = 64 << 20;
/// Status times have whole seconds, so an interval's end read back from status can come up
/// to a second early; a measurement waits at most this long for its interval to be complete.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Where the proxy's metrics are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsSource {
    /// `--proxy-metrics-url` (repeatable): each is one replica.
    Urls(Vec<String>),
    /// `--proxy-service NS/NAME`: every ready endpoint of the Service's `metrics` port (else
    /// its first port), through its EndpointSlices.
    Service(Namespaced),
    /// Neither flag: analysis cannot measure anything (every interval is Inconclusive).
    Off,
}

impl MetricsSource {
    /// From the operator's flags: the URLs win over the Service.
    pub fn new(urls: &[String], service: Option<&Namespaced>) -> MetricsSource {
        match (urls, service) {
            ([_, ..], _) => MetricsSource::Urls(urls.to_vec()),
            ([], Some(service)) => MetricsSource::Service(service.clone()),
            ([], None) => MetricsSource::Off,
        }
    }
}

/// The start of a rollout's current analysis interval.
struct Baseline {
    backend: Backend,
    since: Timestamp,
    taken: Instant,
    /// By replica URL.
    replicas: HashMap<String, Snapshot>,
}

impl Baseline {
    /// Whether this scrape belongs to the rollout `due` describes. Status times are written
    /// with whole seconds, so the rollout's start read back may differ by less than one.
    fn belongs_to(&self, due: &AnalysisDue) -> bool {
        self.backend == due.backend
            && self.since.duration_since(due.since).abs() < jiff::SignedDuration::from_secs(1)
    }
}

/// Scrapes and remembers the start of each rollout's interval.
pub struct Analysis {
    source: MetricsSource,
    client: kube::Client,
    http: HyperClient<HttpConnector, Empty<Bytes>>,
    /// By route uid.
    baselines: Mutex<HashMap<String, Baseline>>,
}

/// A rollout being measured.
pub struct Subject<'a> {
    /// The route's uid (a route deleted and created again starts afresh).
    pub uid: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Analysis {
    pub fn new(client: kube::Client, source: MetricsSource) -> Analysis {
        Analysis {
            source,
            client,
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            baselines: Mutex::default(),
        }
    }

    /// The measurement of the interval that ended now, when `due` says one is due; `None`
    /// when there is no start to measure from yet (one is taken now).
    pub async fn measure(&self, subject: &Subject<'_>, due: &AnalysisDue) -> Option<Measurement> {
        let started = self
            .baselines
            .lock()
            .await
            .get(subject.uid)
            .filter(|b| b.belongs_to(due))
            .map(|b| b.taken);
        if let Some(started) = started {
            let left = (started + due.interval).saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(MAX_WAIT)).await;
        }
        let selector = Selector::new(subject.namespace, subject.name, &due.backend);
        let taken = Instant::now();
        let (now, errors) = self.scrape(&selector).await;
        let time = Timestamp::now();
        let route = format!("{}/{}", subject.namespace, subject.name);
        for error in &errors {
            tracing::warn!(%route, %error, "analysis: a proxy replica could not be scraped");
        }
        let mut baselines = self.baselines.lock().await;
        let previous = baselines
            .remove(subject.uid)
            .filter(|b| b.belongs_to(due))
            .map(|b| b.replicas);
        let common = previous
            .as_ref()
            .is_some_and(|p| now.keys().any(|replica| p.contains_key(replica)));
        let measurement = match previous {
            _ if now.is_empty() => Some(Measurement::failed(
                due.backend.clone(),
                time,
                if errors.is_empty() {
                    self.nothing_to_scrape()
                } else {
                    errors.join("; ")
                },
            )),
            Some(previous) if common => {
                let window = Window::between(&previous, &now);
                tracing::debug!(%route, requests = window.requests, errors = window.server_errors, "analysis: interval measured");
                Some(window.measurement(&due.backend, time, due.percentile))
            }
            _ => {
                tracing::info!(%route, "analysis: no earlier scrape of this rollout; measuring from now");
                None
            }
        };
        baselines.insert(
            subject.uid.to_owned(),
            Baseline {
                backend: due.backend.clone(),
                since: due.since,
                taken,
                replicas: now,
            },
        );
        measurement
    }

    /// After a pass: starts the first interval of a rollout that analysis now follows, and
    /// forgets rollouts it does not follow any more.
    pub async fn follow(&self, subject: &Subject<'_>, due: Option<&AnalysisDue>) {
        let Some(due) = due else {
            self.baselines.lock().await.remove(subject.uid);
            return;
        };
        let current = self
            .baselines
            .lock()
            .await
            .get(subject.uid)
            .is_some_and(|b| b.belongs_to(due));
        if current {
            return;
        }
        let selector = Selector::new(subject.namespace, subject.name, &due.backend);
        let taken = Instant::now();
        let (replicas, errors) = self.scrape(&selector).await;
        for error in &errors {
            tracing::warn!(route = %format!("{}/{}", subject.namespace, subject.name), %error,
                "analysis: a proxy replica could not be scraped");
        }
        self.baselines.lock().await.insert(
            subject.uid.to_owned(),
            Baseline {
                backend: due.backend.clone(),
                since: due.since,
                taken,
                replicas,
            },
        );
    }

    fn nothing_to_scrape(&self) -> String {
        match &self.source {
            MetricsSource::Off => "the operator has no proxy metrics to read (start it with \
                                   --proxy-service or --proxy-metrics-url)"
                .into(),
            MetricsSource::Service(svc) => format!(
                "--proxy-service {}/{} has no ready endpoints to scrape",
                svc.namespace, svc.name
            ),
            MetricsSource::Urls(_) => "no --proxy-metrics-url to scrape".into(),
        }
    }

    /// Every replica's snapshot by URL, and what went wrong with the others.
    async fn scrape(&self, selector: &Selector) -> (HashMap<String, Snapshot>, Vec<String>) {
        let urls = match self.urls().await {
            Ok(urls) => urls,
            Err(error) => return (HashMap::new(), vec![error]),
        };
        let results =
            futures::future::join_all(urls.iter().map(|url| self.scrape_one(url, selector))).await;
        let mut ok = HashMap::new();
        let mut errors = Vec::new();
        for (url, result) in urls.into_iter().zip(results) {
            match result {
                Ok(snapshot) => {
                    ok.insert(url, snapshot);
                }
                Err(error) => errors.push(format!("{url}: {error}")),
            }
        }
        (ok, errors)
    }

    async fn scrape_one(&self, url: &str, selector: &Selector) -> Result<Snapshot, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let fetch = async {
            let response = self.http.get(uri).await.map_err(|e| e.to_string())?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?
                .to_bytes();
            String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_string())
        };
        let text = tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("no answer within {}s", SCRAPE_TIMEOUT.as_secs()))??;
        Snapshot::parse(&text, selector).map_err(|e| format!("not Prometheus text: {e}"))
    }

    async fn urls(&self) -> Result<Vec<String>, String> {
        match &self.source {
            MetricsSource::Off => Ok(Vec::new()),
            MetricsSource::Urls(urls) => Ok(urls.clone()),
            MetricsSource::Service(svc) => {
                let slices: Api<EndpointSlice> =
                    Api::namespaced(self.client.clone(), &svc.namespace);
                let list = slices
                    .list(
                        &ListParams::default()
                            .labels(&format!("kubernetes.io/service-name={}", svc.name)),
                    )
                    .await
                    .map_err(|e| {
                        format!(
                            "listing the EndpointSlices of --proxy-service {}/{}: {e}",
                            svc.namespace, svc.name
                        )
                    })?;
                Ok(metrics_urls(&list.items))
            }
        }
    }
}

/// `http://<address>:<port>/metrics` for every ready endpoint, on the port named `metrics`
/// (else the slice's first port).
pub fn metrics_urls(slices: &[EndpointSlice]) -> Vec<String> {
    let mut urls = Vec::new();
    for slice in slices {
        let ports = slice.ports.as_deref().unwrap_or_default();
        let Some(port) = ports
            .iter()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .or(ports.first())
            .and_then(|p| p.port)
        else {
            continue;
        };
        let ipv6 = slice.address_type == "IPv6";
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                let url = if ipv6 {
                    format!("http://[{address}]:{port}/metrics")
                } else {
                    format!("http://{address}:{port}/metrics")
                };
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_win_over_the_service() {
        let svc = Namespaced {
            namespace: "ingress".into(),
            name: "switchyard-proxy-metrics".into(),
        };
        let urls = vec!["http://127.0.0.1:10254/metrics".to_owned()];
        assert_eq!(
            MetricsSource::new(&urls, Some(&svc)),
            MetricsSource::Urls(urls.clone())
        );
        assert_eq!(
            MetricsSource::new(&[], Some(&svc)),
            MetricsSource::Service(svc)
        );
        assert_eq!(MetricsSource::new(&[], None), MetricsSource::Off);
    }

    #[test]
    fn ready_endpoints_on_the_metrics_port() {
        let slices: Vec<EndpointSlice> = serde_json::from_value(serde_json::json!([
            {
                "metadata": {"name": "proxy-metrics-abc"},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 10254}],
                "endpoints": [
                    {"addresses": ["10.0.0.7"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.8"], "conditions": {"ready": false}},
                    {"addresses": ["10.0.0.9"]}
                ]
            },
            {
                "metadata": {"name": "proxy-metrics-v6"},
                "addressType": "IPv6",
                "ports": [{"port": 10254}],
                "endpoints": [{"addresses": ["fd00::7"]}]
            },
            {
                "metadata": {"name": "no-ports"},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.10"]}]
            }
        ]))
        .expect("slices");
        assert_eq!(
            metrics_urls(&slices),
            vec![
                "http://10.0.0.7:10254/metrics",
                "http://10.0.0.9:10254/metrics",
                "http://[fd00::7]:10254/metrics",
            ]
        );
    }
}
