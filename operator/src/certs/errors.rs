//! Errors of the ACME shell, each able to say what it means for the next attempt.

use instant_acme::Problem;
use jiff::Timestamp;
use switchyard_crds::{AuthorizationState, AuthorizationStatus};

use super::classify::{FailureClass, classify_problem, classify_type, worst};
use super::http::{HttpClientError, ResponseRecord};
use super::key::{AccountKeyError, KeyError};

/// A failed ACME step.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The issuer's account Secret holds a key we cannot use; it is never overwritten.
    #[error("the account key in the issuer's Secret cannot be used")]
    AccountKey(#[source] AccountKeyError),
    #[error("spec.acme.caBundle is not valid base64")]
    CaBundleBase64(#[source] base64::DecodeError),
    #[error("cannot set up HTTPS to the ACME server")]
    HttpClient(#[source] HttpClientError),
    /// A request to the CA failed; `response` is the error response, when there was one.
    /// (Boxed: instant-acme's error is large, and this enum travels in every Result.)
    #[error("{step} failed")]
    Acme {
        step: &'static str,
        #[source]
        source: Box<instant_acme::Error>,
        response: Option<Box<ResponseRecord>>,
    },
    /// Validation failed: the order is invalid. Each name's authorization says why.
    #[error("the order is invalid: {}", summary(.problem.as_ref(), .authorizations))]
    OrderInvalid {
        authorizations: Vec<AuthorizationStatus>,
        problem: Option<Problem>,
    },
    #[error("{name} offers no http-01 challenge")]
    NoHttp01 { name: String },
    /// The order did not reach the wanted state within the bounded wait; poll again later.
    #[error("the order is still {state} after {waited}")]
    StillPending { state: String, waited: String },
    /// The order is valid but its key was lost (a restart between finalize and download).
    #[error("the order was finalized with a key that is gone; a new order is needed")]
    KeyLost,
    #[error("the certificate key")]
    Key(#[source] KeyError),
    #[error("the CA returned a certificate chain that cannot be read: {0}")]
    Chain(String),
}

/// What a failure means, for status and the next attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub class: FailureClass,
    /// The CA's Retry-After, when it sent one.
    pub retry_after: Option<Timestamp>,
    /// The CA's error type (urn:ietf:params:acme:error:…), when there was one.
    pub problem_type: Option<String>,
    /// One line for the condition message: the whole error chain, with the CA's detail.
    pub message: String,
}

impl AcmeError {
    /// Shorthand for a failed request.
    pub fn acme(
        step: &'static str,
        source: instant_acme::Error,
        response: Option<ResponseRecord>,
    ) -> Self {
        AcmeError::Acme {
            step,
            source: Box::new(source),
            response: response.map(Box::new),
        }
    }

    /// Classifies this failure.
    pub fn classify(&self) -> Classified {
        let message = chain_message(self);
        let (class, retry_after, problem_type) = match self {
            AcmeError::Acme {
                source, response, ..
            } => {
                let retry_after = response.as_ref().and_then(|r| r.retry_after);
                match source.as_ref() {
                    instant_acme::Error::Api(problem) => {
                        let mut class = classify_problem(problem);
                        // The status on the wire counts even when the body says otherwise.
                        if response.as_ref().is_some_and(|r| r.status == 429) {
                            class = FailureClass::RateLimited;
                        }
                        (class, retry_after, problem.r#type.clone())
                    }
                    instant_acme::Error::Unsupported(_) => (FailureClass::Permanent, None, None),
                    _ => (FailureClass::Transient, retry_after, None),
                }
            }
            AcmeError::OrderInvalid {
                authorizations,
                problem,
            } => {
                let from_names: Vec<FailureClass> = authorizations
                    .iter()
                    .filter_map(|a| a.error_type.as_deref().map(classify_type))
                    .collect();
                let class = if from_names.is_empty() {
                    problem
                        .as_ref()
                        .map_or(FailureClass::Transient, classify_problem)
                } else {
                    worst(from_names)
                };
                let problem_type = authorizations
                    .iter()
                    .find_map(|a| a.error_type.clone())
                    .or_else(|| problem.as_ref().and_then(|p| p.r#type.clone()));
                (class, None, problem_type)
            }
            // Nothing the CA can change: the spec or the Secret must change.
            AcmeError::AccountKey(_)
            | AcmeError::CaBundleBase64(_)
            | AcmeError::NoHttp01 { .. } => (FailureClass::Permanent, None, None),
            AcmeError::Key(
                KeyError::RsaNotGeneratable { .. } | KeyError::EcdsaSizeNotOffered { .. },
            ) => (FailureClass::Permanent, None, None),
            AcmeError::HttpClient(_)
            | AcmeError::StillPending { .. }
            | AcmeError::KeyLost
            | AcmeError::Key(_)
            | AcmeError::Chain(_) => (FailureClass::Transient, None, None),
        };
        Classified {
            class,
            retry_after,
            problem_type,
            message,
        }
    }
}

/// "step failed: cause: cause" — the Display of the error and all its sources.
pub fn chain_message(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Transparent wrappers repeat their source's text; say it once.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn summary(problem: Option<&Problem>, authorizations: &[AuthorizationStatus]) -> String {
    let failed: Vec<String> = authorizations
        .iter()
        .filter(|a| a.state != AuthorizationState::Valid)
        .filter(|a| a.error_type.is_some() || a.error_detail.is_some())
        .map(|a| {
            format!(
                "{}: {}: {}",
                a.dns_name,
                a.error_type.as_deref().unwrap_or("error"),
                a.error_detail.as_deref().unwrap_or("no detail")
            )
        })
        .collect();
    if !failed.is_empty() {
        return failed.join("; ");
    }
    match problem {
        Some(problem) => problem.to_string(),
        None => "the CA gave no reason".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn api(json: serde_json::Value) -> instant_acme::Error {
        instant_acme::Error::Api(serde_json::from_value(json).expect("problem"))
    }

    fn record(status: u16, retry_after: Option<Timestamp>) -> ResponseRecord {
        ResponseRecord {
            method: http::Method::POST,
            url: "https://ca.test/new-order".into(),
            status,
            retry_after,
            received_at: ts("2026-11-22T21:00:00Z"),
        }
    }

    #[test]
    fn rate_limit_keeps_retry_after() {
        let at = ts("2026-11-23T00:00:00Z");
        let error = AcmeError::acme(
            "creating the order",
            api(serde_json::json!({
                "type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "too many certificates already issued",
                "status": 429,
            })),
            Some(record(429, Some(at))),
        );
        let classified = error.classify();
        assert_eq!(classified.class, FailureClass::RateLimited);
        assert_eq!(classified.retry_after, Some(at));
        assert_eq!(
            classified.problem_type.as_deref(),
            Some("urn:ietf:params:acme:error:rateLimited")
        );
        assert!(
            classified
                .message
                .starts_with("creating the order failed: API error: too many certificates"),
            "{}",
            classified.message
        );
    }

    #[test]
    fn rejected_identifier_is_permanent_and_network_is_transient() {
        let error = AcmeError::acme(
            "creating the order",
            api(serde_json::json!({
                "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": "Invalid identifiers requested :: Cannot issue for \"x.invalid\"",
                "status": 400,
            })),
            Some(record(400, None)),
        );
        assert_eq!(error.classify().class, FailureClass::Permanent);

        let error = AcmeError::acme(
            "fetching the directory",
            instant_acme::Error::Str("connection reset"),
            None,
        );
        assert_eq!(error.classify().class, FailureClass::Transient);
    }

    #[test]
    fn invalid_order_is_classified_by_its_names() {
        let name = |n: &str, state, t: Option<&str>| AuthorizationStatus {
            dns_name: n.into(),
            state,
            error_type: t.map(str::to_owned),
            error_detail: t.map(|_| "Invalid response: 404".to_owned()),
            last_attempt_time: None,
            next_retry_time: None,
        };
        let error = AcmeError::OrderInvalid {
            authorizations: vec![
                name("a.example.com", AuthorizationState::Valid, None),
                name(
                    "b.example.com",
                    AuthorizationState::Invalid,
                    Some("urn:ietf:params:acme:error:unauthorized"),
                ),
            ],
            problem: None,
        };
        let classified = error.classify();
        assert_eq!(classified.class, FailureClass::Transient);
        assert_eq!(
            classified.message,
            "the order is invalid: b.example.com: urn:ietf:params:acme:error:unauthorized: \
             Invalid response: 404"
        );
        let dns = AcmeError::OrderInvalid {
            authorizations: vec![name(
                "b.example.com",
                AuthorizationState::Invalid,
                Some("urn:ietf:params:acme:error:dns"),
            )],
            problem: None,
        };
        assert_eq!(dns.classify().class, FailureClass::Transient);
    }

    #[test]
    fn unusable_keys_are_permanent() {
        let error = AcmeError::AccountKey(AccountKeyError::Unsupported {
            found: "an RSA key (PKCS#1)".into(),
        });
        let classified = error.classify();
        assert_eq!(classified.class, FailureClass::Permanent);
        assert_eq!(
            classified.message,
            "the account key in the issuer's Secret cannot be used: the account key is an RSA \
             key (PKCS#1); only ECDSA P-256 account keys are supported, and it is left untouched"
        );
        let error = AcmeError::Key(KeyError::RsaNotGeneratable { size: 2048 });
        assert_eq!(error.classify().class, FailureClass::Permanent);
    }
}
