//! `load-balance: ewma`: per endpoint a peak-EWMA of response latency (a slower response
//! raises it at once, faster ones lower it with a 10 s decay, as in ingress-nginx's ewma
//! balancer) times the requests waiting on it; the better of two endpoints chosen
//! pseudo-randomly wins ("power of two choices"). All state is atomics, no lock.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// ingress-nginx's ewma decay time.
const DECAY: Duration = Duration::from_secs(10);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_nanos() as u64
}

#[derive(Debug, Default)]
pub struct EndpointLoad {
    /// The EWMA in nanoseconds, as f64 bits.
    ewma: AtomicU64,
    /// When it was last updated (nanoseconds since the process epoch).
    stamp: AtomicU64,
    waiting: AtomicU32,
}

/// A request waiting on an endpoint's response head; counted until dropped.
pub struct Waiting<'a>(&'a EndpointLoad);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EndpointLoad {
    pub fn start(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    fn decayed(&self, now: u64) -> f64 {
        let ewma = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        let age = now.saturating_sub(self.stamp.load(Ordering::Relaxed)) as f64;
        ewma * (-age / DECAY.as_nanos() as f64).exp()
    }

    /// Records a latency. Two updates racing may lose one; the value stays a sane estimate,
    /// which is all balancing needs.
    pub fn observe(&self, latency: Duration, at: Instant) {
        let now = nanos(at);
        let rtt = latency.as_nanos() as f64;
        let old = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        let age = now.saturating_sub(self.stamp.load(Ordering::Relaxed)) as f64;
        let weight = (-age / DECAY.as_nanos() as f64).exp();
        let new = if rtt > old {
            rtt
        } else {
            old * weight + rtt * (1.0 - weight)
        };
        self.ewma.store(new.to_bits(), Ordering::Relaxed);
        self.stamp.store(now, Ordering::Relaxed);
    }

    /// Lower is better: expected latency times the requests that would queue ahead.
    fn cost(&self, now: u64) -> f64 {
        (self.decayed(now) + 1.0) * f64::from(self.waiting.load(Ordering::Relaxed) + 1)
    }
}

/// SplitMix64: spreads a counter into well-mixed bits, without a random number generator.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The better of two distinct endpoints drawn from `draw` (a per-upstream counter).
pub fn pick(loads: &[EndpointLoad], draw: usize, now: Instant) -> usize {
    let n = loads.len();
    if n < 2 {
        return 0;
    }
    let bits = mix(draw as u64);
    let a = (bits % n as u64) as usize;
    let b = (a + 1 + ((bits >> 32) % (n as u64 - 1)) as usize) % n;
    let now = nanos(now);
    if loads[b].cost(now) < loads[a].cost(now) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slow_endpoint_is_avoided() {
        let loads: Vec<EndpointLoad> = (0..2).map(|_| EndpointLoad::default()).collect();
        let now = Instant::now();
        loads[0].observe(Duration::from_millis(200), now);
        loads[1].observe(Duration::from_millis(5), now);
        for draw in 0..20 {
            assert_eq!(pick(&loads, draw, now), 1);
        }
        // Requests waiting on the fast one make the slow one the better choice.
        let waiting: Vec<_> = (0..100).map(|_| loads[1].start()).collect();
        assert_eq!(pick(&loads, 0, now), 0);
        drop(waiting);
        assert_eq!(pick(&loads, 0, now), 1);
    }

    #[test]
    fn peaks_count_at_once_and_decay() {
        let load = EndpointLoad::default();
        let t0 = Instant::now();
        load.observe(Duration::from_millis(10), t0);
        load.observe(Duration::from_millis(100), t0);
        let now = nanos(t0);
        assert!((load.decayed(now) - 100e6).abs() < 1.0);
        // After one decay time, a fast response pulls it well down.
        load.observe(Duration::from_millis(10), t0 + DECAY);
        let later = f64::from_bits(load.ewma.load(Ordering::Relaxed));
        assert!(later < 50e6 && later > 10e6, "{later}");
    }

    #[test]
    fn two_distinct_candidates_cover_every_endpoint() {
        let loads: Vec<EndpointLoad> = (0..3).map(|_| EndpointLoad::default()).collect();
        let now = Instant::now();
        let mut seen = [false; 3];
        for draw in 0..100 {
            seen[pick(&loads, draw, now)] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
