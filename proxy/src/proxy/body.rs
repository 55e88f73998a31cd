//! The bodies the hot path streams: the downstream request body handed to one upstream attempt
//! after another, and the response body that records metrics and the access log when it ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::finish::Finish;

/// The downstream request body, shareable between upstream attempts: a failed connect never
/// polls the body, so the next attempt can still send it. Bodiless requests (most GETs) share
/// nothing and take no lock; for the others the lock is per request and uncontended. A body read
/// whole beforehand (`proxy-request-buffering`) is kept and can be sent any number of times.
pub struct ReclaimableBody {
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    kept: Option<Bytes>,
    hint: SizeHint,
}

impl ReclaimableBody {
    pub fn new(body: Incoming) -> Self {
        let hint = body.size_hint();
        let slot = (!body.is_end_stream()).then(|| Arc::new(Mutex::new(Some(body))));
        Self {
            slot,
            kept: None,
            hint,
        }
    }

    /// A body already read whole.
    pub fn kept(bytes: Bytes) -> Self {
        Self {
            slot: None,
            hint: SizeHint::with_exact(bytes.len() as u64),
            kept: (!bytes.is_empty()).then_some(bytes),
        }
    }

    /// The body, when it was read whole.
    pub fn kept_bytes(&self) -> Option<&Bytes> {
        self.kept.as_ref()
    }

    /// Whether there is a streamed body (not read whole).
    pub fn has_body(&self) -> bool {
        self.slot.is_some()
    }

    /// Whether there is any body to send, streamed or kept.
    pub fn is_empty(&self) -> bool {
        self.slot.is_none() && self.kept.is_none()
    }

    /// Whether another attempt can still send the whole body (no attempt started sending a
    /// streamed one).
    pub fn replayable(&self) -> bool {
        match &self.slot {
            None => true,
            Some(slot) => slot.lock().map(|body| body.is_some()).unwrap_or(false),
        }
    }

    pub fn attempt(&self, clock: Option<Arc<SendClock>>) -> ProxyBody {
        ProxyBody {
            slot: self.slot.clone(),
            taken: None,
            kept: self.kept.clone(),
            hint: self.hint,
            clock,
        }
    }
}

/// The request body's progress on its way upstream: when the upstream last took a piece and
/// has not asked for the next (`proxy-send-timeout`: the time an upstream spends not reading,
/// never the client's), and when a piece last went (or the body ended), from which the wait
/// for the response (`proxy-read-timeout`) counts: a long upload is not a slow upstream.
pub struct SendClock {
    base: Instant,
    /// Nanoseconds after `base` + 1 when a frame was handed over; 0 while the body waits for
    /// the client or is done.
    handed: AtomicU64,
    /// Nanoseconds after `base` when the body last moved.
    moved: AtomicU64,
}

impl SendClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            handed: AtomicU64::new(0),
            moved: AtomicU64::new(0),
        }
    }

    fn set(&self, handed: bool) {
        let value = if handed {
            self.base.elapsed().as_nanos() as u64 + 1
        } else {
            0
        };
        self.handed.store(value, Ordering::Relaxed);
    }

    /// A piece of the body went, or the body ended.
    fn moved(&self) {
        self.moved
            .store(self.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Resolves once the body has not moved for `limit` (after it ended: once the upstream has
    /// had `limit` to answer).
    pub async fn quiet_for(&self, limit: Duration) {
        loop {
            let due = self.base + Duration::from_nanos(self.moved.load(Ordering::Relaxed)) + limit;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }

    /// Resolves once a frame handed to the upstream connection has waited `limit` for the
    /// next poll. Wakes at most once per `limit`.
    pub async fn stalled(&self, limit: Duration) {
        loop {
            match self.handed.load(Ordering::Relaxed) {
                0 => tokio::time::sleep(limit).await,
                at => {
                    let due = self.base + Duration::from_nanos(at - 1) + limit;
                    if Instant::now() >= due {
                        return;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
            }
        }
    }
}

impl Default for SendClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The body of one upstream attempt; takes the downstream body on first poll.
pub struct ProxyBody {
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    taken: Option<Incoming>,
    kept: Option<Bytes>,
    hint: SizeHint,
    clock: Option<Arc<SendClock>>,
}

impl ProxyBody {
    /// No body at all (the auth subrequest's).
    pub fn empty() -> Self {
        Self {
            slot: None,
            taken: None,
            kept: None,
            hint: SizeHint::with_exact(0),
            clock: None,
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
        if let Some(clock) = &this.clock {
            clock.set(false);
        }
        if let Some(bytes) = this.kept.take() {
            if let Some(clock) = &this.clock {
                clock.set(true);
                clock.moved();
            }
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        if this.taken.is_none()
            && let Some(slot) = this.slot.take()
        {
            this.taken = slot.lock().ok().and_then(|mut body| body.take());
        }
        let polled = match this.taken.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        };
        if let Some(clock) = &this.clock {
            match &polled {
                Poll::Ready(Some(Ok(_))) => {
                    clock.set(true);
                    clock.moved();
                }
                Poll::Ready(None) => clock.moved(),
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        if self.kept.is_some() {
            return false;
        }
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
