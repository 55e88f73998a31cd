//! What a request leaves behind when its response ends: its metrics series updated and its
//! access log line queued. Everything here was captured as cheap clones while the request ran.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Method, Uri, header};

use crate::access_log::{AccessLog, Entry};
use crate::apply::Shared;
use crate::limits::InFlight;
use crate::metrics::Observation;
use crate::routes::Route;

/// What the access log needs of the request, captured as it arrives.
pub use crate::access_log::RequestLog as LogFields;

/// What the proxy learnt from the upstream, when there was one.
#[derive(Default)]
pub struct UpstreamOutcome {
    pub addr: Option<Authority>,
    pub status: Option<u16>,
    /// When the request went to the upstream, and how long its response headers took.
    pub sent_at: Option<Instant>,
    pub header_time: Option<Duration>,
}

pub struct Finish {
    pub shared: Arc<Shared>,
    pub access_log: Option<AccessLog>,
    pub log: Option<LogFields>,
    pub route: Arc<Route>,
    /// The request went to the route's canary.
    pub canary: bool,
    pub host: Arc<str>,
    pub method: &'static str,
    pub status: u16,
    pub started: Instant,
    pub request_length: u64,
    pub response_head_length: u64,
    pub request_id: Option<HeaderValue>,
    pub upstream: UpstreamOutcome,
    /// The `limit-connections` slot, given back when the response ends.
    pub _in_flight: Option<InFlight>,
}

impl Finish {
    /// `body_bytes`: the response body bytes handed to the client.
    pub fn record(self, body_bytes: u64) {
        let now = Instant::now();
        let request_time = now.duration_since(self.started);
        let upstream_response_time = self.upstream.sent_at.map(|t| now.duration_since(t));
        let cached = match (&self.route.canary, self.canary) {
            (Some(canary), true) => canary.series.get(),
            _ => self.route.series.get(),
        };
        let series = match cached {
            Some(series) => Some(series.clone()),
            // Only routes of a table that was never swapped in (none in practice) or the
            // controller's own 404, which has no Ingress to count against.
            None => {
                let labels = if self.canary {
                    self.route.canary_metric_labels()
                } else {
                    self.route.metric_labels()
                };
                labels.map(|labels| self.shared.metrics.requests.route(&labels))
            }
        };
        if let Some(series) = series {
            series
                .get(&self.host, self.method, self.status)
                .record(&Observation {
                    request_time,
                    request_size: self.request_length,
                    bytes_sent: self.response_head_length + body_bytes,
                    upstream_header_time: self.upstream.header_time,
                    upstream_response_time,
                });
        }
        if let (Some(log), Some(fields)) = (&self.access_log, self.log) {
            log.log(Entry {
                request: fields,
                time: jiff::Timestamp::now(),
                host: self.host,
                status: self.status,
                body_bytes_sent: body_bytes,
                bytes_sent: self.response_head_length + body_bytes,
                request_length: self.request_length,
                request_time,
                request_id: self.request_id,
                route: self.route,
                canary: self.canary,
                upstream_addr: self.upstream.addr,
                upstream_status: self.upstream.status,
                upstream_response_time,
                upstream_header_time: self.upstream.header_time,
            });
        }
    }
}

/// The size of a request's line and headers, as nginx's `$request_length` counts them (plus the
/// body's declared length).
pub fn request_length(method: &Method, uri: &Uri, headers: &HeaderMap) -> u64 {
    let line = method.as_str().len()
        + 1
        + uri
            .path_and_query()
            .map(|pq| pq.as_str().len())
            .unwrap_or(1)
        + " HTTP/1.1\r\n".len();
    let body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (line + headers_length(headers) + 2) as u64 + body
}

/// The size of a response's status line and headers.
pub fn response_head_length(headers: &HeaderMap) -> u64 {
    ("HTTP/1.1 200 OK\r\n".len() + headers_length(headers) + 2) as u64
}

fn headers_length(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum()
}
