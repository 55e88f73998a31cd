//! The IO shell around instant-acme: account, order, HTTP-01 challenges, finalize, download.
//! Thin on purpose: what to do is decided in [`decide`](super::decide), what a failure means in
//! [`classify`](super::classify). Every request goes through [`RecordingClient`], so each error
//! carries the response it came from (status, Retry-After).
//!
//! An order spans several reconciles (challenge Ingresses must be served before the CA is told
//! to look), so every step here is idempotent on an order restored from its URL.

use std::future::Future;
use std::time::Duration;

use base64::Engine;
use instant_acme::{
    Account, AuthorizationStatus as AcmeAuthzStatus, ChallengeStatus, ChallengeType, Identifier,
    Key, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use switchyard_crds::{AuthorizationState, AuthorizationStatus};

use super::errors::AcmeError;
use super::http::{RecordingClient, ResponseLog, default_inner, scoped};
use super::key::{CertKey, account_key_pem, account_key_pkcs8};
use super::secret::{CertInfo, parse_leaf};

/// No single request to the CA may take longer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one instant-acme call, attaching the error response it failed on.
async fn step<T>(
    name: &'static str,
    call: impl Future<Output = Result<T, instant_acme::Error>>,
) -> Result<T, AcmeError> {
    let log = ResponseLog::default();
    scoped(log.clone(), call)
        .await
        .map_err(|e| AcmeError::acme(name, e, log.last_error()))
}

/// `spec.acme.caBundle` (base64 of PEM) as PEM bytes.
pub fn decode_ca_bundle(ca_bundle: &str) -> Result<Vec<u8>, AcmeError> {
    // Tolerate line breaks: people paste `base64` output as it comes.
    let compact: String = ca_bundle.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(AcmeError::CaBundleBase64)
}

/// A fresh P-256 account key as PKCS#8 PEM. Store it in the issuer's Secret *before*
/// registering (then [`connect_account`]), so a failed Secret write never leaves an account at
/// the CA whose key is lost.
pub fn generate_account_key() -> Result<String, AcmeError> {
    let (_, pkcs8) = step_sync(Key::generate_pkcs8())?;
    Ok(account_key_pem(&pkcs8))
}

fn step_sync<T>(result: Result<T, instant_acme::Error>) -> Result<T, AcmeError> {
    result.map_err(|e| AcmeError::acme("generating the account key", e, None))
}

/// How to reach the CA and who we are there.
#[derive(Clone, Copy, Debug)]
pub struct AccountSettings<'a> {
    /// `spec.acme.server`.
    pub directory_url: &'a str,
    /// `spec.acme.email`.
    pub email: Option<&'a str>,
    /// The decoded `spec.acme.caBundle`; `None`: the platform's trust roots.
    pub ca_bundle_pem: Option<&'a [u8]>,
    /// The account key from the issuer's Secret (`privateKeySecretRef`), PEM.
    pub key_pem: &'a [u8],
    /// `status.acme.lastRegisteredEmail`: the contact is updated only when it differs.
    pub registered_email: Option<&'a str>,
}

/// A registered ACME account. Cheap to clone; share it between the Certificates of an issuer.
#[derive(Clone)]
pub struct AcmeAccount {
    account: Account,
    /// The contact now registered (for `status.acme.lastRegisteredEmail`).
    pub registered_email: Option<String>,
}

impl std::fmt::Debug for AcmeAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeAccount")
            .field("url", &self.account.id())
            .field("registered_email", &self.registered_email)
            .finish()
    }
}

/// Finds the account of the key at the CA, registering it if the CA does not know it, and
/// brings its contact up to date. A key that is not ECDSA P-256 is refused with
/// [`AcmeError::AccountKey`] before any request (the Secret must stay as it is).
pub async fn connect_account(settings: AccountSettings<'_>) -> Result<AcmeAccount, AcmeError> {
    let pkcs8 = account_key_pkcs8(settings.key_pem).map_err(AcmeError::AccountKey)?;
    let key = Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(pkcs8.secret_pkcs8_der()))
        .map_err(|e| AcmeError::acme("reading the account key", e, None))?;
    let inner = default_inner(settings.ca_bundle_pem).map_err(AcmeError::HttpClient)?;
    let http = RecordingClient::new(inner, REQUEST_TIMEOUT);
    let builder = Account::builder_with_http(Box::new(http));
    // newAccount with the key returns the existing account, or registers one (terms agreed).
    let (account, _) = step(
        "registering the ACME account",
        builder.create_from_key((key, pkcs8.into()), settings.directory_url.to_owned()),
    )
    .await?;
    if settings.email != settings.registered_email {
        let contact = settings.email.map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        step(
            "updating the account's contact",
            account.update_contacts(&contacts),
        )
        .await?;
    }
    Ok(AcmeAccount {
        account,
        registered_email: settings.email.map(str::to_owned),
    })
}

impl AcmeAccount {
    /// The account's URL at the CA (`status.acme.uri`).
    pub fn url(&self) -> &str {
        self.account.id()
    }

    /// Creates an order for the names. Record its URL before doing anything else with it.
    pub async fn new_order(&self, dns_names: &[String]) -> Result<AcmeOrder, AcmeError> {
        let identifiers: Vec<Identifier> = dns_names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let order = step(
            "creating the order",
            self.account.new_order(&NewOrder::new(&identifiers)),
        )
        .await?;
        Ok(AcmeOrder { order })
    }

    /// Restores an order from its URL (the one recorded in status).
    pub async fn order(&self, url: &str) -> Result<AcmeOrder, AcmeError> {
        let order = step("fetching the order", self.account.order(url.to_owned())).await?;
        Ok(AcmeOrder { order })
    }
}

/// Where an order stands at the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderPhase {
    /// Authorizations are pending: present challenges, then tell the CA.
    Pending,
    /// All names are validated: finalize.
    Ready,
    /// Finalized, being signed.
    Processing,
    /// Signed: download.
    Valid,
    Invalid,
}

/// One HTTP-01 challenge to present: serve `key_authorization` at
/// `http://<dns_name>/.well-known/acme-challenge/<token>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http01Challenge {
    pub dns_name: String,
    pub token: String,
    pub key_authorization: String,
    /// Whether the CA was already told to validate it.
    pub submitted: bool,
}

/// A certificate as issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Leaf then intermediates, PEM: `tls.crt`.
    pub chain_pem: String,
    /// The certificate's key, PKCS#8 PEM: `tls.key`.
    pub key_pem: String,
    pub info: CertInfo,
}

/// An order in flight.
pub struct AcmeOrder {
    order: Order,
}

impl std::fmt::Debug for AcmeOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeOrder")
            .field("url", &self.order.url())
            .finish_non_exhaustive()
    }
}

impl AcmeOrder {
    /// The order's URL: record it in status while the order is in flight.
    pub fn url(&self) -> &str {
        self.order.url()
    }

    /// The state last seen (no request).
    pub fn phase(&mut self) -> OrderPhase {
        match self.order.state().status {
            OrderStatus::Pending => OrderPhase::Pending,
            OrderStatus::Ready => OrderPhase::Ready,
            OrderStatus::Processing => OrderPhase::Processing,
            OrderStatus::Valid => OrderPhase::Valid,
            OrderStatus::Invalid => OrderPhase::Invalid,
        }
    }

    /// The HTTP-01 challenges of the names not yet validated.
    pub async fn http01_challenges(&mut self) -> Result<Vec<Http01Challenge>, AcmeError> {
        let mut found = Vec::new();
        let mut authorizations = self.order.authorizations();
        while let Some(authz) = step("fetching an authorization", async {
            authorizations.next().await.transpose()
        })
        .await?
        {
            if authz.status != AcmeAuthzStatus::Pending {
                continue;
            }
            let dns_name = authz.identifier().to_string();
            let challenge = authz
                .challenges
                .iter()
                .find(|c| c.r#type == ChallengeType::Http01)
                .ok_or_else(|| AcmeError::NoHttp01 {
                    name: dns_name.clone(),
                })?;
            let submitted = challenge.status != ChallengeStatus::Pending;
            let token = challenge.token.clone();
            let mut authz = authz;
            let handle = authz
                .challenge(ChallengeType::Http01)
                .ok_or(AcmeError::NoHttp01 {
                    name: dns_name.clone(),
                })?;
            found.push(Http01Challenge {
                dns_name,
                token,
                key_authorization: handle.key_authorization().as_str().to_owned(),
                submitted,
            });
        }
        Ok(found)
    }

    /// Tells the CA to validate the pending HTTP-01 challenges (only those not yet submitted:
    /// safe to call again after a restart). Check that each token is served first.
    pub async fn submit_challenges(&mut self) -> Result<(), AcmeError> {
        let mut authorizations = self.order.authorizations();
        while let Some(mut authz) = step("fetching an authorization", async {
            authorizations.next().await.transpose()
        })
        .await?
        {
            if authz.status != AcmeAuthzStatus::Pending {
                continue;
            }
            let name = authz.identifier().to_string();
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or(AcmeError::NoHttp01 { name })?;
            if challenge.status == ChallengeStatus::Pending {
                step("submitting a challenge", challenge.set_ready()).await?;
            }
        }
        Ok(())
    }

    /// Polls until the order is ready to finalize (or further), waiting at most `max_wait`.
    /// An invalid order becomes [`AcmeError::OrderInvalid`] with each name's error; running
    /// out of time is [`AcmeError::StillPending`] (carry on with the same order later).
    pub async fn wait_ready(&mut self, max_wait: Duration) -> Result<OrderPhase, AcmeError> {
        if matches!(
            self.phase(),
            OrderPhase::Ready | OrderPhase::Processing | OrderPhase::Valid
        ) {
            return Ok(self.phase());
        }
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(max_wait);
        let polled = step("waiting for validation", self.order.poll_ready(&policy)).await;
        match polled {
            Ok(OrderStatus::Invalid) => Err(self.invalid().await),
            Ok(_) => Ok(self.phase()),
            Err(_) if self.phase() == OrderPhase::Invalid => Err(self.invalid().await),
            Err(AcmeError::Acme { source, .. })
                if matches!(*source, instant_acme::Error::Timeout(_)) =>
            {
                Err(AcmeError::StillPending {
                    state: "pending".into(),
                    waited: switchyard_crds::format_duration(max_wait),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The per-name story of an invalid order, fetched fresh.
    async fn invalid(&mut self) -> AcmeError {
        let problem = self.order.state().error.clone();
        AcmeError::OrderInvalid {
            authorizations: self.authorizations().await.unwrap_or_default(),
            problem,
        }
    }

    /// Each name's authorization as the CA sees it now, for `status.authorizations` (times
    /// left for the caller to fill in).
    pub async fn authorizations(&mut self) -> Result<Vec<AuthorizationStatus>, AcmeError> {
        let mut reports = Vec::new();
        let mut authorizations = self.order.authorizations();
        while let Some(mut authz) = step("fetching an authorization", async {
            authorizations.next().await.transpose()
        })
        .await?
        {
            step("refreshing an authorization", async {
                authz.refresh().await.map(|_| ())
            })
            .await?;
            let error = authz
                .challenges
                .iter()
                .find(|c| c.r#type == ChallengeType::Http01)
                .and_then(|c| c.error.as_ref())
                .or_else(|| authz.challenges.iter().find_map(|c| c.error.as_ref()));
            reports.push(AuthorizationStatus {
                dns_name: authz.identifier().to_string(),
                state: match authz.status {
                    AcmeAuthzStatus::Pending => AuthorizationState::Pending,
                    AcmeAuthzStatus::Valid => AuthorizationState::Valid,
                    AcmeAuthzStatus::Invalid => AuthorizationState::Invalid,
                    AcmeAuthzStatus::Revoked => AuthorizationState::Revoked,
                    AcmeAuthzStatus::Expired => AuthorizationState::Expired,
                    AcmeAuthzStatus::Deactivated => AuthorizationState::Deactivated,
                },
                error_type: error.and_then(|e| e.r#type.clone()),
                error_detail: error.and_then(|e| e.detail.clone()),
                last_attempt_time: None,
                next_retry_time: None,
            });
        }
        Ok(reports)
    }

    /// Finalizes a ready order with a CSR for `key` and downloads the chain, waiting at most
    /// `max_wait` for the CA to sign. The key exists only in memory until the caller writes
    /// the Secret, so an order found `Processing`/`Valid` here (a restart in between) is
    /// [`AcmeError::KeyLost`]: start a new order.
    pub async fn finalize(
        &mut self,
        key: &CertKey,
        dns_names: &[String],
        max_wait: Duration,
    ) -> Result<Issued, AcmeError> {
        match self.phase() {
            OrderPhase::Ready => {}
            OrderPhase::Processing | OrderPhase::Valid => return Err(AcmeError::KeyLost),
            OrderPhase::Invalid => return Err(self.invalid().await),
            OrderPhase::Pending => {
                return Err(AcmeError::StillPending {
                    state: "pending".into(),
                    waited: "0s".into(),
                });
            }
        }
        let csr = key.csr_der(dns_names).map_err(AcmeError::Key)?;
        step("finalizing the order", self.order.finalize_csr(&csr)).await?;
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(max_wait);
        let chain_pem = match step(
            "downloading the certificate",
            self.order.poll_certificate(&policy),
        )
        .await
        {
            Ok(chain) => chain,
            Err(AcmeError::Acme { source, .. })
                if matches!(*source, instant_acme::Error::Timeout(_)) =>
            {
                return Err(AcmeError::StillPending {
                    state: "processing".into(),
                    waited: switchyard_crds::format_duration(max_wait),
                });
            }
            Err(e) => return Err(e),
        };
        let key_pem = key.to_pem();
        let info = parse_leaf(chain_pem.as_bytes(), Some(&key_pem))
            .map_err(|problem| AcmeError::Chain(format!("{problem:?}")))?;
        if !info.key_matches {
            return Err(AcmeError::Chain(
                "the certificate is not for the key in the CSR".into(),
            ));
        }
        Ok(Issued {
            chain_pem,
            key_pem,
            info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_bundle_decodes_with_line_breaks() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(pem);
        let (a, b) = encoded.split_at(20);
        assert_eq!(
            decode_ca_bundle(&format!("{a}\n{b}\n")).ok().as_deref(),
            Some(&pem[..])
        );
        assert!(matches!(
            decode_ca_bundle("not base64!"),
            Err(AcmeError::CaBundleBase64(_))
        ));
    }

    #[test]
    fn generated_account_keys_are_accepted_back() {
        let pem = generate_account_key().expect("key");
        assert!(account_key_pkcs8(pem.as_bytes()).is_ok());
    }

    #[tokio::test]
    async fn foreign_account_keys_are_refused_before_any_request() {
        let p384 = CertKey::generate(&switchyard_crds::PrivateKey {
            algorithm: Some(switchyard_crds::KeyAlgorithm::Ecdsa),
            size: Some(384),
            rotation_policy: None,
        })
        .expect("key")
        .to_pem();
        let settings = AccountSettings {
            // Unroutable: any request would fail differently.
            directory_url: "https://127.0.0.1:1/dir",
            email: None,
            ca_bundle_pem: None,
            key_pem: p384.as_bytes(),
            registered_email: None,
        };
        let error = connect_account(settings).await.expect_err("refused");
        assert!(matches!(error, AcmeError::AccountKey(_)), "{error:?}");
    }
}
