//! Compile and swap: every snapshot a source sends is compiled off the hot path into a new route
//! table that replaces the current one atomically. Requests hold the table they started with.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::compile::{self, CertCache, CompileOptions, compile_cached};
use crate::limits::{Concurrency, ConcurrencyLimits, Limiter, Limiters};
use crate::metrics::Metrics;
use crate::model::{Problem, Severity, Snapshot};
use crate::publish::{Compiled, CompiledSender};
use crate::routes::RouteTable;

/// What the hot path and the operations endpoints share with the compile loop.
#[derive(Debug)]
pub struct Shared {
    pub table: ArcSwap<RouteTable>,
    /// True once a source completed its first full sync and the first table is in place.
    pub ready: AtomicBool,
    pub metrics: Metrics,
    /// Rate-limit state, kept across route tables.
    pub limiters: Limiters,
    /// `limit-connections` state, kept across route tables.
    pub concurrency: ConcurrencyLimits,
    /// Authentication caches, kept across route tables.
    pub auth: crate::auth::State,
}

impl Shared {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            table: ArcSwap::from_pointee(RouteTable::empty()),
            ready: AtomicBool::new(false),
            metrics,
            limiters: Limiters::default(),
            concurrency: ConcurrencyLimits::default(),
            auth: crate::auth::State::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Receives snapshots (the latest wins; intermediate ones are skipped) and swaps in tables until
/// the sender is gone. Each outcome goes to `compiled` for Events and status (nobody listens
/// in `--manifests` mode). Compiling takes a while for large configurations, so it runs on a
/// blocking thread: the runtime's workers keep serving requests meanwhile.
pub async fn run(
    shared: Arc<Shared>,
    options: CompileOptions,
    mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    compiled: CompiledSender,
) {
    let options = Arc::new(options);
    let mut state = (HashSet::<Problem>::new(), CertCache::default());
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        if let Some(snapshot) = snapshot {
            let (reported, certs) = std::mem::take(&mut state);
            let (shared, options, for_compile) =
                (shared.clone(), options.clone(), snapshot.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                let (reported, problems, certs) =
                    apply(&shared, &options, &for_compile, reported, &certs);
                let ours = compile::ours(&for_compile, &options);
                (reported, problems, certs, ours)
            })
            .await;
            match outcome {
                Ok((reported, problems, certs, ours)) => {
                    state = (reported, certs);
                    compiled.send_replace(Some(Arc::new(Compiled {
                        snapshot,
                        problems,
                        ours,
                    })));
                }
                // A bug in compile: keep serving the current table, try again on the next change.
                Err(err) => {
                    tracing::error!(
                        "compiling the route table failed, the current one stays: {err}"
                    );
                }
            }
        }
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

/// Compiles, swaps, logs. Problems are logged when they first appear, not on every compile.
/// Returns the problems as a set (for the next call) and as compile listed them.
fn apply(
    shared: &Shared,
    options: &CompileOptions,
    snapshot: &Snapshot,
    previously: HashSet<Problem>,
    certs: &CertCache,
) -> (HashSet<Problem>, Vec<Problem>, CertCache) {
    let started = Instant::now();
    let (table, problems, next_certs) = compile_cached(snapshot, options, certs);
    let elapsed = started.elapsed();
    let (hosts, paths, served, certs) = (
        table.host_count(),
        table.path_count(),
        table.served_ingresses,
        table.certs.len(),
    );
    // Each route finds its metrics series now, so requests never look them up under a lock.
    for route in table.routes() {
        if let Some(labels) = route.metric_labels() {
            let _ = route
                .series
                .get_or_init(|| shared.metrics.requests.route(&labels));
        }
        if let Some(ingress) = &route.ingress
            && !route.policy.rates.is_empty()
        {
            let _ = route.policy.limiters.get_or_init(|| {
                route
                    .policy
                    .rates
                    .iter()
                    .map(|rate| shared.limiters.get(ingress, *rate, Limiter::new))
                    .collect()
            });
        }
        if let (Some(ingress), Some(limit)) = (&route.ingress, route.policy.max_in_flight) {
            let _ = route
                .policy
                .in_flight
                .get_or_init(|| shared.concurrency.get(ingress, limit, Concurrency::new));
        }
        if let (Some(canary), Some(labels)) = (&route.canary, route.canary_metric_labels()) {
            let _ = canary
                .series
                .get_or_init(|| shared.metrics.requests.route(&labels));
        }
    }
    let table = Arc::new(table);
    shared.table.store(table.clone());
    shared.ready.store(true, Ordering::Release);
    let serving: HashSet<(&str, &str)> = table
        .routes()
        .filter_map(|r| r.ingress.as_ref())
        .map(|i| (i.namespace.as_str(), i.name.as_str()))
        .collect();
    shared.metrics.requests.forget_unserved(&serving);
    shared.limiters.forget_unused();
    shared.concurrency.forget_unused();

    let mut current = HashSet::with_capacity(problems.len());
    let mut faults = 0;
    for problem in &problems {
        if problem.severity > Severity::Info {
            faults += 1;
        }
        if !previously.contains(problem) {
            log_problem(problem);
        }
        current.insert(problem.clone());
    }
    shared
        .metrics
        .table_swapped(jiff::Timestamp::now().as_second(), faults, paths as i64);
    tracing::info!(
        objects = snapshot.object_count(),
        ingresses = served,
        hosts,
        paths,
        certificates = certs,
        problems = faults,
        compile_us = elapsed.as_micros() as u64,
        "route table swapped in"
    );
    (current, problems, next_certs)
}

fn log_problem(p: &Problem) {
    let object = p.object.to_string();
    match p.severity {
        Severity::Info => {
            tracing::debug!(kind = p.kind, %object, reason = p.reason, "{}", p.message)
        }
        Severity::Warning => {
            tracing::warn!(kind = p.kind, %object, reason = p.reason, "{}", p.message)
        }
        Severity::Error => {
            tracing::error!(kind = p.kind, %object, reason = p.reason, "{}", p.message)
        }
    }
}
