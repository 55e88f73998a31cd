//! Pooled clients for routes with their own upstream TLS (`proxy-ssl-*`): one per
//! configuration, HTTP version and server name, per serving thread (like the shared clients,
//! so a request never waits on another thread's pool), kept without a lock in a thread-local
//! map. Entries of configurations no route table uses any more are dropped when a new one
//! is added.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use hyper_rustls::{DefaultServerNameResolver, FixedServerNameResolver, HttpsConnector};
use rustls::pki_types::ServerName;

use super::clients::{Tls, client_builder, tcp_connector};
use crate::compile::serving_config::UpstreamPool;
use crate::model::ObjectKey;
use crate::upstream_tls::UpstreamTls;

struct Entry {
    owner: Weak<UpstreamTls>,
    /// By Service when the name is the Service's own (no `proxy-ssl-name`); one entry under
    /// the default key otherwise.
    clients: HashMap<ObjectKey, Tls>,
}

thread_local! {
    static CLIENTS: RefCell<HashMap<(u64, bool), Entry>> = RefCell::new(HashMap::new());
}

/// The client for `tls` to `service` over HTTP/2 or HTTP/1.1 (a clone: clients share their
/// pool).
pub(super) fn client(
    tls: &Arc<UpstreamTls>,
    service: &ObjectKey,
    http2: bool,
    pool: &UpstreamPool,
) -> Tls {
    CLIENTS.with_borrow_mut(|map| {
        let id = (tls.id, http2);
        if !map.contains_key(&id) {
            map.retain(|_, entry| entry.owner.strong_count() > 0);
            map.insert(
                id,
                Entry {
                    owner: Arc::downgrade(tls),
                    clients: HashMap::new(),
                },
            );
        }
        let Some(entry) = map.get_mut(&id) else {
            return build(tls, service, http2, pool);
        };
        let key = if tls.name.is_some() {
            None
        } else {
            Some(service)
        };
        let found = match key {
            Some(service) => entry.clients.get(service),
            None => entry.clients.values().next(),
        };
        if let Some(client) = found {
            return client.clone();
        }
        let client = build(tls, service, http2, pool);
        entry
            .clients
            .insert(key.cloned().unwrap_or_default(), client.clone());
        client
    })
}

/// `pool`: the ConfigMap's connect timeout and keep-alive settings when the client is made.
fn build(tls: &UpstreamTls, service: &ObjectKey, http2: bool, pool: &UpstreamPool) -> Tls {
    let config = if http2 { &tls.h2 } else { &tls.http1 };
    // Without proxy-ssl-name, the name checked (and sent as SNI with
    // proxy-ssl-server-name) is the Service's cluster DNS name.
    let name = tls.name.clone().or_else(|| {
        ServerName::try_from(format!("{}.{}.svc", service.name, service.namespace)).ok()
    });
    let connector = match name {
        Some(name) => HttpsConnector::new(
            tcp_connector(pool),
            config.clone(),
            false,
            Arc::new(FixedServerNameResolver::new(name)),
        ),
        None => HttpsConnector::new(
            tcp_connector(pool),
            config.clone(),
            false,
            Arc::new(DefaultServerNameResolver::default()),
        ),
    };
    client_builder(pool, http2).build(connector)
}
