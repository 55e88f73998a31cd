//! Graceful shutdown through the real binary: on SIGTERM the proxy stops accepting connections
//! but a request already in flight (here, to a slow backend) is answered in full before the
//! process exits, successfully.

mod manifests_common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use manifests_common::{Folder, Proxy, backend_service, ingress, ingress_class, request};
use tokio::net::TcpListener;

/// A backend that answers after `delay`.
async fn slow_backend(delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_req| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"slow but complete\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    let folder = Folder::new();
    let slow = slow_backend(Duration::from_millis(1500)).await;
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("slow", slow));
    objects.push(
        ingress("slow")
            .class("switchyard")
            .rule("slow.test", &[("/", "Prefix", "slow")])
            .build(),
    );
    folder.write_objects("all.json", &objects);
    let mut proxy = Proxy::start(&folder, &[]).await;

    let port = proxy.http;
    let in_flight =
        tokio::spawn(async move { request(port, "GET / HTTP/1.1\r\nHost: slow.test\r\n").await });
    // Let the request reach the backend, then ask the proxy to stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    switchyard_tests::process::signal(proxy.process.pid(), "TERM");

    let reply = in_flight.await.expect("join");
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert_eq!(reply.body, "slow but complete\n");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match proxy.process.check_running() {
            Err(switchyard_tests::Error::Exited { status, .. }) => {
                assert!(status.contains("exit status: 0"), "exit {status}");
                break;
            }
            Err(other) => panic!("{other}"),
            Ok(()) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no exit within 10 s of SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // No new connections once stopping: the listener is closed.
    assert_eq!(
        request(port, "GET / HTTP/1.1\r\nHost: slow.test\r\n")
            .await
            .status,
        0
    );
}
