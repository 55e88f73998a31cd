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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Cmd::Run { state_dir, no_crds } = cli.command;
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
    })?;
    println!("stopping the control plane");
    let _ = std::fs::remove_file(&ready_marker);
    drop(cluster);
    Ok(())
}
