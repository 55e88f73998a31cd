//! What a compile built from Secrets, kept for the next compile: an entry is reused while its
//! key (the Secret and the settings) and the fingerprint of the Secret's data are unchanged, so
//! a recompile rebuilds only what changed (and live objects, such as a TLS configuration with
//! its session cache, stay the same `Arc`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

#[derive(Debug)]
pub struct Memo<K, V> {
    entries: HashMap<K, (u64, Result<Arc<V>, String>)>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Memo<K, V> {
    /// The value for `key`, from this (the previous compile's) memo or `fresh` (this compile's)
    /// when the fingerprint matches, else built; `fresh` keeps it for the next compile.
    pub fn get(
        &self,
        fresh: &mut Self,
        key: &K,
        fingerprint: u64,
        build: impl FnOnce() -> Result<V, String>,
    ) -> Result<Arc<V>, String> {
        if let Some((_, result)) = fresh.entries.get(key).filter(|(f, _)| *f == fingerprint) {
            return result.clone();
        }
        let result = match self.entries.get(key).filter(|(f, _)| *f == fingerprint) {
            Some((_, result)) => result.clone(),
            None => build().map(Arc::new),
        };
        fresh
            .entries
            .insert(key.clone(), (fingerprint, result.clone()));
        result
    }
}

/// A hash of the named data keys of a Secret.
pub fn fingerprint(secret: &Secret, keys: &[&str]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    let data = secret.data.as_ref();
    for name in keys {
        data.and_then(|d| d.get(*name))
            .map(|v| &v.0)
            .hash(&mut hasher);
    }
    hasher.finish()
}

/// A Secret data key's bytes.
pub fn data<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_entries_are_reused_and_changed_ones_rebuilt() {
        let before: Memo<&str, u32> = Memo::default();
        let mut first = Memo::default();
        let a = before.get(&mut first, &"a", 1, || Ok(10));
        let mut second = Memo::default();
        let again = first.get(&mut second, &"a", 1, || Ok(99));
        assert!(matches!((&a, &again), (Ok(x), Ok(y)) if Arc::ptr_eq(x, y)));
        let mut third = Memo::default();
        let changed = second.get(&mut third, &"a", 2, || Ok(20));
        assert_eq!(changed.map(|v| *v), Ok(20));
    }
}
