//! The `mercato` binary: `mercato --help` explains the commands.

use anyhow::{Context, Result};
use clap::Parser;
use mercato_host::cli::{
    AttestOutputs, Cli, Command, KeysCommand, StoreCommand, generate_key, run_attest, run_client,
    verify_document,
};
use mercato_host::config::Config;
use mercato_host::identity::AdminToken;
use mercato_host::server::Server;

/// mimalloc: a free call allocates and frees a few hundred small blocks
/// across the runtime's threads, where glibc's arenas spent a sixth of the
/// host's time (docs/BENCHMARKS.md §14).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        eprintln!("{}", mercato_host::cli::error::report(&error));
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
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
            embedding_model,
            database,
            tls_cert,
            tls_key,
        } => {
            serve(
                data_dir.clone(),
                *listen,
                config.as_deref(),
                *recompile,
                embedding_model.clone(),
                database.clone(),
                tls_cert.clone().zip(tls_key.clone()),
            )
            .await
        }
        Command::Keys {
            command: KeysCommand::Generate { out },
        } => generate_key(out),
        Command::CompileComponent {
            memory_bytes_max,
            concurrent_calls_max,
        } => std::process::exit(mercato_host::sandbox::compile_child(
            *memory_bytes_max,
            *concurrent_calls_max,
        )),
        Command::Attest {
            component,
            manifest,
            batteries,
            junit,
            report,
        } => {
            let outputs = AttestOutputs {
                junit: junit.clone(),
                report: report.clone(),
            };
            let passed = run_attest(
                component,
                manifest,
                batteries.as_deref(),
                &outputs,
                cli.json,
            )
            .await?;
            if !passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Store {
            command: StoreCommand::Migrate { from, to },
        } => {
            let report = mercato_host::cli::migrate_store(from, to).await?;
            println!("{report}");
            Ok(())
        }
        Command::Verify { document, keys } => {
            let keys = match keys {
                Some(path) => serde_json::from_str(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )
                .with_context(|| format!("{} is not a key set", path.display()))?,
                None => {
                    let url = format!(
                        "{}/.well-known/mercato-keys.json",
                        cli.server.trim_end_matches('/')
                    );
                    mercato_host::cli::client(cli.ca_cert.as_deref())?
                        .get(&url)
                        .send()
                        .await
                        .map_err(|e| mercato_host::cli::error::unreachable(&cli.server, &e))?
                        .json()
                        .await
                        .with_context(|| format!("{url} is not a key set"))?
                }
            };
            verify_document(document, &keys)
        }
        Command::McpStdio => {
            let key = cli
                .api_key
                .as_deref()
                .filter(|key| !key.trim().is_empty())
                .context("mcp-stdio needs --api-key (or MERCATO_API_KEY)")?;
            mercato_host::cli::mcp_stdio::run(&cli.server, key, cli.ca_cert.as_deref()).await
        }
        _ => run_client(&cli).await,
    }
}

async fn serve(
    data_dir: Option<std::path::PathBuf>,
    listen: Option<std::net::SocketAddr>,
    config_file: Option<&std::path::Path>,
    recompile: bool,
    embedding_model: Option<std::path::PathBuf>,
    database: Option<String>,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
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
    // Compile uploads in a child of this very binary (stoppable).
    if config.compiler_exe.is_none() {
        config.compiler_exe = std::env::current_exe().ok();
    }
    if embedding_model.is_some() {
        config.embedding_model = embedding_model;
    }
    if let Some(url) = database {
        config.database_url = Some(mercato_host::config::DatabaseUrl(url));
    }
    if let Some((cert, key)) = tls {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
    }
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
        "mercato listening on {} (data in {}; discovery embedder: {})",
        server.url(),
        server.market().store_shown(),
        server.market().embedder_name()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("stopping: finishing requests and flushing the store");
    server.stop().await?;
    Ok(())
}
