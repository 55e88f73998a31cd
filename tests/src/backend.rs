//! An HTTP backend that says who it is and echoes what it received: the demo's backends and the
//! tests' upstreams, so a person or a test sees which backend served a request and which headers
//! the proxy added.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Headers worth showing: what the proxy tells a backend about the original request.
pub const SHOWN_HEADERS: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "x-scheme",
];

/// The answer: `<name>: <METHOD> <uri>` then the shown headers, one per line; the header
/// `x-backend: <name>` too.
pub fn answer<B>(name: &str, req: &Request<B>) -> Response<Full<Bytes>> {
    let mut body = format!("{name}: {} {}\n", req.method(), req.uri());
    for header in SHOWN_HEADERS {
        if let Some(v) = req.headers().get(*header) {
            body.push_str(&format!(
                "  {header}: {}\n",
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = http::HeaderValue::from_str(name) {
        response.headers_mut().insert("x-backend", v);
    }
    response
}

/// Serves `answer(name, …)` on `listener` until the task is dropped (HTTP/1.1 and h2c).
pub async fn serve(name: &'static str, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                service_fn(move |req| async move { Ok::<_, Infallible>(answer(name, &req)) });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Starts a backend on a free 127.0.0.1 port on the current runtime; returns the port.
pub async fn spawn(name: &'static str) -> std::io::Result<u16> {
    spawn_on(std::net::Ipv4Addr::LOCALHOST.into(), name).await
}

/// Starts a backend on a free port of `ip` on the current runtime; returns the port.
pub async fn spawn_on(ip: std::net::IpAddr, name: &'static str) -> std::io::Result<u16> {
    let listener = TcpListener::bind((ip, 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve(name, listener));
    Ok(port)
}
