//! Live reconfiguration under load, through the real binary in `--manifests` mode: a few
//! keep-alive HTTP/1.1 clients request `load.test` in a loop while the test makes 500 changes to
//! the manifests folder, in turn:
//!
//! - the EndpointSlices of the loaded Service: backend A, A and B, B, A and B, A, …;
//! - the paths of an Ingress for a host that is not under load (added and removed);
//! - a TLS Secret rewritten with the certificate of the next generation.
//!
//! No request may fail (every answer a 200 from A or B), a WebSocket opened before the changes
//! still echoes after them, and the final state of all three is what gets served. Files are
//! written atomically (temporary file + rename); the proxy polls the folder, so several changes
//! may reach it as one.

mod manifests_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use manifests_common::{
    CONTROLLER, Folder, Proxy, Trust, backend, backend_service, endpoint_slice, get, https_get,
    ingress, ingress_class, tls_secret,
};
use serde_json::{Value, json};
use switchyard_tests::eventually;
use switchyard_tests::pki::TestCa;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const CHANGES: usize = 500;
/// Between two changes: 500 changes take about 7.5 s, some 30 polls of the folder.
const PACE: Duration = Duration::from_millis(15);
const CLIENTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The changing objects

/// Which backends the EndpointSlices of `load` point at, by endpoint change number.
fn endpoint_state(n: usize) -> &'static [&'static str] {
    const STATES: [&[&str]; 4] = [
        &["load-a"],
        &["load-a", "load-b"],
        &["load-b"],
        &["load-a", "load-b"],
    ];
    STATES[n % STATES.len()]
}

fn load_slices(state: &[&str], ports: &BTreeMap<&str, u16>) -> Vec<Value> {
    state
        .iter()
        .map(|name| endpoint_slice(name, "load", "http", ports[name], &["127.0.0.1"]))
        .collect()
}

/// How many paths (`/p0` …) the Ingress of `churn.test` has, by path change number.
fn path_count(n: usize) -> usize {
    n % 5 + 1
}

fn churn_ingress(paths: usize) -> Value {
    let names: Vec<String> = (0..paths).map(|i| format!("/p{i}")).collect();
    let paths: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|p| (p.as_str(), "Prefix", "churn"))
        .collect();
    ingress("churn")
        .class("switchyard")
        .rule("churn.test", &paths)
        .build()
}

const GENERATIONS: usize = 3;

fn generation_name(g: usize) -> String {
    format!("secure-churn generation {g}")
}

fn secure_objects(cert: &(String, String)) -> Vec<Value> {
    vec![
        tls_secret("secure-churn-tls", cert),
        ingress("secure-churn")
            .class("switchyard")
            .tls(&["secure-churn.test"], "secure-churn-tls")
            .rule("secure-churn.test", &[("/", "Prefix", "churn")])
            .build(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Load clients

#[derive(Default)]
struct ClientReport {
    ok: usize,
    failed: usize,
    /// The first few failures, described.
    failures: Vec<String>,
    backends: BTreeMap<String, usize>,
    connections: usize,
}

async fn connect(port: u16) -> Result<SendRequest<Empty<Bytes>>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn one_request(sender: &mut SendRequest<Empty<Bytes>>) -> Result<String, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection not ready: {e}"))?;
    let req = Request::get("/load")
        .header("host", "load.test")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    let name = body.lines().next().unwrap_or("");
    if status == 200 && (name == "load-a" || name == "load-b") {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{status} {:?}",
            body.chars().take(100).collect::<String>()
        ))
    }
}

/// Keep-alive requests on one connection until `stop`; a broken connection counts as a failure
/// and is replaced.
async fn load_client(port: u16, stop: Arc<AtomicBool>, total_ok: Arc<AtomicUsize>) -> ClientReport {
    let mut report = ClientReport::default();
    let mut sender = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(current) = sender.as_mut() else {
            match connect(port).await {
                Ok(s) => {
                    report.connections += 1;
                    sender = Some(s);
                }
                Err(err) => {
                    report.failed += 1;
                    if report.failures.len() < 10 {
                        report.failures.push(err);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            continue;
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), one_request(current))
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".to_owned()));
        match outcome {
            Ok(name) => {
                report.ok += 1;
                total_ok.fetch_add(1, Ordering::Relaxed);
                *report.backends.entry(name).or_default() += 1;
            }
            Err(err) => {
                report.failed += 1;
                if report.failures.len() < 10 {
                    report.failures.push(err);
                }
                sender = None;
            }
        }
    }
    report
}

// ---------------------------------------------------------------------------------------------
// WebSocket, by hand (RFC 6455): SHA-1 and base64 for the accept key, masked client frames

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, x) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn accept_key(key: &str) -> String {
    base64(&sha1(
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    ))
}

/// Reads an HTTP head (up to the blank line): the lines without their CRLF.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One frame: (opcode, payload), unmasked if it was masked; `masked` says whether it was.
async fn read_frame<R: AsyncReadExt + Unpin>(
    reader: &mut R,
) -> std::io::Result<(u8, Vec<u8>, bool)> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(reader.read_u16().await?),
        127 => reader.read_u64().await?,
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    if masked {
        reader.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    reader.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload, masked))
}

/// A frame header for a final frame of `opcode` with `len` payload bytes.
fn frame_head(opcode: u8, len: usize, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut head = vec![0x80 | opcode];
    if len < 126 {
        head.push(mask_bit | len as u8);
    } else {
        head.push(mask_bit | 126);
        head.extend_from_slice(&(len as u16).to_be_bytes());
    }
    head
}

/// A WebSocket echo server: answers the Upgrade with 101 and sends every frame back unmasked.
async fn websocket_echo_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind ws backend");
    let port = listener.local_addr().expect("ws backend address").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let Ok(head) = read_head(&mut stream).await else {
                    return;
                };
                let Some(key) = header(&head, "sec-websocket-key") else {
                    let _ = stream
                        .get_mut()
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                };
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept_key(key)
                );
                if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                while let Ok((opcode, payload, _)) = read_frame(&mut stream).await {
                    let mut frame = frame_head(opcode, payload.len(), false);
                    frame.extend_from_slice(&payload);
                    if stream.get_mut().write_all(&frame).await.is_err() || opcode == 0x8 {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A client WebSocket through the proxy.
struct WebSocket {
    stream: BufReader<TcpStream>,
    sent: u32,
}

impl WebSocket {
    async fn open(port: u16, host: &str) -> WebSocket {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the proxy");
        let mut stream = BufReader::new(stream);
        let key = base64(b"switchyard-ws-16");
        let request = format!(
            "GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("send the upgrade");
        let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
            .await
            .expect("an answer to the upgrade within 10 s")
            .expect("read the upgrade answer");
        assert!(
            head.first().is_some_and(|l| l.starts_with("HTTP/1.1 101")),
            "upgrade through the proxy: {head:?}"
        );
        assert_eq!(
            header(&head, "sec-websocket-accept"),
            Some(accept_key(&key).as_str()),
            "{head:?}"
        );
        WebSocket { stream, sent: 0 }
    }

    /// Sends `text` in a masked text frame and returns what comes back.
    async fn echo(&mut self, text: &str) -> Result<String, String> {
        self.sent += 1;
        let mask = (0x9E37_79B9u32.wrapping_mul(self.sent)).to_be_bytes();
        let mut frame = frame_head(0x1, text.len(), true);
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream
            .get_mut()
            .write_all(&frame)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let (opcode, payload, masked) =
            tokio::time::timeout(Duration::from_secs(5), read_frame(&mut self.stream))
                .await
                .map_err(|_| "no echo within 5 s".to_owned())?
                .map_err(|e| format!("read: {e}"))?;
        if opcode != 0x1 || masked {
            return Err(format!(
                "unexpected frame: opcode {opcode}, masked {masked}"
            ));
        }
        String::from_utf8(payload).map_err(|e| e.to_string())
    }
}

#[test]
fn websocket_accept_key_is_the_rfc_6455_example() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_changes_under_load_fail_no_request_and_keep_a_websocket_open() {
    let ports: BTreeMap<&str, u16> = [
        ("load-a", backend("load-a").await),
        ("load-b", backend("load-b").await),
    ]
    .into_iter()
    .collect();
    let churn = backend("churn").await;
    let websocket = websocket_echo_backend().await;
    let ca = TestCa::new("switchyard churn CA").expect("CA");
    let certs: Vec<(String, String)> = (0..GENERATIONS)
        .map(|g| {
            ca.serving(&generation_name(g), &["secure-churn.test"])
                .expect("certificate")
        })
        .collect();

    let folder = Folder::new();
    let mut fixed = vec![
        ingress_class("switchyard", CONTROLLER, false),
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "load"},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }),
        ingress("load")
            .class("switchyard")
            .rule("load.test", &[("/", "Prefix", "load")])
            .build(),
        ingress("websocket")
            .class("switchyard")
            .rule("ws.test", &[("/", "Prefix", "websocket")])
            .build(),
    ];
    fixed.extend(backend_service("churn", churn));
    fixed.extend(backend_service("websocket", websocket));
    // Each load client keeps one connection for the whole test, beyond ingress-nginx's
    // default of 1000 requests per connection.
    fixed.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "switchyard-controller"},
        "data": {"keep-alive-requests": "1000000"},
    }));
    folder.write_objects("00-fixed.json", &fixed);
    folder.write_objects(
        "10-load-endpoints.json",
        &load_slices(endpoint_state(0), &ports),
    );
    folder.write_objects("20-churn.json", &[churn_ingress(path_count(0))]);
    folder.write_objects("30-secure.json", &secure_objects(&certs[0]));
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;

    let first = get(proxy.http, "load.test", "/").await;
    assert_eq!(
        (first.status, first.first_line()),
        (200, "load-a"),
        "{}",
        first.describe()
    );
    let mut ws = WebSocket::open(proxy.http, "ws.test").await;
    assert_eq!(
        ws.echo("before the changes").await.as_deref(),
        Ok("before the changes")
    );

    let stop = Arc::new(AtomicBool::new(false));
    let total_ok = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(load_client(proxy.http, stop.clone(), total_ok.clone())))
        .collect();
    // Let the load start before changing anything.
    eventually(
        "the load clients running",
        Duration::from_secs(10),
        || async { total_ok.load(Ordering::Relaxed) >= 10 * CLIENTS },
    )
    .await;

    let started = Instant::now();
    let ok_before = total_ok.load(Ordering::Relaxed);
    let (mut endpoint_changes, mut path_changes, mut cert_changes) = (0, 0, 0);
    for i in 0..CHANGES {
        match i % 3 {
            0 => {
                endpoint_changes += 1;
                folder.write_objects(
                    "10-load-endpoints.json",
                    &load_slices(endpoint_state(endpoint_changes), &ports),
                );
            }
            1 => {
                path_changes += 1;
                folder.write_objects("20-churn.json", &[churn_ingress(path_count(path_changes))]);
            }
            _ => {
                cert_changes += 1;
                folder.write_objects(
                    "30-secure.json",
                    &secure_objects(&certs[cert_changes % GENERATIONS]),
                );
            }
        }
        tokio::time::sleep(PACE).await;
    }
    let churn_time = started.elapsed();
    let ok_during = total_ok.load(Ordering::Relaxed) - ok_before;

    // The final state of all three is served.
    let final_backends = endpoint_state(endpoint_changes);
    let final_paths = path_count(path_changes);
    let final_generation = generation_name(cert_changes % GENERATIONS);
    eventually(
        "load.test served by the final endpoints only",
        Duration::from_secs(10),
        || async {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..8 {
                let reply = get(proxy.http, "load.test", "/").await;
                if reply.status != 200 || !final_backends.contains(&reply.first_line()) {
                    return false;
                }
                seen.insert(reply.first_line().to_owned());
            }
            seen.len() == final_backends.len()
        },
    )
    .await;
    eventually(
        "churn.test with its final paths",
        Duration::from_secs(10),
        || async {
            for i in 0..final_paths {
                let reply = get(proxy.http, "churn.test", &format!("/p{i}/x")).await;
                if reply.status != 200 || reply.first_line() != "churn" {
                    return false;
                }
            }
            get(proxy.http, "churn.test", &format!("/p{final_paths}"))
                .await
                .status
                == 404
        },
    )
    .await;
    let trust = Trust::pem(ca.cert_pem());
    eventually(
        "secure-churn.test with the final certificate",
        Duration::from_secs(10),
        || async {
            match https_get(
                proxy.https,
                Some("secure-churn.test"),
                "secure-churn.test",
                "/",
                &trust,
            )
            .await
            {
                Ok(exchange) => {
                    exchange.leaf().subject_cn.as_deref() == Some(final_generation.as_str())
                        && exchange.reply.status == 200
                        && exchange.reply.first_line() == "churn"
                }
                Err(_) => false,
            }
        },
    )
    .await;

    // The WebSocket opened before the 500 changes still works.
    assert_eq!(
        ws.echo("after the changes").await.as_deref(),
        Ok("after the changes")
    );

    stop.store(true, Ordering::Relaxed);
    let mut total = ClientReport::default();
    for client in clients {
        let report = client.await.expect("load client");
        total.ok += report.ok;
        total.failed += report.failed;
        total.connections += report.connections;
        total.failures.extend(report.failures);
        for (name, n) in report.backends {
            *total.backends.entry(name).or_default() += n;
        }
    }
    let swaps = proxy.log().matches("route table swapped in").count();
    eprintln!(
        "{CHANGES} changes in {churn_time:?} ({swaps} table swaps logged); {} requests answered \
         ({ok_during} during the changes), {} failed, {} connections; backends {:?}",
        total.ok, total.failed, total.connections, total.backends
    );
    assert!(
        total.failed == 0,
        "{} of {} requests failed under reconfiguration; the first ones:\n{}",
        total.failed,
        total.ok + total.failed,
        total.failures.join("\n")
    );
    assert_eq!(
        total.connections, CLIENTS,
        "keep-alive connections were replaced"
    );
    assert!(
        ok_during >= 100,
        "too little load during the changes: {ok_during} requests"
    );
    // Both backends answered under load: the endpoint changes reached the loaded route.
    assert!(
        total.backends.get("load-a").is_some_and(|n| *n > 0)
            && total.backends.get("load-b").is_some_and(|n| *n > 0),
        "{:?}",
        total.backends
    );
}
