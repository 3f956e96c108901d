//! `zkrs`: clap -> config -> tracing -> server::run(shutdown).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use zkrs::config::Config;

/// A ZooKeeper wire-compatible server. With no arguments: client port 2181, data dir ./data.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A ZooKeeper zoo.cfg file, or TOML with the same keys when the name ends in `.toml`.
    /// `ZKRS_<KEY>` environment variables override it (`ZKRS_TICK_TIME=1000`).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Overrides clientPort.
    #[arg(long)]
    port: Option<u16>,
    /// Overrides dataDir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut cfg = match Config::load(args.config.as_deref(), None) {
        Ok(cfg) => cfg,
        Err(e) => {
            match &args.config {
                Some(path) => eprintln!("zkrs: {}: {e}", path.display()),
                None => eprintln!("zkrs: {e}"),
            }
            return ExitCode::from(2);
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    if let Some(port) = args.port {
        cfg.client_port = port;
        cfg.client_port_set = true;
    }
    if let Some(dir) = args.data_dir {
        cfg.data_dir = dir;
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zkrs: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let listener = zkrs::server::bind(&cfg).await?;
        zkrs::server::run(listener, cfg, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zkrs: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// mimalloc: under a stream of writes glibc's malloc spent a quarter of the server's CPU
/// consolidating free chunks (many small nodes, frames and strings freed among larger
/// buffers); with mimalloc that time is gone (bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
