//! Issue 4's acceptance, end to end: the real apiserver, the real operator and proxy binaries,
//! real backends, and traffic measured through the proxy.
//!
//! - a canary with steps [10, pause 2s, 50, pause, 100]: the split at each step within ±3
//!   points over 2000 requests, the header match always on the new version, promote to the end;
//! - blue-green: preview host on the new version, main host on the old, promote under load
//!   with zero failed requests, undo;
//! - analysis aborts a backend that answers 500 within failureLimit intervals, and describe
//!   says why;
//! - invalid specs refused by `kubectl apply` with readable messages;
//! - the operator killed mid-rollout resumes at the same step after a restart.
//!
//! Each test has its own namespace, IngressClass, proxy and operator, so they run in parallel.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use bytes::Bytes;
use common::proxy_binary;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use switchyard_crds::{Phase, RolloutRoute, RolloutRouteStatus, Verdict, condition};
use switchyard_tests::process::{Supervised, log_tail, signal};
use switchyard_tests::{
    Cluster, TestNamespace, backend, binaries, eventually, ports::free_ports, shared_cluster,
};

// ---- processes ---------------------------------------------------------------------------

/// A supervised process that shows the end of its log when a test fails.
struct Logged(Supervised);

impl Drop for Logged {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}",
                self.0.name(),
                log_tail(self.0.log_path(), 60)
            );
        }
    }
}

/// PATH with the plugin and the control plane's kubectl first, as a user's shell has them.
fn plugin_path() -> String {
    let plugin = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-switchyard"));
    let plugin_dir = plugin.parent().unwrap_or(Path::new("."));
    let bin_dir = binaries::bin_dir().expect("control plane binaries");
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{}:{path}", plugin_dir.display(), bin_dir.display())
}

/// A namespace with its own IngressClass, a proxy serving only it, and the operator.
struct Stack {
    cluster: &'static Cluster,
    ns: TestNamespace,
    class: String,
    logs: tempfile::TempDir,
    http: String,
    metrics: String,
    _proxy: Logged,
    operator: Option<Logged>,
    operator_starts: usize,
    routes: Api<RolloutRoute>,
    ingresses: Api<Ingress>,
}

impl Stack {
    async fn start(prefix: &str) -> Stack {
        let cluster = shared_cluster().expect("control plane");
        let ns = cluster.namespace(prefix).expect("namespace");
        let logs = tempfile::tempdir().expect("tempdir");
        let class = format!("class-{}", ns.name());
        let controller = format!("switchyard.dev/test-{}", ns.name());
        cluster
            .apply_yaml(
                ns.name(),
                &format!(
                    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {class}}}\nspec: {{controller: {controller}}}\n"
                ),
            )
            .expect("IngressClass");
        let ports = free_ports(3).expect("ports");
        let (http, metrics) = (
            format!("127.0.0.1:{}", ports[0]),
            format!("127.0.0.1:{}", ports[2]),
        );
        let mut cmd = Command::new(proxy_binary());
        cmd.arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["--watch-namespace", ns.name()])
            .args(["--controller-class", &controller])
            .args(["--http-addr", &http])
            .args(["--https-addr", &format!("127.0.0.1:{}", ports[1])])
            .args(["--metrics-addr", &metrics])
            .env("POD_NAMESPACE", ns.name())
            .env("POD_NAME", format!("proxy-{}", ns.name()))
            .env("RUST_LOG", "info");
        let proxy = Supervised::spawn("switchyard-proxy", cmd, &logs.path().join("proxy.log"))
            .expect("proxy");
        let client = cluster.client().await.expect("client");
        let mut stack = Stack {
            cluster,
            routes: Api::namespaced(client.clone(), ns.name()),
            ingresses: Api::namespaced(client, ns.name()),
            ns,
            class,
            logs,
            http,
            metrics,
            _proxy: Logged(proxy),
            operator: None,
            operator_starts: 0,
        };
        stack.start_operator();
        let metrics = stack.metrics.clone();
        eventually("the proxy is ready", Duration::from_secs(30), || {
            let ok = switchyard_tests::http::get(&metrics, "localhost", "/readyz")
                .is_ok_and(|r| r.status == 200);
            async move { ok }
        })
        .await;
        stack
    }

    fn ns(&self) -> &str {
        self.ns.name()
    }

    /// Starts the operator (again), watching this namespace only, scraping this proxy.
    fn start_operator(&mut self) {
        self.operator_starts += 1;
        let ports = free_ports(2).expect("ports");
        let ns = self.ns.name();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"));
        cmd.arg("--kubeconfig")
            .arg(self.cluster.kubeconfig())
            .args(["--watch-namespace", ns])
            .args(["--leader-election-namespace", ns])
            .args(["--cluster-resource-namespace", ns])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[0])])
            .args(["--acme-solver-addr", &format!("127.0.0.1:{}", ports[1])])
            .args([
                "--proxy-metrics-url",
                &format!("http://{}/metrics", self.metrics),
            ])
            // The same identity after a restart, as a pod that restarts keeps its name.
            .env("POD_NAME", format!("operator-{ns}"))
            .env("RUST_LOG", "info,kube=warn");
        let log = self
            .logs
            .path()
            .join(format!("operator-{}.log", self.operator_starts));
        self.operator = Some(Logged(
            Supervised::spawn("switchyard-operator", cmd, &log).expect("operator"),
        ));
    }

    /// SIGKILL: no Lease release, no last status write.
    fn kill_operator(&mut self) {
        if let Some(operator) = self.operator.take() {
            signal(operator.0.pid(), "KILL");
            drop(operator);
        }
    }

    fn apply(&self, yaml: &str) {
        self.cluster
            .apply_yaml(self.ns(), yaml)
            .expect("kubectl apply");
    }

    /// `kubectl <args> -n <ns>` with the plugin on PATH; its output (stdout, then stderr).
    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(binaries::binary("kubectl").expect("kubectl"))
            .args(args)
            .args(["-n", self.ns()])
            .env("KUBECONFIG", self.cluster.kubeconfig())
            .env("PATH", plugin_path())
            .output()
            .expect("run kubectl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.kubectl(args);
        assert!(ok, "kubectl {} failed: {text}", args.join(" "));
        text
    }

    async fn status(&self, name: &str) -> RolloutRouteStatus {
        self.routes
            .get(name)
            .await
            .ok()
            .and_then(|r| r.status)
            .unwrap_or_default()
    }

    async fn wait_status(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&RolloutRouteStatus) -> bool,
    ) -> RolloutRouteStatus {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(name).await;
            if check(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {what} did not happen within {limit:?}; status: {}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The IngressClass is cluster-wide: it goes with the test.
        let _ = self
            .cluster
            .kubectl_ok(&["delete", "ingressclass", &self.class, "--wait=false"]);
    }
}

// ---- manifests -----------------------------------------------------------------------------

/// A Service for a backend on this machine: the apiserver refuses loopback endpoints, so an
/// ExternalName to localhost stands in (the proxy resolves it).
fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: ExternalName\n  externalName: localhost\n  ports: [{{name: http, port: {port}}}]\n---\n"
    )
}

fn route(name: &str, class: &str, host: &str, backend: (&str, u16), strategy: &str) -> String {
    let (service, port) = backend;
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: RolloutRoute\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: {class}\n  hosts: [{host}]\n  backend: {{service: {service}, port: {port}}}\n  strategy:\n{strategy}"
    )
}

// ---- traffic -------------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request through the proxy: the backend that answered (its `x-backend`) and the status.
async fn send(
    client: &HttpClient,
    proxy: &str,
    host: &str,
    header: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    let mut request = http::Request::get(format!("http://{proxy}/"))
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    if let Some((name, value)) = header {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?,
            http::HeaderValue::from_str(value).map_err(|e| e.to_string())?,
        );
    }
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let backend = response
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, backend))
}

/// Who answered `n` requests (16 at a time): answers by "status backend", and failures.
#[derive(Debug, Default)]
struct Tally {
    answers: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn count(&self, backend: &str) -> usize {
        self.answers
            .get(&format!("200 {backend}"))
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.answers.values().sum::<usize>() + self.failures.len()
    }

    /// The share of `backend` in percent.
    fn percent(&self, backend: &str) -> f64 {
        100.0 * self.count(backend) as f64 / self.total().max(1) as f64
    }

    fn add(&mut self, result: Result<(u16, String), String>) {
        match result {
            Ok((status, backend)) => {
                *self
                    .answers
                    .entry(format!("{status} {backend}"))
                    .or_default() += 1
            }
            Err(e) => self.failures.push(e),
        }
    }
}

async fn split(
    client: &HttpClient,
    proxy: &str,
    host: &str,
    n: usize,
    header: Option<(&str, &str)>,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, next) = (client.clone(), next.clone());
        let (proxy, host) = (proxy.to_owned(), host.to_owned());
        let header = header.map(|(n, v)| (n.to_owned(), v.to_owned()));
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let header = header.as_ref().map(|(n, v)| (n.as_str(), v.as_str()));
                tally.add(send(&client, &proxy, &host, header).await);
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for worker in workers {
        let tally = worker.await.expect("worker");
        for (k, v) in tally.answers {
            *all.answers.entry(k).or_default() += v;
        }
        all.failures.extend(tally.failures);
    }
    all
}

/// Polls with 100 requests until `backend` has `percent` of them (the proxy has the change).
async fn wait_split(client: &HttpClient, proxy: &str, host: &str, backend: &str, percent: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let tally = split(client, proxy, host, 100, None).await;
        if (tally.percent(backend) - percent).abs() <= 3.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}: {backend} never reached {percent}%: {tally:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Requests sent without pause by a few workers until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    fn start(client: &HttpClient, proxy: &str, host: &str, workers: usize, gap: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let (client, stop) = (client.clone(), stop.clone());
                let (proxy, host) = (proxy.to_owned(), host.to_owned());
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        tally.add(send(&client, &proxy, &host, None).await);
                        tokio::time::sleep(gap).await;
                    }
                    tally
                })
            })
            .collect();
        Load { stop, workers }
    }

    async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for worker in self.workers {
            let tally = worker.await.expect("load worker");
            for (k, v) in tally.answers {
                *all.answers.entry(k).or_default() += v;
            }
            all.failures.extend(tally.failures);
        }
        all
    }
}

/// A backend that answers every request with 500 (and says who it is).
async fn spawn_failing(name: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(
                    move |_req: http::Request<hyper::body::Incoming>| async move {
                        let mut response =
                            http::Response::new(Full::new(Bytes::from_static(b"broken\n")));
                        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                        response
                            .headers_mut()
                            .insert("x-backend", http::HeaderValue::from_static(name));
                        Ok::<_, Infallible>(response)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

fn in_rollout_step(s: &RolloutRouteStatus, step: u32, weight: u32) -> bool {
    s.current_step == Some(step) && s.canary_weight == Some(weight)
}

fn promoted(s: &RolloutRouteStatus, service: &str) -> bool {
    s.phase == Some(Phase::Healthy)
        && condition::is_true(&s.conditions, condition::PROMOTED)
        && s.stable_backend
            .as_ref()
            .is_some_and(|b| b.service == service)
}

fn degraded_reason(s: &RolloutRouteStatus) -> Option<String> {
    condition::find(&s.conditions, condition::DEGRADED)
        .filter(|c| c.status == "True")
        .map(|c| c.reason.clone())
}

fn assert_near(tally: &Tally, backend: &str, percent: f64, what: &str) {
    assert!(
        tally.failures.is_empty(),
        "{what}: failures {:?}",
        tally.failures
    );
    assert_eq!(tally.total(), 2000, "{what}: {tally:?}");
    let measured = tally.percent(backend);
    assert!(
        (measured - percent).abs() <= 3.0,
        "{what}: {backend} got {measured:.1}% instead of {percent}% ({tally:?})"
    );
    eprintln!("{what}: {backend} {measured:.1}% of 2000 requests");
}

// ---- the acceptance ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_steps_split_traffic_and_promote_to_the_end() {
    let started = Instant::now();
    let stack = Stack::start("rr-canary").await;
    let v1 = backend::spawn("v1").await.expect("v1");
    let v2 = backend::spawn("v2").await.expect("v2");
    let strategy = "    canary:\n      steps:\n      - setWeight: 10\n      - pause: {duration: 2s}\n      - setWeight: 50\n      - pause: {}\n      - setWeight: 100\n      match:\n        header: {name: X-Canary, value: \"true\"}\n";
    let shop = |backend| route("shop", &stack.class, "shop.test", backend, strategy);
    stack.apply(&format!(
        "{}{}{}",
        service("v1", v1),
        service("v2", v2),
        shop(("v1", v1))
    ));
    let client = http_client();
    stack
        .wait_status("shop", "first apply", Duration::from_secs(30), |s| {
            promoted(s, "v1")
        })
        .await;
    wait_split(&client, &stack.http, "shop.test", "v1", 100.0).await;

    // The rollout starts: 10 % while the 2 s pause runs.
    stack.apply(&shop(("v2", v2)));
    stack
        .wait_status(
            "shop",
            "step 1 (pause 2s) at 10 %",
            Duration::from_secs(10),
            |s| in_rollout_step(s, 1, 10),
        )
        .await;
    // 2000 requests through a debug build on a busy machine can outlast the 2 s: hold the
    // rollout while measuring (spec.paused keeps the split and the pause's remaining time).
    stack.kubectl_ok(&["switchyard", "pause", "shop"]);
    let held = stack
        .wait_status(
            "shop",
            "held by spec.paused",
            Duration::from_secs(10),
            |s| {
                condition::find(&s.conditions, condition::PAUSED)
                    .is_some_and(|c| c.status == "True" && c.reason == "PausedByUser")
            },
        )
        .await;
    assert!(in_rollout_step(&held, 1, 10), "held too late: {held:?}");
    wait_split(&client, &stack.http, "shop.test", "v2", 10.0).await;
    let measuring = Instant::now();
    let tally = split(&client, &stack.http, "shop.test", 2000, None).await;
    eprintln!("2000 requests took {:?}", measuring.elapsed());
    assert_near(&tally, "v2", 10.0, "step 1 (weight 10)");
    let matched = split(
        &client,
        &stack.http,
        "shop.test",
        100,
        Some(("X-Canary", "true")),
    )
    .await;
    assert_eq!(
        matched.count("v2"),
        100,
        "the header match at 10 %: {matched:?}"
    );
    let still = stack.status("shop").await;
    assert!(
        in_rollout_step(&still, 1, 10),
        "moved while held: {still:?}"
    );
    stack.kubectl_ok(&["switchyard", "resume", "shop"]);

    // The timed pause ends by itself; the route waits for promote at 50 %.
    let status = stack
        .wait_status(
            "shop",
            "step 3 (pause) at 50 %",
            Duration::from_secs(10),
            |s| in_rollout_step(s, 3, 50) && s.phase == Some(Phase::Paused),
        )
        .await;
    assert!(
        condition::find(&status.conditions, condition::PAUSED)
            .is_some_and(|c| c.status == "True" && c.reason == "WaitingForPromote"),
        "{status:?}"
    );
    wait_split(&client, &stack.http, "shop.test", "v2", 50.0).await;
    let tally = split(&client, &stack.http, "shop.test", 2000, None).await;
    assert_near(&tally, "v2", 50.0, "step 3 (weight 50)");
    let matched = split(
        &client,
        &stack.http,
        "shop.test",
        100,
        Some(("X-Canary", "true")),
    )
    .await;
    assert_eq!(
        matched.count("v2"),
        100,
        "the header match at 50 %: {matched:?}"
    );
    let view = stack.kubectl_ok(&["switchyard", "status", "shop"]);
    assert!(view.contains("=>  4. pause until promoted"), "{view}");

    // Promote: the last step (100) and the end of the rollout.
    let out = stack.kubectl_ok(&["switchyard", "promote", "shop"]);
    assert!(out.contains("promotion requested"), "{out}");
    stack.kubectl_ok(&[
        "wait",
        "--for=condition=Promoted",
        "rolloutroute/shop",
        "--timeout=20s",
    ]);
    let status = stack
        .wait_status(
            "shop",
            "Healthy and Promoted on v2",
            Duration::from_secs(20),
            |s| promoted(s, "v2"),
        )
        .await;
    assert_eq!(status.canary_weight, None, "{status:?}");
    eventually(
        "the canary Ingress is gone",
        Duration::from_secs(10),
        || async { matches!(stack.ingresses.get_opt("shop-canary").await, Ok(None)) },
    )
    .await;
    wait_split(&client, &stack.http, "shop.test", "v2", 100.0).await;
    let tally = split(&client, &stack.http, "shop.test", 2000, None).await;
    assert_near(&tally, "v2", 100.0, "after promotion");
    eprintln!("canary acceptance took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blue_green_previews_switches_without_failures_and_undoes() {
    let stack = Stack::start("rr-bluegreen").await;
    let blue = backend::spawn("blue").await.expect("blue");
    let green = backend::spawn("green").await.expect("green");
    let strategy = "    blueGreen:\n      previewHosts: [preview.bg.test]\n";
    let bg = |backend| route("bg", &stack.class, "bg.test", backend, strategy);
    stack.apply(&format!(
        "{}{}{}",
        service("blue", blue),
        service("green", green),
        bg(("blue", blue))
    ));
    let client = http_client();
    stack
        .wait_status("bg", "first apply", Duration::from_secs(30), |s| {
            promoted(s, "blue")
        })
        .await;
    wait_split(&client, &stack.http, "bg.test", "blue", 100.0).await;

    // The rollout: the preview host reaches green, the main host stays on blue.
    stack.apply(&bg(("green", green)));
    stack
        .wait_status("bg", "waiting for promote", Duration::from_secs(10), |s| {
            s.phase == Some(Phase::Paused)
        })
        .await;
    wait_split(&client, &stack.http, "preview.bg.test", "green", 100.0).await;
    let main = split(&client, &stack.http, "bg.test", 200, None).await;
    assert_eq!(
        main.count("blue"),
        200,
        "the main host during preview: {main:?}"
    );

    // Promote under continuous load: the switch fails no request.
    let load = Load::start(&client, &stack.http, "bg.test", 4, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.kubectl_ok(&["switchyard", "promote", "bg"]);
    stack
        .wait_status("bg", "promoted to green", Duration::from_secs(20), |s| {
            promoted(s, "green")
        })
        .await;
    wait_split(&client, &stack.http, "bg.test", "green", 100.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tally = load.stop().await;
    assert!(
        tally.failures.is_empty(),
        "failed during the switch: {:?}",
        tally.failures
    );
    assert_eq!(
        tally.count("blue") + tally.count("green"),
        tally.total(),
        "only 200s from blue or green: {tally:?}"
    );
    assert!(
        tally.count("blue") > 0 && tally.count("green") > 0,
        "{tally:?}"
    );
    eprintln!("blue-green switch under load: {tally:?}");
    eventually(
        "the preview Ingress is gone",
        Duration::from_secs(10),
        || async { matches!(stack.ingresses.get_opt("bg-preview").await, Ok(None)) },
    )
    .await;

    // Undo: blue again, at once, without touching spec.backend.
    stack.kubectl_ok(&["switchyard", "undo", "bg"]);
    let status = stack
        .wait_status("bg", "undone", Duration::from_secs(20), |s| {
            degraded_reason(s).as_deref() == Some("Undone")
        })
        .await;
    assert_eq!(
        status.stable_backend.map(|b| b.service).as_deref(),
        Some("blue")
    );
    wait_split(&client, &stack.http, "bg.test", "blue", 100.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn analysis_aborts_a_backend_that_fails() {
    let stack = Stack::start("rr-analysis").await;
    let good = backend::spawn("good").await.expect("good");
    let broken = spawn_failing("broken").await;
    let strategy = "    canary:\n      steps:\n      - setWeight: 50\n      - pause: {}\n      analysis:\n        interval: 1s\n        failureLimit: 2\n        successRate: {min: 0.95}\n";
    let api = |backend| route("api", &stack.class, "api.test", backend, strategy);
    stack.apply(&format!(
        "{}{}{}",
        service("good", good),
        service("broken", broken),
        api(("good", good))
    ));
    let client = http_client();
    stack
        .wait_status("api", "first apply", Duration::from_secs(30), |s| {
            promoted(s, "good")
        })
        .await;
    wait_split(&client, &stack.http, "api.test", "good", 100.0).await;

    let load = Load::start(
        &client,
        &stack.http,
        "api.test",
        2,
        Duration::from_millis(5),
    );
    let rollout = Instant::now();
    stack.apply(&api(("broken", broken)));
    let status = stack
        .wait_status("api", "aborted by analysis", Duration::from_secs(20), |s| {
            degraded_reason(s).as_deref() == Some("AnalysisFailed")
        })
        .await;
    let took = rollout.elapsed();
    let tally = load.stop().await;
    eprintln!("aborted after {took:?}; traffic meanwhile: {tally:?}");
    assert!(
        tally.count("good") > 0 && tally.answers.contains_key("500 broken"),
        "{tally:?}"
    );

    // Exactly failureLimit failed intervals in a row, each naming what it measured.
    let analysis = status.analysis.clone().expect("analysis in status");
    assert_eq!(analysis.consecutive_failures, Some(2), "{analysis:?}");
    let failed: Vec<_> = analysis
        .runs
        .iter()
        .filter(|r| r.verdict == Verdict::Failed)
        .collect();
    assert_eq!(failed.len(), 2, "{analysis:?}");
    for run in &failed {
        assert_eq!(run.success_rate, Some(0.0), "{run:?}");
        assert!(run.requests.is_some_and(|r| r > 0), "{run:?}");
        assert_eq!(run.message.as_deref(), Some("success rate 0 < 0.95"));
    }
    // Two intervals of 1 s (and at most one more while the proxy took the canary in).
    assert!(
        analysis.runs.len() <= 3 && took < Duration::from_secs(5),
        "{took:?}: {analysis:?}"
    );
    let degraded = condition::find(&status.conditions, condition::DEGRADED).expect("Degraded");
    assert!(
        degraded.message.contains("success rate 0 < 0.95"),
        "{}",
        degraded.message
    );
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(status.canary_weight, Some(0));

    // All traffic back on the stable backend, and describe says why.
    wait_split(&client, &stack.http, "api.test", "good", 100.0).await;
    let describe = stack.kubectl_ok(&["describe", "rolloutroute", "api"]);
    assert!(describe.contains("AnalysisFailed"), "{describe}");
    assert!(describe.contains("success rate 0 < 0.95"), "{describe}");
    assert!(
        describe
            .lines()
            .any(|l| l.contains("Warning") && l.contains("AnalysisFailed")),
        "no Warning Event in describe: {describe}"
    );
    let view = stack.kubectl_ok(&["switchyard", "status", "api"]);
    assert!(view.contains("failed in a row: 2"), "{view}");
}

#[tokio::test]
async fn invalid_specs_are_refused_with_readable_messages() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("rr-invalid").expect("namespace");
    let base = |strategy: &str, hosts: &str| {
        format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: RolloutRoute\nmetadata: {{name: bad}}\nspec:\n  hosts: {hosts}\n  backend: {{service: shop, port: 80}}\n  strategy:\n{strategy}"
        )
    };
    let canary = "    canary: {steps: [{setWeight: 10}]}\n";
    let cases = [
        (
            base(
                "    canary: {steps: [{setWeight: 10}]}\n    blueGreen: {previewHosts: [p.example.com]}\n",
                "[shop.example.com]",
            ),
            "set exactly one of canary or blueGreen",
        ),
        (
            base("    {}\n", "[shop.example.com]"),
            "set exactly one of canary or blueGreen",
        ),
        (
            base(
                "    canary: {steps: [{setWeight: 150}]}\n",
                "[shop.example.com]",
            ),
            "should be less than or equal to 100",
        ),
        (
            base(canary, "[]"),
            "spec.hosts: Invalid value: 0: spec.hosts in body should have at least 1 items",
        ),
        (
            base(
                "    canary: {steps: [{pause: {duration: 1 week}}]}\n",
                "[shop.example.com]",
            ),
            "spec.strategy.canary.steps[0].pause.duration in body should match",
        ),
        (
            base(
                "    canary: {steps: [{setWeight: 10, pause: {}}]}\n",
                "[shop.example.com]",
            ),
            "set exactly one of pause or setWeight",
        ),
        (
            base(
                "    canary:\n      steps: [{setWeight: 10}]\n      match: {header: {name: X-Canary, value: a, regex: b}}\n",
                "[shop.example.com]",
            ),
            "set at most one of value or regex",
        ),
        (
            base(
                "    canary:\n      steps: [{setWeight: 10}]\n      analysis: {interval: 30s}\n",
                "[shop.example.com]",
            ),
            "set successRate, latency, or both",
        ),
    ];
    for (manifest, message) in cases {
        let error = cluster
            .apply_yaml(ns.name(), &manifest)
            .expect_err(&format!("refused: {manifest}"))
            .to_string();
        assert!(
            error.contains("The RolloutRoute \"bad\" is invalid") && error.contains(message),
            "wanted {message:?} in:\n{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_operator_resumes_at_the_same_step() {
    let mut stack = Stack::start("rr-restart").await;
    let v1 = backend::spawn("one").await.expect("v1");
    let v2 = backend::spawn("two").await.expect("v2");
    let strategy = "    canary:\n      steps:\n      - setWeight: 20\n      - pause: {duration: 8s}\n      - setWeight: 60\n      - pause: {}\n";
    let web = |backend| route("web", &stack.class, "web.test", backend, strategy);
    stack.apply(&format!(
        "{}{}{}",
        service("one", v1),
        service("two", v2),
        web(("one", v1))
    ));
    let client = http_client();
    stack
        .wait_status("web", "first apply", Duration::from_secs(30), |s| {
            promoted(s, "one")
        })
        .await;
    stack.apply(&web(("two", v2)));
    let before = stack
        .wait_status(
            "web",
            "step 1 (pause 8s) at 20 %",
            Duration::from_secs(10),
            |s| in_rollout_step(s, 1, 20) && s.pause_ends_at.is_some(),
        )
        .await;
    let pause_end = before.pause_ends_at.clone().expect("pauseEndsAt").0;

    // Killed mid-pause: nothing moves while it is away, and the split stays as it was.
    stack.kill_operator();
    tokio::time::sleep(Duration::from_secs(1)).await;
    wait_split(&client, &stack.http, "web.test", "two", 20.0).await;
    let away = stack.status("web").await;
    assert!(in_rollout_step(&away, 1, 20), "{away:?}");

    // Restarted: the same step, the same end of the pause, then the next step on time.
    stack.start_operator();
    let after = stack
        .wait_status("web", "step 3 at 60 %", Duration::from_secs(40), |s| {
            in_rollout_step(s, 3, 60)
        })
        .await;
    let advanced = jiff::Timestamp::now();
    assert!(
        advanced >= pause_end,
        "advanced at {advanced}, before the pause's end {pause_end}"
    );
    assert_eq!(
        after.desired_backend.map(|b| b.service).as_deref(),
        Some("two")
    );
    wait_split(&client, &stack.http, "web.test", "two", 60.0).await;
    // It resumed: the rollout never started again.
    let describe = stack.kubectl_ok(&["describe", "rolloutroute", "web"]);
    let starts = describe
        .lines()
        .filter(|l| l.contains("RolloutStarted"))
        .count();
    assert_eq!(starts, 1, "{describe}");
}
