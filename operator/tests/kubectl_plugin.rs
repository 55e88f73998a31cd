//! `kubectl switchyard …` as a user types it: kubectl finds the plugin on PATH and the plugin
//! changes the RolloutRoute in a real apiserver.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::Api;
use switchyard_crds::RolloutRoute;
use switchyard_tests::{binaries, shared_cluster};

const ROUTE: &str = r#"
apiVersion: switchyard.dev/v1alpha1
kind: RolloutRoute
metadata:
  name: shop
spec:
  hosts: [shop.example.com]
  backend: {service: shop-v2, port: 80}
  strategy:
    canary:
      steps:
      - setWeight: 10
      - pause: {}
"#;

fn plugin_path() -> String {
    let plugin = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-switchyard"));
    let plugin_dir = plugin.parent().unwrap_or(Path::new("."));
    let bin_dir = binaries::bin_dir().expect("control plane binaries");
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{}:{path}", plugin_dir.display(), bin_dir.display())
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(binaries::binary("kubectl").expect("kubectl"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", plugin_path())
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn kubectl_switchyard_steers_a_rollout_route() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("plugin").expect("namespace");
    let kc = cluster.kubeconfig();
    let manifest = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(manifest.path(), ROUTE).expect("write manifest");
    let manifest_path = manifest.path().display().to_string();
    kubectl(kc, &["apply", "-n", ns.name(), "-f", &manifest_path]);

    let out = kubectl(kc, &["switchyard", "status", "-n", ns.name()]);
    assert!(out.contains("shop") && out.contains("Pending"), "{out}");
    assert!(out.contains("No Certificates"), "{out}");

    let routes: Api<RolloutRoute> =
        Api::namespaced(cluster.client().await.expect("client"), ns.name());

    let out = kubectl(kc, &["switchyard", "pause", "shop", "-n", ns.name()]);
    assert_eq!(out.trim(), "rolloutroute.switchyard.dev/shop paused");
    assert_eq!(
        routes.get("shop").await.expect("get").spec.paused,
        Some(true)
    );
    kubectl(kc, &["switchyard", "resume", "shop", "-n", ns.name()]);
    assert_eq!(
        routes.get("shop").await.expect("get").spec.paused,
        Some(false)
    );

    kubectl(kc, &["switchyard", "promote", "shop", "-n", ns.name()]);
    let first = routes.get("shop").await.expect("get");
    let first = first
        .metadata
        .annotations
        .unwrap_or_default()
        .get("switchyard.dev/promote")
        .cloned()
        .expect("promote annotation");
    assert!(first.parse::<jiff::Timestamp>().is_ok(), "{first}");

    kubectl(kc, &["switchyard", "abort", "shop", "-n", ns.name()]);
    let annotations = routes
        .get("shop")
        .await
        .expect("get")
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        annotations.contains_key("switchyard.dev/abort"),
        "{annotations:?}"
    );

    // A route that does not exist is an error that names it, not a silent success.
    let out = Command::new(binaries::binary("kubectl").expect("kubectl"))
        .args(["switchyard", "promote", "nope", "-n", ns.name()])
        .env("KUBECONFIG", kc)
        .env("PATH", plugin_path())
        .output()
        .expect("run kubectl");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rolloutroute"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
