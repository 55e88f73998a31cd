//! The HTTP-01 solver: answers `/.well-known/acme-challenge/<token>` from the challenge
//! Ingresses the operator creates (DESIGN.md, "Where the operator and the proxy meet"). Our
//! proxy answers those paths itself; this server is the backend of the challenge Ingresses, so
//! a foreign ingress controller can route them too. Every replica serves it, leader or not:
//! the solver Service selects them all.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::reflector::Store;
use tokio::net::TcpListener;

pub use switchyard_crds::challenge::{
    CHALLENGE_LABEL, CHALLENGE_PREFIX, ChallengeAnswer, ChallengeError, RESPONSE_ANNOTATION,
    answers,
};

/// The key authorization for a request, if any challenge Ingress provides one.
pub fn lookup<'a>(
    answers: impl IntoIterator<Item = &'a ChallengeAnswer>,
    host: &str,
    path: &str,
) -> Option<&'a str> {
    let token = path.strip_prefix(CHALLENGE_PREFIX)?;
    // The Host header may carry a port (Pebble and Let's Encrypt send none, proxies may).
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    answers
        .into_iter()
        .find(|a| a.token == token && a.host.eq_ignore_ascii_case(host))
        .map(|a| a.key_authorization.as_str())
}

fn respond(store: &Store<Ingress>, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or_default();
    let all: Vec<ChallengeAnswer> = store
        .state()
        .iter()
        .filter_map(|ing| answers(ing).ok())
        .flatten()
        .collect();
    let (status, body) = match lookup(&all, host, req.uri().path()) {
        Some(key_authorization) => (StatusCode::OK, key_authorization.to_string()),
        None => (StatusCode::NOT_FOUND, "no such challenge\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

/// Binds the solver's address (before anything else starts, so a taken port fails fast).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving ACME HTTP-01 answers");
    Ok(listener)
}

/// Serves answers from `store` (a reflector of challenge Ingresses) until dropped.
pub async fn serve(listener: TcpListener, store: Store<Ingress>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = respond(&store, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A reflector of challenge Ingresses in every namespace, kept up to date until dropped.
pub fn challenge_ingresses(
    client: kube::Client,
) -> (Store<Ingress>, impl std::future::Future<Output = ()>) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let api: kube::Api<Ingress> = kube::Api::all(client);
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(&format!("{CHALLENGE_LABEL}=true"));
    let stream = reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects()
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watching challenge Ingresses");
            }
        });
    (reader, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn challenge(labels: serde_json::Value, response: Option<&str>, path: &str) -> Ingress {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = response {
            annotations.insert(RESPONSE_ANNOTATION.into(), r.into());
        }
        serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "shop", "labels": labels,
                         "annotations": annotations},
            "spec": {"rules": [{"host": "Shop.Example.com", "http": {"paths": [{
                "path": path, "pathType": "Exact",
                "backend": {"service": {"name": "solver", "port": {"number": 8089}}}
            }]}}]}
        }))
        .expect("valid Ingress")
    }

    const LABEL: fn() -> serde_json::Value = || json!({CHALLENGE_LABEL: "true"});

    #[test]
    fn a_valid_challenge_answers_its_host_and_token_only() {
        let ing = challenge(
            LABEL(),
            Some("tok_1.thumb-2"),
            "/.well-known/acme-challenge/tok_1",
        );
        let all = answers(&ing).expect("valid");
        assert_eq!(
            lookup(
                &all,
                "shop.example.com",
                "/.well-known/acme-challenge/tok_1"
            ),
            Some("tok_1.thumb-2")
        );
        // Port in the Host header and case do not matter.
        assert_eq!(
            lookup(
                &all,
                "SHOP.example.com:8080",
                "/.well-known/acme-challenge/tok_1"
            ),
            Some("tok_1.thumb-2")
        );
        assert_eq!(
            lookup(
                &all,
                "other.example.com",
                "/.well-known/acme-challenge/tok_1"
            ),
            None
        );
        assert_eq!(
            lookup(
                &all,
                "shop.example.com",
                "/.well-known/acme-challenge/tok_2"
            ),
            None
        );
        assert_eq!(lookup(&all, "shop.example.com", "/tok_1"), None);
    }

    #[test]
    fn anything_but_a_well_formed_labelled_challenge_is_refused() {
        let path = "/.well-known/acme-challenge/tok";
        assert_eq!(
            answers(&challenge(json!({}), Some("tok.thumb"), path)),
            Err(ChallengeError::NotLabelled)
        );
        assert_eq!(
            answers(&challenge(
                json!({CHALLENGE_LABEL: "false"}),
                Some("tok.thumb"),
                path
            )),
            Err(ChallengeError::NotLabelled)
        );
        assert_eq!(
            answers(&challenge(LABEL(), None, path)),
            Err(ChallengeError::NoResponse)
        );
        for bad in [
            "tok",
            "tok.",
            ".thumb",
            "tok.th umb",
            "<script>.x",
            "tok.thumb\nX: y",
        ] {
            assert_eq!(
                answers(&challenge(LABEL(), Some(bad), path)),
                Err(ChallengeError::MalformedResponse),
                "{bad:?}"
            );
        }
        assert_eq!(
            answers(&challenge(LABEL(), Some("other.thumb"), path)),
            Err(ChallengeError::TokenMismatch {
                annotated: "other".into(),
                path: "tok".into()
            })
        );
    }
}
