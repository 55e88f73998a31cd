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
        /// Keep watching the RolloutRoute NAME and print it again whenever it changes.
        #[arg(short, long, requires = "name")]
        watch: bool,
    },
    /// Print the Ingresses the operator would create for the RolloutRoutes in a file (no
    /// cluster needed).
    Render {
        /// A YAML file with one or more RolloutRoutes ("-" reads stdin).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: std::path::PathBuf,
        /// During a rollout, at this step (from 0, as status.currentStep; blue-green: 0 before
        /// the switch, 1 after).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// The stable backend the rollout replaces, SERVICE:PORT [default: the file's
        /// status.stableBackend].
        #[arg(long, value_name = "SERVICE:PORT")]
        from: Option<String>,
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
    /// Certificates: `cert status NAME`, `cert renew NAME`.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Subcommand)]
enum CertCommand {
    /// One Certificate in detail: conditions, each name's authorization, the CA's last error
    /// and the next attempt.
    Status { name: String },
    /// Issue the Certificate again now (Issuing=True, reason ManuallyTriggered).
    Renew { name: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Render { file, step, from } = &cli.command {
        return render(file, *step, from.as_deref());
    }
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
            name: Some(name),
            watch: true,
            ..
        } => return watch(client, &namespace, &name).await,
        Command::Status {
            name,
            all_namespaces,
            ..
        } => return status(client, &namespace, name, all_namespaces).await,
        Command::Render { .. } => return Ok(()),
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
        Command::Cert(command) => return cert(client, &namespace, command).await,
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
        print!("{}", switchyard_operator::view::route_detail(&route));
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

async fn cert(client: kube::Client, namespace: &str, command: CertCommand) -> anyhow::Result<()> {
    let certs: Api<Certificate> = Api::namespaced(client, namespace);
    match command {
        CertCommand::Status { name } => {
            let cert = certs
                .get(&name)
                .await
                .with_context(|| format!("certificate {namespace}/{name}"))?;
            print!("{}", plugin::certificate_story(&cert));
        }
        CertCommand::Renew { name } => {
            let cert = certs
                .get(&name)
                .await
                .with_context(|| format!("certificate {namespace}/{name}"))?;
            let patch = plugin::renew_patch(cert.metadata.generation, jiff::Timestamp::now());
            certs
                .patch_status(
                    &name,
                    &PatchParams::apply("kubectl-switchyard").force(),
                    &Patch::Apply(&patch),
                )
                .await
                .with_context(|| format!("certificate {namespace}/{name}"))?;
            println!("certificate.switchyard.dev/{name} renewal requested");
        }
    }
    Ok(())
}

fn render(file: &std::path::Path, step: Option<u32>, from: Option<&str>) -> anyhow::Result<()> {
    use switchyard_operator::render;
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let position = render::Position {
        step,
        from: from.map(render::parse_backend).transpose()?,
    };
    print!("{}", render::render(&text, &position)?);
    Ok(())
}

/// `status NAME --watch`: the detail view again on every change, until interrupted.
async fn watch(client: kube::Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let routes: Api<RolloutRoute> = Api::namespaced(client, namespace);
    routes
        .get(name)
        .await
        .with_context(|| format!("rolloutroute {namespace}/{name}"))?;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(routes, config).applied_objects());
    let mut last = String::new();
    while let Some(route) = stream.next().await {
        let route = route.with_context(|| format!("watching rolloutroute {namespace}/{name}"))?;
        let view = switchyard_operator::view::route_detail(&route);
        if view != last {
            println!("--- {} ---", jiff::Timestamp::now().strftime("%H:%M:%S"));
            print!("{view}");
            last = view;
        }
    }
    Ok(())
}
