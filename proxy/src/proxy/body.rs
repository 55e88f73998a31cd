//! The bodies the hot path streams: the downstream request body handed to one upstream attempt
//! after another, and the response body that records metrics and the access log when it ends.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::finish::Finish;

/// The downstream request body, shareable between upstream attempts: a failed connect never
/// polls the body, so the next attempt can still send it. Bodiless requests (most GETs) share
/// nothing and take no lock; for the others the lock is per request and uncontended.
pub struct ReclaimableBody {
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    hint: SizeHint,
}

impl ReclaimableBody {
    pub fn new(body: Incoming) -> Self {
        let hint = body.size_hint();
        let slot = (!body.is_end_stream()).then(|| Arc::new(Mutex::new(Some(body))));
        Self { slot, hint }
    }

    pub fn attempt(&self) -> ProxyBody {
        ProxyBody {
            slot: self.slot.clone(),
            taken: None,
            hint: self.hint,
        }
    }
}

/// The body of one upstream attempt; takes the downstream body on first poll.
pub struct ProxyBody {
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    taken: Option<Incoming>,
    hint: SizeHint,
}

impl ProxyBody {
    /// No body at all (the auth subrequest's).
    pub fn empty() -> Self {
        Self {
            slot: None,
            taken: None,
            hint: SizeHint::with_exact(0),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.taken.is_none()
            && let Some(slot) = this.slot.take()
        {
            this.taken = slot.lock().ok().and_then(|mut body| body.take());
        }
        match this.taken.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.taken {
            Some(body) => body.is_end_stream(),
            None => self.slot.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// The response body sent downstream. Counts the bytes it passes on; when hyper is done with
/// it (sent whole, or the client went away) it records the request's metrics and access log.
pub struct ObservedBody {
    inner: BoxBody<Bytes, hyper::Error>,
    bytes: u64,
    finish: Option<Finish>,
}

impl ObservedBody {
    pub fn new(inner: BoxBody<Bytes, hyper::Error>, finish: Option<Finish>) -> Self {
        Self {
            inner,
            bytes: 0,
            finish,
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            finish.record(self.bytes);
        }
    }
}
