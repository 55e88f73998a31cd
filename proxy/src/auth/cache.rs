//! Bounded caches for authentication results, keyed by a keyed hash (HMAC-SHA-256 under a key
//! drawn when the process starts): a key says nothing about the credentials it was made from,
//! no password is kept in memory, and nobody outside can aim for a collision.
//!
//! Each shard keeps two generations: when the current one is full it becomes the previous one
//! and the older entries are dropped, so memory is bounded and recently used entries survive
//! (a hit in the previous generation moves the entry forward).

use std::collections::HashMap;
use std::sync::Mutex;

use ring::hmac;

pub type Key = [u8; 32];

const SHARDS: usize = 16;

/// Makes cache keys from parts; each part is length-prefixed, so no two different part lists
/// make the same input.
pub struct Keyer {
    key: hmac::Key,
}

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyer")
    }
}

impl Keyer {
    /// A fresh random key. Fails only when the system has no randomness, which nothing can
    /// recover from.
    pub fn random() -> Result<Self, ring::error::Unspecified> {
        let rng = ring::rand::SystemRandom::new();
        Ok(Self {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng)?,
        })
    }

    pub fn key(&self, parts: &[&[u8]]) -> Key {
        let mut context = hmac::Context::with_key(&self.key);
        for part in parts {
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }
}

struct Generations<V> {
    current: HashMap<Key, V>,
    previous: HashMap<Key, V>,
}

/// At most about `capacity` entries (two generations of `capacity / 2` over all shards).
pub struct Bounded<V> {
    shards: Vec<Mutex<Generations<V>>>,
    per_generation: usize,
}

impl<V> std::fmt::Debug for Bounded<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bounded({} per generation per shard)",
            self.per_generation
        )
    }
}

impl<V: Clone> Bounded<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Generations {
                        current: HashMap::new(),
                        previous: HashMap::new(),
                    })
                })
                .collect(),
            per_generation: (capacity / SHARDS / 2).max(1),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Generations<V>> {
        // The key is an HMAC: its bytes are evenly spread.
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    pub fn get(&self, key: &Key) -> Option<V> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = shard.current.get(key) {
            return Some(value.clone());
        }
        let value = shard.previous.remove(key)?;
        shard.insert(*key, value.clone(), self.per_generation);
        Some(value)
    }

    pub fn insert(&self, key: Key, value: V) {
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        shard.insert(key, value, self.per_generation);
    }

    pub fn remove(&self, key: &Key) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.current.remove(key);
        shard.previous.remove(key);
    }

    /// Entries held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.current.len() + s.previous.len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V> Generations<V> {
    fn insert(&mut self, key: Key, value: V, limit: usize) {
        if self.current.len() >= limit && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_its_boundaries() {
        let keyer = Keyer::random().expect("randomness");
        assert_eq!(keyer.key(&[b"a", b"bc"]), keyer.key(&[b"a", b"bc"]));
        assert_ne!(keyer.key(&[b"a", b"bc"]), keyer.key(&[b"ab", b"c"]));
        let other = Keyer::random().expect("randomness");
        assert_ne!(keyer.key(&[b"a"]), other.key(&[b"a"]));
    }

    #[test]
    fn size_stays_bounded_and_recent_entries_survive() {
        let keyer = Keyer::random().expect("randomness");
        let cache = Bounded::new(64);
        let hot = keyer.key(&[b"hot"]);
        cache.insert(hot, 0u32);
        for i in 0..10_000u32 {
            cache.insert(keyer.key(&[&i.to_le_bytes()]), i);
            assert_eq!(cache.get(&hot), Some(0), "used all the time, kept");
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        cache.remove(&hot);
        assert_eq!(cache.get(&hot), None);
    }
}
