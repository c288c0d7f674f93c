//! `session-node`: parse the configuration, bind, serve until SIGTERM/SIGINT,
//! then drain. Everything else lives in the library.

use std::time::Duration;

use access::agent::{mint, MintRequest};
use clap::Parser;
use session_node::config::cli::{AgentTokenArgs, DemoSiteArgs};
use session_node::config::{Cli, Command, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::AgentToken(args)) => return agent_token(&args),
        Some(Command::DemoSite(args)) => return demo_site(&args).await,
        None => {}
    }
    let config = match Config::load(cli) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match session_node::server::bind(config.listen, config.listen_backlog) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", config.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    match session_node::serve(listener, config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `session-node agent-token`: prints a signed agent credential.
fn agent_token(args: &AgentTokenArgs) -> std::process::ExitCode {
    let minted = std::fs::read(&args.key_file)
        .map_err(|e| format!("cannot read {}: {e}", args.key_file.display()))
        .and_then(|secret| {
            if args.ttl < Duration::from_secs(1) {
                return Err("--ttl must be at least 1s".to_owned());
            }
            mint(
                secret.trim_ascii(),
                &MintRequest {
                    sub: &args.sub,
                    ttl: args.ttl,
                    session_token: args.session.as_deref(),
                    roles: (!args.roles.is_empty()).then(|| args.roles.clone()),
                },
            )
        });
    match minted {
        Ok(token) => {
            println!("{token}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agent-token: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `session-node demo-site`: serves the demo shop until SIGTERM/SIGINT.
async fn demo_site(args: &DemoSiteArgs) -> std::process::ExitCode {
    let site = match session_node::web::demo::DemoSite::new(&args.widget_url) {
        Ok(site) => site,
        Err(e) => {
            tracing::error!("demo-site: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match session_node::server::bind(args.listen, 128) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    match session_node::web::demo::serve(listener, site, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("demo-site: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now (before the node says it is
/// listening, so a signal sent right after cannot kill it outright) and
/// returns a future that completes on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}
