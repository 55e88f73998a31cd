//! `upstream-hash-by`: consistent hashing of a request key (nginx variables, such as
//! `$request_uri` or `$binary_remote_addr`) onto the endpoints, so the same key keeps reaching the
//! same endpoint while endpoints come and go, and every replica agrees. With
//! `upstream-hash-by-subset` the key picks a subset of `upstream-hash-by-subset-size` endpoints
//! (default 3) and requests are spread over that subset, as ingress-nginx's chashsubset does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::canary::PREFIX;
use crate::variables::{Scope, Template};

/// Virtual points per endpoint (or subset) on the ring: enough for an even spread.
const POINTS: u32 = 160;

/// What an Ingress asks for.
#[derive(Clone, Debug)]
pub struct HashBy {
    pub key: Template,
    /// `Some(size)` with `upstream-hash-by-subset: "true"`.
    pub subset: Option<usize>,
}

/// Parses the annotations; problems are `(annotation, reason)`.
pub fn parse(annotations: &BTreeMap<String, String>) -> (Option<HashBy>, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let Some(key) = get("upstream-hash-by").filter(|k| !k.is_empty()) else {
        return (None, problems);
    };
    let key = match Template::parse(key, Scope::Value) {
        Ok(template) if !template.is_literal() => template,
        Ok(_) => {
            problems.push((
                format!("{PREFIX}upstream-hash-by"),
                format!("{key:?} has no variable, so every request would hash alike; round-robin is used"),
            ));
            return (None, problems);
        }
        Err(why) => {
            problems.push((
                format!("{PREFIX}upstream-hash-by"),
                format!("{why}; round-robin is used"),
            ));
            return (None, problems);
        }
    };
    let subset = match get("upstream-hash-by-subset") {
        None | Some("false") => None,
        Some("true") => Some(match get("upstream-hash-by-subset-size") {
            None => 3,
            Some(size) => match size.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    problems.push((
                        format!("{PREFIX}upstream-hash-by-subset-size"),
                        format!("{size:?} is not a positive integer; using 3"),
                    ));
                    3
                }
            },
        }),
        Some(other) => {
            problems.push((
                format!("{PREFIX}upstream-hash-by-subset"),
                format!("{other:?} is not true or false; no subsets"),
            ));
            None
        }
    };
    (Some(HashBy { key, subset }), problems)
}

/// A ring of points for a fixed list of endpoints, built when the table compiles.
#[derive(Debug)]
pub struct Ring {
    /// (point, group) sorted by point; a group is an endpoint, or a subset of them.
    points: Vec<(u64, u32)>,
    /// The endpoint indices of each group.
    groups: Vec<Vec<usize>>,
    /// Spreads requests within a subset.
    next: AtomicUsize,
}

impl Ring {
    /// `keys` name the endpoints (stable across replicas and table changes), in the
    /// upstream's order. `subset`: group that many endpoints per point.
    pub fn new(keys: &[String], subset: Option<usize>) -> Self {
        // Grouping by sorted key keeps subsets the same on every replica.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        let groups: Vec<Vec<usize>> = match subset {
            Some(size) => order.chunks(size.max(1)).map(<[usize]>::to_vec).collect(),
            None => order.into_iter().map(|i| vec![i]).collect(),
        };
        let mut points = Vec::with_capacity(groups.len() * POINTS as usize);
        for (g, members) in groups.iter().enumerate() {
            let name: String = members
                .iter()
                .map(|i| keys[*i].as_str())
                .collect::<Vec<_>>()
                .join(",");
            for n in 0..POINTS {
                let point = hash(format!("{name}#{n}").as_bytes());
                points.push((point, u32::try_from(g).unwrap_or(u32::MAX)));
            }
        }
        points.sort_unstable();
        Self {
            points,
            groups,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoint for a request whose key hashes to `key_hash`.
    pub fn pick(&self, key_hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let at = self.points.partition_point(|(p, _)| *p < key_hash) % self.points.len();
        let group = self.groups.get(self.points[at].1 as usize)?;
        match group.len() {
            0 => None,
            1 => Some(group[0]),
            n => Some(group[self.next.fetch_add(1, Ordering::Relaxed) % n]),
        }
    }
}

/// FNV-1a with a final mix: stable across processes and versions (every replica must place a
/// key alike), and spread well enough for similar inputs (`10.0.0.1:80#1`, `#2`, ...).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finalizer.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:8080")).collect()
    }

    #[test]
    fn the_same_key_keeps_its_endpoint_and_keys_spread() {
        let ring = Ring::new(&keys(4), None);
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let h = hash(format!("/item/{i}").as_bytes());
            let first = ring.pick(h).unwrap_or(99);
            assert_eq!(ring.pick(h), Some(first));
            counts[first] += 1;
        }
        // Roughly even: each gets 1000 ± 40 %.
        assert!(counts.iter().all(|c| (600..1400).contains(c)), "{counts:?}");
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        let before = Ring::new(&keys(5), None);
        let mut fewer = keys(5);
        fewer.remove(2);
        let after = Ring::new(&fewer, None);
        let name = |ring_keys: &[String], i: Option<usize>| i.map(|i| ring_keys[i].clone());
        let all = keys(5);
        let mut moved = 0;
        for i in 0..2000 {
            let h = hash(format!("user-{i}").as_bytes());
            let was = name(&all, before.pick(h));
            let now = name(&fewer, after.pick(h));
            if was != now {
                moved += 1;
                assert_eq!(
                    was.as_deref(),
                    Some("10.0.0.2:8080"),
                    "only the removed one's keys move"
                );
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn subsets_spread_one_key_over_its_subset() {
        let ring = Ring::new(&keys(6), Some(3));
        let h = hash(b"tenant-a");
        let seen: std::collections::BTreeSet<usize> =
            (0..30).filter_map(|_| ring.pick(h)).collect();
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn annotations_parse_and_refuse() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
                .collect()
        };
        let (parsed, problems) = parse(&map(&[
            ("upstream-hash-by", "$request_uri"),
            ("upstream-hash-by-subset", "true"),
            ("upstream-hash-by-subset-size", "4"),
        ]));
        assert!(problems.is_empty());
        assert_eq!(parsed.map(|p| p.subset), Some(Some(4)));
        for bad in ["$upstream_addr", "constant"] {
            let (parsed, problems) = parse(&map(&[("upstream-hash-by", bad)]));
            assert!(parsed.is_none() && problems.len() == 1, "{bad}");
        }
    }
}
