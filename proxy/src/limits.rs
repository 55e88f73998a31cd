//! Request rate limits per client address (ingress-nginx's `limit-rps`, `limit-rpm` with
//! `limit-burst-multiplier`), as nginx's `limit_req ... nodelay`: a request within the rate
//! plus the burst passes at once, one beyond it is refused. GCRA: one timestamp per client.
//!
//! The state lives in a registry keyed by Ingress and rate, so a configuration change does not
//! hand every client a fresh burst. It is sharded by client address: a request takes one
//! shard's lock, never one that a reconfiguration or a request for another shard holds long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::ObjectKey;

const SHARDS: usize = 64;
/// A shard forgets clients that are back within their rate once it holds this many.
const PRUNE_AT: usize = 4096;

/// `rate` requests per `per`, `burst` more at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    pub requests: u64,
    pub per: Duration,
    pub burst: u64,
}

#[derive(Debug)]
pub struct Limiter {
    /// Time between two requests at the rate.
    interval: Duration,
    /// How far ahead of now a client's theoretical arrival time may run.
    tolerance: Duration,
    epoch: Instant,
    shards: Vec<Mutex<HashMap<IpAddr, Duration>>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        let interval = rate.per / rate.requests.max(1) as u32;
        Self {
            interval,
            tolerance: interval * rate.burst.min(u64::from(u32::MAX)) as u32,
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether a request from `client` at `now` is within the limit (and counts it if so).
    pub fn admit(&self, client: IpAddr, now: Instant) -> bool {
        let now = now.saturating_duration_since(self.epoch);
        let shard = &self.shards[shard_of(client)];
        let mut clients = shard.lock().unwrap_or_else(|e| e.into_inner());
        let arrival = clients.get(&client).copied().unwrap_or(now).max(now);
        if arrival > now + self.tolerance {
            return false;
        }
        clients.insert(client, arrival + self.interval);
        if clients.len() > PRUNE_AT {
            clients.retain(|_, at| *at > now);
        }
        true
    }
}

fn shard_of(ip: IpAddr) -> usize {
    let bits: u128 = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    ((bits ^ (bits >> 17) ^ (bits >> 41)) as usize) % SHARDS
}

/// Limit state by Ingress and setting, shared by every route table that uses it, so that a
/// configuration change neither resets a limit nor hands out fresh allowances.
#[derive(Debug)]
pub struct Registry<K, T> {
    all: Mutex<HashMap<(ObjectKey, K), Arc<T>>>,
}

impl<K, T> Default for Registry<K, T> {
    fn default() -> Self {
        Self {
            all: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash, T> Registry<K, T> {
    /// The state for an Ingress's setting; called when a table is swapped in.
    pub fn get(&self, ingress: &ObjectKey, setting: K, new: impl FnOnce(K) -> T) -> Arc<T> {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.entry((ingress.clone(), setting))
            .or_insert_with(|| Arc::new(new(setting)))
            .clone()
    }

    /// Drops the state no table (and no request in flight) uses any more.
    pub fn forget_unused(&self) {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, state| Arc::strong_count(state) > 1);
    }
}

/// The rate limiters, by Ingress and rate.
pub type Limiters = Registry<Rate, Limiter>;
/// The `limit-connections` counters, by Ingress and limit.
pub type ConcurrencyLimits = Registry<u32, Concurrency>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_plus_the_burst_passes_then_requests_are_refused_until_time_passes() {
        let limiter = Limiter::new(Rate {
            requests: 10,
            per: Duration::from_secs(1),
            burst: 5,
        });
        let client = IpAddr::from([10, 0, 0, 1]);
        let other = IpAddr::from([10, 0, 0, 2]);
        let start = Instant::now();
        // At one instant: the request itself plus the burst of 5.
        let passed = (0..20).filter(|_| limiter.admit(client, start)).count();
        assert_eq!(passed, 6);
        // Another client has its own allowance.
        assert!(limiter.admit(other, start));
        // 100 ms later (one interval at 10/s), one more passes.
        let later = start + Duration::from_millis(100);
        assert!(limiter.admit(client, later));
        assert!(!limiter.admit(client, later));
        // Steady at the rate: always admitted.
        let mut at = later;
        for _ in 0..50 {
            at += Duration::from_millis(100);
            assert!(limiter.admit(client, at));
        }
    }
}

/// `limit-connections`: requests in flight at once per client address.
#[derive(Debug)]
pub struct Concurrency {
    limit: u32,
    shards: Vec<Mutex<HashMap<IpAddr, u32>>>,
}

/// One request counted against its client's concurrency limit until dropped.
#[derive(Debug)]
pub struct InFlight {
    owner: Arc<Concurrency>,
    client: IpAddr,
}

impl Concurrency {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Counts a request of `client`, or `None` when it already has `limit` in flight.
    pub fn enter(self: &Arc<Self>, client: IpAddr) -> Option<InFlight> {
        let mut counts = self.shards[shard_of(client)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(client).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(InFlight {
            owner: self.clone(),
            client,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.owner.shards[shard_of(self.client)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    #[test]
    fn a_client_gets_at_most_the_limit_in_flight_and_slots_come_back() {
        let limit = Arc::new(Concurrency::new(2));
        let client = IpAddr::from([10, 0, 0, 1]);
        let first = limit.enter(client);
        let second = limit.enter(client);
        assert!(first.is_some() && second.is_some());
        assert!(limit.enter(client).is_none());
        assert!(limit.enter(IpAddr::from([10, 0, 0, 2])).is_some());
        drop(first);
        assert!(limit.enter(client).is_some());
    }
}
