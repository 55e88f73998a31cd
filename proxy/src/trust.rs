//! A CA bundle (and optional CRLs) from a Secret, and certificate path validation against it
//! with nginx's `ssl_verify_depth` limit. Shared by client certificate authentication
//! (`auth-tls-*`) and upstream TLS verification (`proxy-ssl-*`). Parsed once, at compile time.

use rustls::pki_types::TrustAnchor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy, VerifiedPath,
};

/// The handshake-signature half of a rustls certificate verifier, the same for every verifier
/// here (the upstream's, the client's, and the one that checks no certificate): signatures are
/// checked with the verifier's `algorithms` field (ring's).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{key} is not valid PEM: {source}")]
    Pem {
        key: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    Empty(&'static str),
    #[error("ca.crt holds a certificate that cannot be a trust anchor: {0}")]
    Anchor(#[source] webpki::Error),
    #[error("ca.crl holds an unusable revocation list: {0}")]
    Crl(#[source] webpki::Error),
}

/// Trusted CAs, with their subjects (sent to clients as acceptable issuers) and CRLs.
#[derive(Debug)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    /// The DER subjects of the CAs, in order.
    pub subjects: Vec<Vec<u8>>,
}

impl TrustStore {
    /// `ca.crt` (one or more PEM certificates) and an optional `ca.crl` (PEM CRLs).
    pub fn from_pem(ca: &[u8], crl: Option<&[u8]>) -> Result<Self, TrustError> {
        let certs = CertificateDer::pem_slice_iter(ca)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TrustError::Pem {
                key: "ca.crt",
                source,
            })?;
        if certs.is_empty() {
            return Err(TrustError::Empty("ca.crt"));
        }
        let mut anchors = Vec::with_capacity(certs.len());
        let mut subjects = Vec::with_capacity(certs.len());
        for cert in &certs {
            let anchor = webpki::anchor_from_trusted_cert(cert).map_err(TrustError::Anchor)?;
            subjects.push(anchor.subject.as_ref().to_vec());
            anchors.push(anchor.to_owned());
        }
        let mut crls = Vec::new();
        if let Some(pem) = crl {
            for der in CertificateRevocationListDer::pem_slice_iter(pem) {
                let der = der.map_err(|source| TrustError::Pem {
                    key: "ca.crl",
                    source,
                })?;
                let owned = OwnedCertRevocationList::from_der(&der).map_err(TrustError::Crl)?;
                crls.push(CertRevocationList::from(owned));
            }
            if crls.is_empty() {
                return Err(TrustError::Empty("ca.crl"));
            }
        }
        Ok(Self {
            anchors,
            crls,
            subjects,
        })
    }

    /// Validates `leaf` + `intermediates` up to one of the CAs, for `usage`, with at most
    /// `depth` certificates above the leaf (OpenSSL's verify depth: 1 means the leaf is issued
    /// by a CA of the bundle directly). With CRLs, every certificate of the chain must be
    /// covered by one and not revoked (nginx's `ssl_crl` checks the whole chain).
    pub fn verify<'a>(
        &'a self,
        leaf: &'a CertificateDer<'a>,
        intermediates: &'a [CertificateDer<'a>],
        depth: u8,
        usage: KeyUsage,
        now: UnixTime,
    ) -> Result<EndEntityCert<'a>, webpki::Error> {
        let cert = EndEntityCert::try_from(leaf)?;
        let algorithms = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(builder) => Some(
                builder
                    .with_depth(RevocationCheckDepth::Chain)
                    .with_status_policy(UnknownStatusPolicy::Deny)
                    .with_expiration_policy(ExpirationPolicy::Enforce)
                    .build(),
            ),
            Err(_) => None,
        };
        let within_depth = |path: &VerifiedPath<'_>| {
            // The CA itself counts as one level, each intermediate as one more.
            if path.intermediate_certificates().count() + 1 > usize::from(depth) {
                Err(webpki::Error::MaximumPathDepthExceeded)
            } else {
                Ok(())
            }
        };
        cert.verify_for_usage(
            algorithms,
            &self.anchors,
            intermediates,
            now,
            usage,
            revocation,
            Some(&within_depth),
        )?;
        Ok(cert)
    }
}

/// OpenSSL's wording for a verification failure (what nginx puts after `FAILED:` in
/// `$ssl_client_verify`), and whether nginx's `optional_no_ca` tolerates it (the CA is not
/// known).
pub fn openssl_reason(err: &webpki::Error) -> (&'static str, bool) {
    use webpki::Error as E;
    match err {
        E::UnknownIssuer => ("unable to get local issuer certificate", true),
        E::CertExpired { .. } => ("certificate has expired", false),
        E::CertNotValidYet { .. } => ("certificate is not yet valid", false),
        E::CertRevoked => ("certificate revoked", false),
        E::UnknownRevocationStatus => ("unable to get certificate CRL", false),
        E::CrlExpired { .. } => ("CRL has expired", false),
        E::InvalidSignatureForPublicKey => ("certificate signature failure", false),
        E::RequiredEkuNotFoundContext(_) => ("unsupported certificate purpose", false),
        E::MaximumPathDepthExceeded => ("certificate chain too long", false),
        E::CaUsedAsEndEntity => ("invalid CA certificate", false),
        _ => ("certificate verify failed", false),
    }
}
