//! `sticky-proxy` binary: flags, logging, the runtime with `--workers`
//! threads, the listeners, and the signals (SIGTERM/SIGINT drain and stop,
//! SIGHUP reloads the config file and the TLS certificate).

use std::process::ExitCode;

use sticky_proxy::config::Cli;
use sticky_proxy::{Config, ConfigError, Proxy, ProxyHandle};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    sticky_proxy::config::raise_nofile_limit();
    let config = match Config::from_cli(<Cli as clap::Parser>::parse()) {
        Ok(config) => config,
        Err(ConfigError::Cli(error)) => error.exit(),
        Err(error) => {
            eprintln!("sticky-proxy: {error}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // One worker is one thread, like one nginx worker process: the
    // current-thread scheduler then saves the cross-thread wake-ups (futex
    // calls) a one-worker multi-thread runtime would make between its worker
    // and the thread blocked in `block_on`.
    let mut builder = if config.workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(config.workers);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let admin_listener = match config.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))?,
        ),
        None => None,
    };
    let proxy = Proxy::new(config, listener, admin_listener)?;
    tokio::spawn(reload_on_sighup(proxy.handle()));
    proxy.serve(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
    }
}

async fn reload_on_sighup(handle: ProxyHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP; reload disabled");
            return;
        }
    };
    while hup.recv().await.is_some() {
        if let Err(error) = handle.reload() {
            tracing::error!("reload failed, keeping the current nodes: {error}");
        }
        if let Err(error) = handle.reload_tls() {
            tracing::error!("TLS reload failed, keeping the current certificate: {error}");
        }
    }
}
