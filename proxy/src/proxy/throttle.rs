//! `limit-rate` / `limit-rate-after`: the response body is passed on no faster than the rate,
//! once the first `after` bytes went out at full speed (nginx's `limit_rate`, counted from the
//! start of the response). Waiting is a tokio timer, never a busy loop.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::compile::upstream::RateLimit;

pub struct Throttled {
    inner: BoxBody<Bytes, hyper::Error>,
    limit: RateLimit,
    started: Instant,
    sent: u64,
    /// Data polled from `inner` and not passed on yet.
    pending: Bytes,
    sleep: Option<Pin<Box<Sleep>>>,
}

pub fn throttle(
    inner: BoxBody<Bytes, hyper::Error>,
    limit: RateLimit,
) -> BoxBody<Bytes, hyper::Error> {
    Throttled {
        inner,
        limit,
        started: Instant::now(),
        sent: 0,
        pending: Bytes::new(),
        sleep: None,
    }
    .boxed()
}

impl Throttled {
    /// Bytes that may go out now.
    fn allowance(&self, now: Instant) -> u64 {
        let earned = (now.duration_since(self.started).as_secs_f64()
            * self.limit.bytes_per_second as f64) as u64;
        (self.limit.after + earned).saturating_sub(self.sent)
    }

    /// When `bytes` more may go out.
    fn when(&self, bytes: u64) -> Instant {
        let owed = (self.sent + bytes).saturating_sub(self.limit.after);
        self.started
            + std::time::Duration::from_secs_f64(owed as f64 / self.limit.bytes_per_second as f64)
    }
}

impl Body for Throttled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if this.pending.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    // Trailers pass as they are.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
        // No slice smaller than a tenth of a second's worth, so frames stay a useful size.
        let slice = (this.limit.bytes_per_second / 10).clamp(1, 64 * 1024);
        let want = (this.pending.len() as u64).min(slice);
        let allowed = this.allowance(Instant::now());
        if allowed < want {
            let mut sleep = Box::pin(tokio::time::sleep_until(this.when(want)));
            if sleep.as_mut().poll(cx).is_pending() {
                this.sleep = Some(sleep);
                return Poll::Pending;
            }
        }
        let take = this
            .allowance(Instant::now())
            .max(want)
            .min(this.pending.len() as u64);
        let data = this.pending.split_to(take as usize);
        this.sent += data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        hint.set_lower(hint.lower() + pending);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::time::Duration;

    fn throttled(limit: RateLimit) -> Throttled {
        Throttled {
            inner: Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed(),
            limit,
            started: Instant::now(),
            sent: 0,
            pending: Bytes::new(),
            sleep: None,
        }
    }

    #[test]
    fn the_first_bytes_are_free_then_the_rate_is_earned() {
        let mut t = throttled(RateLimit {
            bytes_per_second: 10_000,
            after: 10_000,
        });
        let start = t.started;
        assert_eq!(t.allowance(start), 10_000);
        t.sent = 10_000;
        assert_eq!(t.allowance(start), 0);
        assert_eq!(t.allowance(start + Duration::from_millis(500)), 5_000);
        // 20 000 bytes beyond the free ones take two seconds.
        assert_eq!(t.when(20_000), start + Duration::from_secs(2));
        t.sent = 30_000;
        assert_eq!(t.allowance(start + Duration::from_secs(2)), 0);
    }
}
