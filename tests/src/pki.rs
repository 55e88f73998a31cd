//! Throwaway PKI for a local control plane or ACME server: one CA, serving certificates for
//! loopback, client certificates, and a service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::Error;

/// A certificate authority that signs the other certificates of one test environment.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// PEM files written to disk for a process that wants paths.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(Error::pki("generate CA key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(Error::pki("CA parameters"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name(common_name, None);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(Error::pki("self-sign CA"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A serving certificate for `localhost`, `127.0.0.1` and any extra names.
    pub fn serving(
        &self,
        common_name: &str,
        extra_names: &[&str],
    ) -> Result<(String, String), Error> {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(extra_names.iter().map(|n| n.to_string()));
        let mut params = CertificateParams::new(names).map_err(Error::pki("serving names"))?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        params.distinguished_name = name(common_name, None);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate; Kubernetes reads the user from CN and groups from O.
    pub fn client(&self, user: &str, group: Option<&str>) -> Result<(String, String), Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(Error::pki("client parameters"))?;
        params.distinguished_name = name(user, group);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<(String, String), Error> {
        let key = KeyPair::generate().map_err(Error::pki("generate key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(Error::pki("sign certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

/// A fresh ECDSA P-256 key pair as (PKCS#8 private key PEM, SubjectPublicKeyInfo PEM), e.g.
/// for service-account token signing (the apiserver wants the public half in its own file).
pub fn key_pair_pem() -> Result<(String, String), Error> {
    let key = KeyPair::generate().map_err(Error::pki("generate key"))?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Writes a certificate and key pair as `<stem>.crt` / `<stem>.key` in `dir`.
pub fn write_pair(
    dir: &Path,
    stem: &str,
    (cert, key): &(String, String),
) -> Result<CertFiles, Error> {
    let files = CertFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    crate::write_file(&files.cert, cert)?;
    crate::write_file(&files.key, key)?;
    Ok(files)
}
