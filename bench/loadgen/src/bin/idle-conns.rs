//! `idle-conns`: holds many idle keep-alive HTTP/1.1 connections open on a
//! front, to measure what an idle client connection costs it.
//!
//! Opens `--connections` TCP connections to `--target` (`--concurrency` at a
//! time), sends one keep-alive `GET --path` on each and reads its whole
//! response, then prints `{"opened":N,"ok":M,"failed":K}` on stdout (flushed)
//! and keeps every good connection open, idle, until `--hold` elapses, stdin
//! (a pipe) closes, or SIGTERM/SIGINT. `opened`: TCP connects that succeeded;
//! `ok`: connections answered with a complete 2xx keep-alive response, now
//! held; `failed`: attempts that are not held.
//!
//! The soft open-files limit is raised to the hard limit at start; if the
//! hard limit is too low, raise it before (`ulimit -n`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use loadgen::http1;
use loadgen::run;
use loadgen::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(
    name = "idle-conns",
    about = "Holds idle keep-alive HTTP/1.1 connections (one GET each) open on a front",
    after_help = "Prints {\"opened\":N,\"ok\":M,\"failed\":K} on stdout once all are open, then holds them."
)]
struct Args {
    /// Address to connect to, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8700")]
    target: String,
    /// Path of the GET sent on each connection.
    #[arg(long, default_value = "/cobrowse/health")]
    path: String,
    /// `Host` header (default: the target).
    #[arg(long)]
    host: Option<String>,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Time one connection may take to connect and be answered.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How long to hold the connections once open (stdin closing or SIGTERM
    /// ends the hold earlier).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// One attempt's result: the held connection, or why not (and whether TCP
/// got through).
type Attempt = run::Attempt<TcpStream>;

fn label() -> &'static str {
    "idle-conns"
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = run::runtime(args.threads).and_then(|rt| rt.block_on(main_async(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idle-conns: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async(args: Args) -> Result<()> {
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    run::raise_open_files_limit(args.connections as u64);
    let host = args.host.clone().unwrap_or_else(|| args.target.clone());
    let request: Arc<[u8]> = http1::get_request(&args.path, &host).into_bytes().into();
    eprintln!(
        "idle-conns: opening {} connections to {} (GET {}, {} at a time)",
        args.connections, args.target, args.path, args.concurrency
    );
    let target: Arc<str> = args.target.as_str().into();
    let timeout = args.timeout;
    let opened = run::open_all(label(), args.connections, args.concurrency, || {
        let target = Arc::clone(&target);
        let request = Arc::clone(&request);
        async move { open(&target, &request, timeout).await }
    })
    .await?;
    let (held, counts) = (opened.held, opened.counts);
    run::print_json_line(&counts)?;

    eprintln!(
        "idle-conns: holding for {} (or until stdin closes / SIGTERM)",
        humantime::format_duration(args.hold)
    );
    let end = run::hold(args.hold).await;
    let still_open = held.iter().filter(|s| is_open(s)).count();
    eprintln!(
        "idle-conns: {end}; {still_open}/{} connections still open",
        held.len()
    );
    Ok(())
}

/// Connects, sends the GET, reads the whole answer.
async fn open(target: &str, request: &[u8], timeout: Duration) -> Attempt {
    let mut opened = false;
    let exchange = async {
        let mut stream = TcpStream::connect(target).await.context("connect")?;
        opened = true;
        stream.write_all(request).await.context("send")?;
        let response = http1::read_response(&mut stream)
            .await
            .context("response")?;
        if !(200..300).contains(&response.status) {
            return Err(format!("status {}", response.status).into());
        }
        if !response.keep_alive {
            return Err("response not keep-alive".into());
        }
        Ok::<_, loadgen::Error>(stream)
    };
    let outcome = tokio::time::timeout(timeout, exchange).await;
    match outcome {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err((opened, e.to_string())),
        Err(_) => Err((opened, "timed out".into())),
    }
}

/// Whether the peer has not closed the connection (nothing to read yet).
fn is_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}
