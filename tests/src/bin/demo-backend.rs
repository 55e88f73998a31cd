//! A small HTTP backend for `make demo` and end-to-end tests: answers every request with its
//! own name and what it received, so a person (or a test) sees which backend served a request
//! and which headers the proxy added.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "An HTTP backend that says who it is and echoes what it received")]
struct Cli {
    /// The name it answers with, e.g. blue or green.
    #[arg(long)]
    name: String,
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the port actually bound to this file (for scripts that chose port 0).
    #[arg(long)]
    port_file: Option<PathBuf>,
}

/// Headers worth showing: what the proxy tells a backend about the original request.
const SHOWN_HEADERS: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "x-scheme",
];

fn answer(name: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("bind {}", cli.listen))?;
    let addr = listener.local_addr()?;
    if let Some(file) = &cli.port_file {
        std::fs::write(file, addr.port().to_string())
            .with_context(|| format!("write {}", file.display()))?;
    }
    eprintln!("demo backend {} listening on {addr}", cli.name);
    let name: &'static str = Box::leak(cli.name.into_boxed_str());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
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
