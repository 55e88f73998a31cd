//! TLS to upstreams with `proxy-ssl-*`: a dedicated rustls client configuration (client
//! certificate, CA verification with a depth limit, SNI or none, protocols and suites), built
//! at compile time. The hot path keeps one pooled client per configuration and serving thread
//! (see `proxy::upstream_tls`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::CertificateError;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::trust::{TrustStore, openssl_reason};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One upstream TLS configuration, shared by every route whose Ingress has the same settings.
#[derive(Debug)]
pub struct UpstreamTls {
    /// Unique for this configuration's lifetime: keys the per-thread client pools.
    pub id: u64,
    /// For HTTP/1.1 (ALPN `http/1.1`) and HTTP/2 (ALPN `h2`) upstreams.
    pub http1: Arc<rustls::ClientConfig>,
    pub h2: Arc<rustls::ClientConfig>,
    /// `proxy-ssl-name`; without it, the Service's cluster DNS name `<service>.<namespace>.svc`.
    pub name: Option<ServerName<'static>>,
}

impl UpstreamTls {
    pub fn new(config: rustls::ClientConfig, name: Option<ServerName<'static>>) -> Self {
        let mut http1 = config.clone();
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut h2 = config;
        h2.alpn_protocols = vec![b"h2".to_vec()];
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            http1: Arc::new(http1),
            h2: Arc::new(h2),
            name,
        }
    }
}

/// `proxy-ssl-verify: on`: the upstream's chain must lead to the Secret's `ca.crt` within the
/// depth, and its certificate must be valid for the server name.
#[derive(Debug)]
pub struct VerifyUpstream {
    pub trust: TrustStore,
    pub depth: u8,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl VerifyUpstream {
    pub fn new(trust: TrustStore, depth: u8) -> Self {
        Self {
            trust,
            depth,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for VerifyUpstream {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = |err: webpki::Error| {
            let (reason, _) = openssl_reason(&err);
            tracing::warn!(%reason, name = ?server_name, "upstream certificate refused: {err}");
            rustls::Error::InvalidCertificate(match err {
                webpki::Error::UnknownIssuer => CertificateError::UnknownIssuer,
                webpki::Error::CertExpired { .. } => CertificateError::Expired,
                webpki::Error::CertRevoked => CertificateError::Revoked,
                webpki::Error::CertNotValidForName(_) => CertificateError::NotValidForName,
                _ => CertificateError::ApplicationVerificationFailure,
            })
        };
        let cert = self
            .trust
            .verify(
                end_entity,
                intermediates,
                self.depth,
                webpki::KeyUsage::server_auth(),
                now,
            )
            .map_err(refused)?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(refused)?;
        Ok(ServerCertVerified::assertion())
    }

    crate::trust::handshake_signatures!();
}
