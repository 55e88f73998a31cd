use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use switchyard_operator::{cli::Cli, controllers, health, kubeenv, leader, logging, solver};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init();
    // One crypto provider for the whole process (kube and instant-acme both use rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let client = kubeenv::client(cli.kubeconfig.as_deref()).await?;
    let namespace = kubeenv::own_namespace();
    let identity = kubeenv::own_identity();
    let lease_namespace = cli
        .leader_election_namespace
        .clone()
        .unwrap_or_else(|| namespace.clone());

    let health = health::Health::new();
    let listener = health::bind(cli.metrics_addr)
        .await
        .with_context(|| format!("listen on --metrics-addr {}", cli.metrics_addr))?;
    let server = tokio::spawn(health::serve(listener, health.clone()));
    // Every replica answers HTTP-01 challenges, leader or not: the solver Service selects all.
    let solver_listener = solver::bind(cli.acme_solver_addr)
        .await
        .with_context(|| format!("listen on --acme-solver-addr {}", cli.acme_solver_addr))?;
    let (challenges, watch_challenges) = solver::challenge_ingresses(client.clone());
    let solver_task = tokio::spawn(solver::serve(solver_listener, challenges));
    let watch_task = tokio::spawn(watch_challenges);

    let controller_client = client.clone();
    let settings = controllers::Settings {
        cluster_resource_namespace: cli
            .cluster_resource_namespace
            .clone()
            .unwrap_or_else(|| namespace.clone()),
        identity: identity.clone(),
        solver_backend: cli
            .acme_solver_service
            .as_ref()
            .map(|s| switchyard_operator::certs::children::SolverBackend {
                service: s.service.name.clone(),
                port: s.port,
            })
            .unwrap_or_default(),
        self_check: if !cli.proxy_http_url.is_empty() {
            controllers::certificate::SelfCheck::Urls(cli.proxy_http_url.clone())
        } else if let Some(svc) = cli.proxy_service.clone() {
            controllers::certificate::SelfCheck::Service(svc)
        } else {
            tracing::warn!(
                "neither --proxy-http-url nor --proxy-service: HTTP-01 tokens are not \
                 self-checked before the CA is asked to validate them"
            );
            controllers::certificate::SelfCheck::Off
        },
        cert_manager_annotations: cli.cert_manager_annotations,
        watch_namespace: cli.watch_namespace.clone(),
        proxy_metrics: controllers::analysis::MetricsSource::new(
            &cli.proxy_metrics_url,
            cli.proxy_service.as_ref(),
        ),
    };
    let result = leader::run_while_leader(
        client,
        &lease_namespace,
        &identity,
        Arc::clone(&health),
        move || controllers::run(controller_client.clone(), settings.clone()),
        shutdown_signal(),
    )
    .await;
    server.abort();
    solver_task.abort();
    watch_task.abort();
    result.context("leader election")?;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
