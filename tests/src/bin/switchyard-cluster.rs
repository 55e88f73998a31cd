//! `switchyard-cluster run --state-dir DIR`: runs the local control plane in the foreground
//! until SIGTERM or SIGINT, with its kubeconfig at `DIR/kubeconfig`. `make cluster` starts it in
//! the background (tests/cluster.sh) and `make cluster-down` stops it; stopping it stops etcd,
//! kube-apiserver and kube-controller-manager with it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard_tests::cluster::{Cluster, ClusterOptions};

#[derive(Parser)]
#[command(about = "The local control plane used by `make cluster`, `make demo` and the tests")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start etcd, kube-apiserver and kube-controller-manager and run until signalled.
    Run {
        /// Where certificates, etcd data, logs and the kubeconfig go; wiped at start.
        #[arg(long, default_value = ".switchyard")]
        state_dir: PathBuf,
        /// Skip installing the CRDs from crds/manifests.
        #[arg(long)]
        no_crds: bool,
    },
    /// Start Pebble (an ACME server) with its challenge DNS server answering 127.0.0.1, and run
    /// until signalled; writes pebble/directory-url, pebble/server-ca.pem (its API's TLS) and
    /// pebble/issuing-root.pem (what issued certificates chain to) under the state dir.
    Pebble {
        #[arg(long, default_value = ".switchyard")]
        state_dir: PathBuf,
        /// The port Pebble validates HTTP-01 challenges on (the proxy's HTTP port).
        #[arg(long)]
        http01_port: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (state_dir, no_crds) = match cli.command {
        Cmd::Run { state_dir, no_crds } => (state_dir, no_crds),
        Cmd::Pebble {
            state_dir,
            http01_port,
        } => return pebble(&state_dir, http01_port),
    };
    let cluster_dir = state_dir.join("cluster");
    if cluster_dir.exists() {
        std::fs::remove_dir_all(&cluster_dir)
            .with_context(|| format!("remove the old {}", cluster_dir.display()))?;
    }
    let ready_marker = state_dir.join("cluster.ready");
    let _ = std::fs::remove_file(&ready_marker);
    let cluster = Cluster::start(ClusterOptions {
        state_dir: Some(cluster_dir),
        install_crds: !no_crds,
    })?;
    let kubeconfig = state_dir.join("kubeconfig");
    std::fs::copy(cluster.kubeconfig(), &kubeconfig)
        .with_context(|| format!("write {}", kubeconfig.display()))?;
    let pids: Vec<String> = cluster
        .pids()
        .iter()
        .map(|(name, pid)| format!("{name}={pid}"))
        .collect();
    std::fs::write(&ready_marker, format!("{}\n", pids.join("\n")))
        .with_context(|| format!("write {}", ready_marker.display()))?;
    println!(
        "control plane ready at {} (kubeconfig {}); {}",
        cluster.server(),
        kubeconfig.display(),
        pids.join(", ")
    );

    wait_for_stop()?;
    println!("stopping the control plane");
    let _ = std::fs::remove_file(&ready_marker);
    drop(cluster);
    Ok(())
}

/// Blocks until SIGTERM or SIGINT.
fn wait_for_stop() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })
}

fn pebble(state_dir: &std::path::Path, http01_port: u16) -> anyhow::Result<()> {
    use switchyard_tests::pebble::{Pebble, PebbleOptions};
    let dir = state_dir.join("pebble");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let pebble = Pebble::start(PebbleOptions {
        http01_port,
        certificate_validity: std::time::Duration::from_secs(90 * 24 * 3600),
    })?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
    };
    write("directory-url", pebble.directory_url())?;
    write("server-ca.pem", pebble.server_ca_pem())?;
    write("issuing-root.pem", &pebble.issuing_root_pem()?)?;
    println!("pebble ready: {}", pebble.directory_url());
    wait_for_stop()?;
    drop(pebble);
    Ok(())
}
