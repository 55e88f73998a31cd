//! The pooled upstream clients, one per way of speaking to a backend (the Service port's
//! `appProtocol`): HTTP/1.1 and HTTP/2 (prior knowledge), each over plain TCP or TLS.
//! Connections are kept alive per endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::ProxyBody;
use crate::compile::serving_config::UpstreamPool;
use crate::routes::UpstreamProtocol;

type Plain = Client<HttpConnector, ProxyBody>;
pub(super) type Tls = Client<HttpsConnector<HttpConnector>, ProxyBody>;

pub struct Clients {
    http1: Plain,
    h2c: Plain,
    https: Tls,
    h2_tls: Tls,
}

/// One client, whichever its connector.
pub enum Chosen<'a> {
    Plain(&'a Plain),
    Tls(&'a Tls),
}

/// The TCP side of every upstream connection.
pub(super) fn tcp_connector(pool: &UpstreamPool) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(pool.connect_timeout));
    tcp.set_nodelay(true);
    // `https://` URIs need the TCP connector to accept them; the TLS layer wraps it.
    tcp.enforce_http(false);
    tcp
}

/// A pooling client builder, HTTP/1.1 or HTTP/2 with prior knowledge.
pub(super) fn client_builder(
    pool: &UpstreamPool,
    http2: bool,
) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool.idle_timeout)
        .pool_max_idle_per_host(pool.idle_per_endpoint)
        .timer(TokioTimer::new())
        .http2_only(http2);
    builder
}

impl Clients {
    /// `proxy-connect-timeout`, `upstream-keepalive-connections` and
    /// `upstream-keepalive-timeout` (ingress-nginx's defaults: 5 s, 320, 60 s).
    pub fn new(pool: &UpstreamPool) -> Self {
        let tcp = tcp_connector(pool);
        let builder = |http2: bool| client_builder(pool, http2);
        let tls = |alpn: &[&[u8]]| {
            let mut config = rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCertificate::new()))
                .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            HttpsConnector::from((tcp.clone(), config))
        };
        Self {
            http1: builder(false).build(tcp.clone()),
            h2c: builder(true).build(tcp.clone()),
            https: builder(false).build(tls(&[b"http/1.1"])),
            h2_tls: builder(true).build(tls(&[b"h2"])),
        }
    }

    pub fn get(&self, protocol: UpstreamProtocol) -> Chosen<'_> {
        match protocol {
            UpstreamProtocol::Http1 => Chosen::Plain(&self.http1),
            UpstreamProtocol::H2c => Chosen::Plain(&self.h2c),
            UpstreamProtocol::Https => Chosen::Tls(&self.https),
            UpstreamProtocol::H2Tls => Chosen::Tls(&self.h2_tls),
        }
    }
}

/// `proxy-connect-timeout` of an Ingress: the connector owns the timeout, so each value has
/// clients (and pools) of their own, with the ConfigMap's other pool settings. Looked up without
/// a lock; a value seen for the first time is added by copy-on-write, once.
#[derive(Default)]
pub struct TimedClients {
    by_pool: ArcSwap<HashMap<UpstreamPool, Arc<Clients>>>,
}

impl TimedClients {
    pub fn get(&self, pool: &UpstreamPool, timeout: Duration) -> Arc<Clients> {
        let pool = UpstreamPool {
            connect_timeout: timeout,
            ..pool.clone()
        };
        if let Some(clients) = self.by_pool.load().get(&pool) {
            return clients.clone();
        }
        let mut made = None;
        self.by_pool.rcu(|current| {
            let mut next = HashMap::clone(current);
            let clients = next
                .entry(pool.clone())
                .or_insert_with(|| Arc::new(Clients::new(&pool)))
                .clone();
            made = Some(clients);
            next
        });
        made.unwrap_or_else(|| Arc::new(Clients::new(&pool)))
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new(&UpstreamPool::default())
    }
}

/// ingress-nginx's default for HTTPS and GRPCS backends (`proxy-ssl-verify: off`): the
/// connection is encrypted, the backend's certificate is not checked. The signature of the
/// handshake is still verified, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
pub struct AnyServerCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AnyServerCertificate {
    pub fn new() -> Self {
        Self {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl Default for AnyServerCertificate {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    crate::trust::handshake_signatures!();
}
