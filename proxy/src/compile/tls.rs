//! `kubernetes.io/tls` Secrets → rustls certified keys (pure: parsing and key checks only).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::ObjectKey;

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

/// Certificates parsed by earlier compiles, by Secret and a hash of its `tls.crt` and
/// `tls.key`: a compile parses only the Secrets that changed (parsing a private key is the
/// costliest part of a compile with many TLS hosts).
#[derive(Debug, Default)]
pub struct CertCache {
    entries: HashMap<ObjectKey, (u64, Result<Arc<CertifiedKey>, String>)>,
    /// Client certificate CAs and upstream TLS configurations.
    pub(super) tls: super::host_tls::TlsMemo,
}

impl CertCache {
    /// The Secret's certificate, from the cache when its data is unchanged; `fresh` collects
    /// what this compile used, to become the next cache.
    pub fn get(
        &self,
        fresh: &mut CertCache,
        key: &ObjectKey,
        secret: &Secret,
    ) -> Result<Arc<CertifiedKey>, String> {
        let fingerprint = fingerprint(secret);
        if let Some((_, result)) = fresh.entries.get(key).filter(|(f, _)| *f == fingerprint) {
            return result.clone();
        }
        let result = match self.entries.get(key).filter(|(f, _)| *f == fingerprint) {
            Some((_, result)) => result.clone(),
            None => certified_key(secret).map_err(|err| err.to_string()),
        };
        fresh
            .entries
            .insert(key.clone(), (fingerprint, result.clone()));
        result
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn fingerprint(secret: &Secret) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    let data = secret.data.as_ref();
    for name in ["tls.crt", "tls.key"] {
        data.and_then(|d| d.get(name))
            .map(|v| &v.0)
            .hash(&mut hasher);
    }
    hasher.finish()
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
