//! The `mercato` binary: `mercato --help` explains the commands.

use anyhow::{Context, Result};
use clap::Parser;
use mercato_host::cli::{Cli, Command, run_client};
use mercato_host::config::Config;
use mercato_host::identity::AdminToken;
use mercato_host::server::Server;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mercato_host=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match &cli.command {
        Command::Serve {
            data_dir,
            listen,
            config,
            recompile,
        } => serve(data_dir.clone(), *listen, config.as_deref(), *recompile).await,
        _ => run_client(&cli).await,
    }
}

async fn serve(
    data_dir: Option<std::path::PathBuf>,
    listen: Option<std::net::SocketAddr>,
    config_file: Option<&std::path::Path>,
    recompile: bool,
) -> Result<()> {
    let mut config = match config_file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = listen {
        config.listen = addr;
    }
    config.recompile |= recompile;
    let data_dir = config.data_dir.clone();
    let server = Server::start(config)
        .await
        .with_context(|| format!("cannot start on {}", data_dir.display()))?;
    if let AdminToken::Generated(token) = server.admin_token() {
        eprintln!(
            "Generated the admin token (shown once; set MERCATO_ADMIN_TOKEN to choose your own):\n  {token}"
        );
    }
    eprintln!(
        "mercato listening on {} (data in {})",
        server.url(),
        data_dir.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("stopping: finishing requests and flushing the store");
    server.stop().await?;
    Ok(())
}
