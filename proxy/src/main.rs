#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use switchyard_proxy::cli::{Cli, Command};
use switchyard_proxy::{check, run};
use tracing_subscriber::EnvFilter;

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // People read a terminal; log collectors read JSON.
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // One crypto provider for the whole process (ring); failing means one is already set.
    let _ = rustls::crypto::ring::default_provider().install_default();

    if let Some(Command::Check { files }) = &cli.command {
        return check::run(&cli.flags.compile_options(), files);
    }
    // This runtime watches the configuration, compiles (on its blocking pool) and serves the
    // operations endpoints; requests are served by the serving threads' own runtimes.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("control")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("switchyard-proxy: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::serve(cli.flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                tracing::error!("caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
