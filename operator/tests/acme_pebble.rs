//! The ACME shell against a real Pebble: Pebble really fetches each HTTP-01 token from a small
//! HTTP server in this test (its DNS answers 127.0.0.1 for every name), issues a certificate for
//! two names, and the chain verifies against Pebble's issuing root. Names Pebble refuses end in
//! classified errors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use bytes::Bytes;
use common::verify_chain;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use switchyard_crds::{AuthorizationState, PrivateKey};
use switchyard_operator::certs::{
    AccountSettings, AcmeAccount, AcmeError, CertKey, FailureClass, OrderPhase, connect_account,
    generate_account_key,
};
use switchyard_tests::pebble::{Pebble, PebbleOptions};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);

/// token → key authorization: what the HTTP-01 server answers.
type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Serves `/.well-known/acme-challenge/<token>` from `tokens` on a free loopback port; 404 for
/// anything else. Returns the port.
async fn serve_http01(tokens: Tokens) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let tokens = tokens.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let answer = req
                        .uri()
                        .path()
                        .strip_prefix("/.well-known/acme-challenge/")
                        .and_then(|token| tokens.lock().expect("lock").get(token).cloned());
                    async move {
                        Ok::<_, Infallible>(match answer {
                            Some(body) => Response::new(Full::new(Bytes::from(body))),
                            None => {
                                let mut r = Response::new(Full::new(Bytes::from_static(b"")));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

struct Setup {
    pebble: Pebble,
    tokens: Tokens,
    account: AcmeAccount,
}

async fn setup() -> Setup {
    let tokens = Tokens::default();
    let port = serve_http01(tokens.clone()).await;
    let pebble = Pebble::start(PebbleOptions {
        http01_port: port,
        certificate_validity: Duration::from_secs(3600),
    })
    .expect("pebble");
    let key_pem = generate_account_key().expect("account key");
    let settings = AccountSettings {
        directory_url: pebble.directory_url(),
        email: Some("ops@example.com"),
        ca_bundle_pem: Some(pebble.server_ca_pem().as_bytes()),
        key_pem: key_pem.as_bytes(),
        registered_email: None,
    };
    let account = connect_account(settings).await.expect("account");
    // The same key finds the same account: nothing new is registered on the next reconcile.
    let again = connect_account(AccountSettings {
        registered_email: Some("ops@example.com"),
        ..settings
    })
    .await
    .expect("account again");
    assert_eq!(again.url(), account.url());
    assert_eq!(again.registered_email.as_deref(), Some("ops@example.com"));
    Setup {
        pebble,
        tokens,
        account,
    }
}

/// Presents the order's challenges on the test server, except for the names in `withhold`.
async fn present(
    setup: &Setup,
    order: &mut switchyard_operator::certs::AcmeOrder,
    withhold: &[&str],
) -> usize {
    let challenges = order.http01_challenges().await.expect("challenges");
    let mut tokens = setup.tokens.lock().expect("lock");
    for c in &challenges {
        assert!(!c.submitted);
        assert!(c.key_authorization.starts_with(&format!("{}.", c.token)));
        if !withhold.contains(&c.dns_name.as_str()) {
            tokens.insert(c.token.clone(), c.key_authorization.clone());
        }
    }
    challenges.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_a_certificate_for_two_names() {
    let setup = setup().await;
    let names = vec![
        "shop.example.com".to_string(),
        "www.shop.example.com".to_string(),
    ];
    let order = setup.account.new_order(&names).await.expect("order");
    let url = order.url().to_owned();

    // Each step on an order restored from its URL, as reconciles after a restart would do.
    let mut order = setup.account.order(&url).await.expect("restore");
    assert_eq!(order.phase(), OrderPhase::Pending);
    assert_eq!(present(&setup, &mut order, &[]).await, 2);
    let mut order = setup.account.order(&url).await.expect("restore");
    order.submit_challenges().await.expect("submit");
    let mut order = setup.account.order(&url).await.expect("restore");
    assert_eq!(
        order.wait_ready(WAIT).await.expect("ready"),
        OrderPhase::Ready
    );
    // Nothing left to present once the names are valid.
    assert!(
        order
            .http01_challenges()
            .await
            .expect("challenges")
            .is_empty()
    );
    let authorizations = order.authorizations().await.expect("authorizations");
    assert_eq!(authorizations.len(), 2);
    assert!(
        authorizations
            .iter()
            .all(|a| a.state == AuthorizationState::Valid)
    );

    let key = CertKey::generate(&PrivateKey::default()).expect("key");
    let issued = order.finalize(&key, &names, WAIT).await.expect("issued");
    assert!(issued.info.key_matches);
    let mut got = issued.info.dns_names.clone();
    got.sort();
    assert_eq!(got, names);
    let now = jiff::Timestamp::now();
    assert!(issued.info.not_before <= now && now < issued.info.not_after);
    let lifetime = issued.info.not_after.duration_since(issued.info.not_before);
    assert!(
        lifetime.as_secs() <= 3600,
        "Pebble was told to issue for an hour"
    );

    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain PEM");
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    verify_chain(
        &chain,
        &setup.pebble.issuing_root_pem().expect("root"),
        &name_refs,
    );

    // The order is done: restored now, it is Valid, and finalizing again says the key is gone.
    let mut order = setup.account.order(&url).await.expect("restore");
    assert_eq!(order.phase(), OrderPhase::Valid);
    assert!(matches!(
        order.finalize(&key, &names, WAIT).await,
        Err(AcmeError::KeyLost)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_cannot_be_validated_end_in_classified_errors() {
    let setup = setup().await;

    // 1. The token of one name is not served (404): the order becomes invalid, with that
    //    name's error from the CA, and the failure is permanent for this spec.
    let names = vec![
        "ok.example.com".to_string(),
        "missing.example.com".to_string(),
    ];
    let mut order = setup.account.new_order(&names).await.expect("order");
    present(&setup, &mut order, &["missing.example.com"]).await;
    order.submit_challenges().await.expect("submit");
    let error = order.wait_ready(WAIT).await.expect_err("invalid");
    let AcmeError::OrderInvalid { authorizations, .. } = &error else {
        panic!("expected an invalid order, got {error:?}");
    };
    let missing = authorizations
        .iter()
        .find(|a| a.dns_name == "missing.example.com")
        .expect("reported");
    assert_eq!(missing.state, AuthorizationState::Invalid);
    assert_eq!(
        missing.error_type.as_deref(),
        Some("urn:ietf:params:acme:error:unauthorized")
    );
    // Retried with backoff, not given up on: the usual cause is a route not in place yet.
    let classified = error.classify();
    assert_eq!(classified.class, FailureClass::Transient);
    assert!(
        classified.message.contains("missing.example.com"),
        "{}",
        classified.message
    );

    // 2. A name the CA refuses outright: the new-order request fails, permanently, with the
    //    response recorded.
    let error = setup
        .account
        .new_order(&["under_score.example.com".to_string()])
        .await
        .expect_err("refused");
    let classified = error.classify();
    assert_eq!(classified.class, FailureClass::Permanent, "{error:?}");
    let AcmeError::Acme { response, .. } = &error else {
        panic!("expected a CA error, got {error:?}");
    };
    assert_eq!(response.as_ref().map(|r| r.status), Some(400));
}
