//! `ws-tunnels`: holds many idle WebSocket connections open through a front,
//! to measure what a WebSocket tunnel costs it.
//!
//! Opens `--connections` WebSockets to `--url` (`--concurrency` at a time);
//! each does a Bayeux handshake, proving the tunnel works end to end (when
//! the URL names a node with `gcbSessionServer=`, the handshake must come
//! from that node). Prints `{"opened":N,"ok":M,"failed":K}` on stdout
//! (flushed) as soon as all are open, then holds them idle until `--hold`
//! elapses, stdin (a pipe) closes, or SIGTERM/SIGINT. `opened`: WebSocket
//! upgrades that succeeded; `ok`: of those, handshaken and held; `failed`:
//! attempts that are not held. After the hold, unless `--no-probe`, each
//! held client sends a `/meta/connect` and the number still answering is
//! reported on stderr (an idle timeout on the way would show there).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use loadgen::bayeux::{self, Client};
use loadgen::run;
use loadgen::{Context, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Read buffer per socket: the sockets are idle.
const READ_BUFFER: usize = 4 * 1024;
/// How long the probe after the hold may take in all.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "ws-tunnels",
    about = "Holds idle WebSocket connections (one Bayeux handshake each) open through a front",
    after_help = "Prints {\"opened\":N,\"ok\":M,\"failed\":K} on stdout once all are open, then holds them."
)]
struct Args {
    /// WebSocket URL of the Bayeux endpoint.
    #[arg(
        long,
        default_value = "ws://127.0.0.1:8700/cobrowse/cometd?gcbSessionServer=node-1"
    )]
    url: String,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Time one connection may take to open and handshake.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How long to hold the connections once open (stdin closing or SIGTERM
    /// ends the hold earlier).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Skip the after-hold check that the tunnels still carry messages.
    #[arg(long)]
    no_probe: bool,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// One attempt's result: the held client, or why not (and whether the
/// upgrade got through).
type Attempt = run::Attempt<Client>;

fn label() -> &'static str {
    "ws-tunnels"
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = run::runtime(args.threads).and_then(|rt| rt.block_on(main_async(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws-tunnels: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async(args: Args) -> Result<()> {
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if !args.url.starts_with("ws://") {
        return Err(format!("--url {}: expected ws://host:port/…", args.url).into());
    }
    run::raise_open_files_limit(args.connections as u64);
    let url: Arc<str> = args.url.as_str().into();
    let expected_node: Option<Arc<str>> = bayeux::node_in_url(&args.url).map(Arc::from);
    eprintln!(
        "ws-tunnels: opening {} WebSockets to {} ({} at a time)",
        args.connections, args.url, args.concurrency
    );
    let timeout = args.timeout;
    let opened = run::open_all(label(), args.connections, args.concurrency, || {
        let url = Arc::clone(&url);
        let expected_node = expected_node.clone();
        async move { open(&url, expected_node.as_deref(), timeout).await }
    })
    .await?;
    let (held, counts) = (opened.held, opened.counts);
    run::print_json_line(&counts)?;

    eprintln!(
        "ws-tunnels: holding for {} (or until stdin closes / SIGTERM)",
        humantime::format_duration(args.hold)
    );
    let end = run::hold(args.hold).await;
    if args.no_probe || end != run::HoldEnd::Elapsed {
        eprintln!("ws-tunnels: {end}; {} held", held.len());
        return Ok(());
    }
    let total = held.len();
    let alive = probe(held, args.concurrency).await;
    eprintln!("ws-tunnels: {end}; {alive}/{total} tunnels still answer a /meta/connect");
    Ok(())
}

/// Opens one WebSocket and handshakes on it.
async fn open(url: &str, expected_node: Option<&str>, timeout: Duration) -> Attempt {
    let mut opened = false;
    let exchange = async {
        let socket = bayeux::open(url, bayeux::socket_config(READ_BUFFER)).await?;
        opened = true;
        let client = Client::handshake(socket, timeout)
            .await
            .context("handshake")?;
        if let Some(expected) = expected_node {
            if client.node.as_deref() != Some(expected) {
                return Err(format!(
                    "handshake answered by node {:?}, not {expected:?}",
                    client.node.as_deref().unwrap_or("(unnamed)")
                )
                .into());
            }
        }
        Ok::<_, loadgen::Error>(client)
    };
    let outcome = tokio::time::timeout(timeout, exchange).await;
    match outcome {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err((opened, e.to_string())),
        Err(_) => Err((opened, "timed out".into())),
    }
}

/// How many of `clients` still answer a `/meta/connect` (asked `limit` at a
/// time, within [`PROBE_TIMEOUT`] in all).
async fn probe(clients: Vec<Client>, limit: usize) -> usize {
    let permits = Arc::new(Semaphore::new(limit));
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut probes = JoinSet::new();
    for mut client in clients {
        let permits = Arc::clone(&permits);
        probes.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return false;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            client.first_connect(left).await.is_ok()
        });
    }
    let mut alive = 0;
    while let Some(answered) = probes.join_next().await {
        alive += usize::from(matches!(answered, Ok(true)));
    }
    alive
}
