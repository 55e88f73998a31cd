//! `mirror-target`: a copy of each request goes to the mirror, fire and forget. The mirror's
//! answer is dropped unread and it never delays the client's: the copy is its own task. Bounded
//! per serving thread: at most [`MAX_IN_FLIGHT`] copies and [`MAX_BYTES`] of copied bodies at
//! once; beyond that a copy is skipped, never queued.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, Request, Uri, Version};
use tokio::sync::Semaphore;

use super::body::ReclaimableBody;
use super::clients::{Chosen, Clients};
use crate::compile::mirror::Mirror;
use crate::routes::UpstreamProtocol;

const MAX_IN_FLIGHT: usize = 256;
const MAX_BYTES: usize = 32 << 20;
/// Larger bodies (or ones without a length) are not copied: the request is not mirrored.
pub const BODY_CAP: u64 = 1 << 20;

pub struct MirrorPlan<'a> {
    pub mirror: &'a Mirror,
    /// The client's path and query (`$request_uri`).
    pub request_uri: String,
}

pub struct Mirrors {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl Mirrors {
    pub fn new() -> Self {
        Self {
            requests: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            bytes: Arc::new(Semaphore::new(MAX_BYTES)),
        }
    }

    /// Sends the copy in a task of its own; `headers` are those the upstream gets.
    pub fn send(
        &self,
        clients: &Clients,
        plan: MirrorPlan<'_>,
        method: &Method,
        headers: &HeaderMap,
        body: &ReclaimableBody,
        timeout: Duration,
    ) {
        let mirror = plan.mirror;
        let copied: Bytes = match (mirror.body, body.kept_bytes()) {
            (true, Some(bytes)) => bytes.clone(),
            (true, None) if body.has_body() => {
                tracing::debug!(
                    "request body too large or without a length to mirror; not mirrored"
                );
                return;
            }
            _ => Bytes::new(),
        };
        let Ok(slot) = self.requests.clone().try_acquire_owned() else {
            tracing::debug!("too many mirrored requests in flight; this one is not mirrored");
            return;
        };
        let size = u32::try_from(copied.len()).unwrap_or(u32::MAX);
        let Ok(bytes) = self.bytes.clone().try_acquire_many_owned(size) else {
            tracing::debug!("too many mirrored bytes in flight; this one is not mirrored");
            return;
        };
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(mirror.scheme.clone());
        uri.authority = Some(mirror.authority.clone());
        uri.path_and_query = mirror.path_and_query(&plan.request_uri).parse().ok();
        let Ok(uri) = Uri::from_parts(uri) else {
            return;
        };
        let mut headers = headers.clone();
        headers.insert(header::HOST, mirror.host.clone());
        if !mirror.body {
            headers.remove(header::CONTENT_LENGTH);
        }
        let mut req = Request::new(ReclaimableBody::kept(copied).attempt(None));
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        let protocol = if mirror.scheme == http::uri::Scheme::HTTPS {
            UpstreamProtocol::Https
        } else {
            UpstreamProtocol::Http1
        };
        let response = match clients.get(protocol) {
            Chosen::Plain(client) => client.request(req),
            Chosen::Tls(client) => client.request(req),
        };
        tokio::spawn(async move {
            let _held = (slot, bytes);
            match tokio::time::timeout(timeout, response).await {
                Ok(Ok(_ignored)) => {}
                Ok(Err(err)) => tracing::debug!("mirrored request failed: {err}"),
                Err(_) => tracing::debug!("mirrored request timed out"),
            }
        });
    }
}

impl Default for Mirrors {
    fn default() -> Self {
        Self::new()
    }
}
