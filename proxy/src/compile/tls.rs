//! `kubernetes.io/tls` Secrets → rustls certified keys (pure: parsing and key checks only).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the Secret has no {0}")]
    MissingKey(&'static str),
    #[error("{key} is not valid PEM: {source}")]
    Pem {
        key: &'static str,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("tls.crt holds no certificate")]
    NoCertificate,
    #[error("the key is unusable or does not match the certificate: {0}")]
    Key(#[source] rustls::Error),
}

pub fn certified_key(secret: &Secret) -> Result<Arc<CertifiedKey>, SecretError> {
    let data = secret.data.as_ref();
    let crt = data
        .and_then(|d| d.get("tls.crt"))
        .ok_or(SecretError::MissingKey("tls.crt"))?;
    let key = data
        .and_then(|d| d.get("tls.key"))
        .ok_or(SecretError::MissingKey("tls.key"))?;
    let chain = CertificateDer::pem_slice_iter(&crt.0)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| SecretError::Pem {
            key: "tls.crt",
            source,
        })?;
    if chain.is_empty() {
        return Err(SecretError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(&key.0).map_err(|source| SecretError::Pem {
        key: "tls.key",
        source,
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(SecretError::Key)
}
