//! A small HTTP backend for `make demo`: answers every request with its own name and what it
//! received (see `switchyard_tests::backend`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use switchyard_tests::backend;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "An HTTP backend that says who it is and echoes what it received")]
struct Cli {
    /// The name it answers with, e.g. blue or green.
    #[arg(long)]
    name: String,
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the port actually bound to this file (for scripts that chose port 0).
    #[arg(long)]
    port_file: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("bind {}", cli.listen))?;
    let addr = listener.local_addr()?;
    if let Some(file) = &cli.port_file {
        std::fs::write(file, addr.port().to_string())
            .with_context(|| format!("write {}", file.display()))?;
    }
    eprintln!("demo backend {} listening on {addr}", cli.name);
    // The name lives as long as the process; leaking it gives the 'static the server needs.
    let name: &'static str = Box::leak(cli.name.into_boxed_str());
    tokio::select! {
        _ = backend::serve(name, listener) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
