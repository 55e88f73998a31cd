//! `kubectl switchyard`: follow and steer RolloutRoutes, and see certificates at a glance.

use anyhow::Context;
use clap::{Parser, Subcommand};
use kube::api::{Api, ListParams, Patch, PatchParams};
use switchyard_crds::{Certificate, RolloutRoute};
use switchyard_operator::{kubeenv, plugin};

#[derive(Parser)]
#[command(
    name = "kubectl-switchyard",
    bin_name = "kubectl switchyard",
    version,
    about = "Follow and steer Switchyard rollouts and certificates",
    long_about = "Follow and steer Switchyard rollouts and certificates.\n\n\
        promote, abort, retry and undo ask the operator to act once (a switchyard.dev/<verb> \
        annotation with a fresh timestamp); pause and resume set spec.paused. Watch the result \
        with `kubectl switchyard status NAME` or `kubectl describe rr NAME`."
)]
struct Cli {
    /// Kubeconfig to use; otherwise KUBECONFIG, then the in-cluster service account.
    #[arg(long, global = true, value_name = "PATH")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Namespace [default: the kubeconfig context's].
    #[arg(short, long, global = true, value_name = "NS")]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// RolloutRoutes and Certificates, or one RolloutRoute in detail.
    Status {
        /// A RolloutRoute to show in detail.
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Move a rollout past its current pause (or, with --full, to the end at once).
    Promote {
        name: String,
        /// Skip the remaining steps and analysis: the new backend takes all traffic now.
        #[arg(long)]
        full: bool,
    },
    /// Stop the rollout and send all traffic back to the stable backend.
    Abort { name: String },
    /// Hold the rollout where it is (traffic stays split as it is now).
    Pause { name: String },
    /// Continue a paused rollout.
    Resume { name: String },
    /// Start an aborted rollout again from its first step.
    Retry { name: String },
    /// Roll back to the backend that served before the last completed rollout.
    Undo { name: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kubeenv::client(cli.kubeconfig.as_deref()).await?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let routes: Api<RolloutRoute> = Api::namespaced(client.clone(), &namespace);
    let params = PatchParams::default();

    let (name, patch, done) = match cli.command {
        Command::Status {
            name,
            all_namespaces,
        } => return status(client, &namespace, name, all_namespaces).await,
        Command::Promote { name, full } => {
            let verb = if full { "promote-full" } else { "promote" };
            let p = plugin::action_patch(verb, jiff::Timestamp::now());
            (name, p, "promotion requested")
        }
        Command::Abort { name } => {
            let p = plugin::action_patch("abort", jiff::Timestamp::now());
            (name, p, "abort requested")
        }
        Command::Retry { name } => {
            let p = plugin::action_patch("retry", jiff::Timestamp::now());
            (name, p, "retry requested")
        }
        Command::Undo { name } => {
            let p = plugin::action_patch("undo", jiff::Timestamp::now());
            (name, p, "undo requested")
        }
        Command::Pause { name } => (name, plugin::pause_patch(true), "paused"),
        Command::Resume { name } => (name, plugin::pause_patch(false), "resumed"),
    };
    routes
        .patch(&name, &params, &Patch::Merge(&patch))
        .await
        .with_context(|| format!("rolloutroute {namespace}/{name}"))?;
    println!("rolloutroute.switchyard.dev/{name} {done}");
    Ok(())
}

async fn status(
    client: kube::Client,
    namespace: &str,
    name: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    if let Some(name) = name {
        let routes: Api<RolloutRoute> = Api::namespaced(client, namespace);
        let route = routes
            .get(&name)
            .await
            .with_context(|| format!("rolloutroute {namespace}/{name}"))?;
        print!(
            "{}",
            plugin::rollout_rows(std::slice::from_ref(&route), false)
        );
        let conditions = route.status.map(|s| s.conditions).unwrap_or_default();
        print!("\n{}", plugin::conditions_block(&conditions));
        return Ok(());
    }
    let (routes, certs): (Api<RolloutRoute>, Api<Certificate>) = if all {
        (Api::all(client.clone()), Api::all(client))
    } else {
        (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client, namespace),
        )
    };
    let lp = ListParams::default();
    let routes = routes.list(&lp).await.context("list rolloutroutes")?.items;
    let certs = certs.list(&lp).await.context("list certificates")?.items;
    let scope = if all {
        "any namespace".to_string()
    } else {
        format!("namespace {namespace}")
    };
    if routes.is_empty() {
        println!("No RolloutRoutes in {scope}.");
    } else {
        print!("{}", plugin::rollout_rows(&routes, all));
    }
    println!();
    if certs.is_empty() {
        println!("No Certificates in {scope}.");
    } else {
        print!("{}", plugin::certificate_rows(&certs, all));
    }
    Ok(())
}
