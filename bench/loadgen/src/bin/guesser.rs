//! `guesser`: tries random session tokens as fast as it can, as an attacker
//! would, and counts what it found.
//!
//! Over `--connections` keep-alive HTTP/1.1 connections for `--duration`,
//! each request a fresh random nine-digit token, taking turns through
//! `--mix`:
//!
//! - `get`: `GET <ctx>/rest/live/sessions/{t}` with `Origin: --origin`;
//! - `join`: `POST <ctx>/rest/live/sessions/{t}/users`, body `{"role":2}`,
//!   no credential.
//!
//! `--forwarded-for-pool N` adds `X-Forwarded-For` naming one of N addresses
//! (10.0.0.1, 10.0.0.2, … in turn): a guesser pretending to be N clients. A
//! front that does not trust the guesser's address ignores it. `--bind`
//! picks the source address (e.g. `127.0.0.2`, so that a node trusting the
//! proxy at 127.0.0.1 does not trust the guesser too).
//!
//! A **hit** (a token found) is a Get answered 200 or 410 (the session
//! exists, live or ended), or a join answered anything but 404, 401 or 429
//! (conservatively: any other answer to a join might tell the token
//! exists). One JSON line on stdout:
//!
//! `{"guesses":…,"guesses_per_s":…,"statuses":{"404":…,"429":…},
//! "by_kind":{"get":{…},"join":{…}},"answered":…,"hits":…,"found":[…],
//! "first_429_s":…,"first_retry_after":…,…}` — `answered` counts the
//! guesses not refused with 429, `first_429_s` is when the first 429 came
//! (seconds from the start), `first_retry_after` its `Retry-After`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use loadgen::run::{self, json_number, ErrorTally};
use loadgen::{http1, Context, Result};
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Time one exchange (connect, or request and answer) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Tokens found that the report lists (the count has them all).
const MAX_FOUND_LISTED: usize = 20;

#[derive(Debug, Parser)]
#[command(
    name = "guesser",
    about = "Guesses random nine-digit session tokens over keep-alive connections and counts what it found",
    after_help = "Prints one JSON line on stdout, progress on stderr."
)]
struct Args {
    /// The front (or a node): `http://host:port`.
    #[arg(long, default_value = "http://127.0.0.1:8700")]
    url: String,
    /// Context path of the application.
    #[arg(long, default_value = "/cobrowse")]
    context: String,
    /// Keep-alive connections, each one request at a time.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// How long to guess, e.g. `30s`, `10m`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Kinds of guess, taken in turn: `get`, `join`.
    #[arg(long, default_value = "get,join", value_delimiter = ',')]
    mix: Vec<Kind>,
    /// `Origin` of the Get guesses (one the nodes allow, as a copied page would send).
    #[arg(long, default_value = "http://bench.test")]
    origin: String,
    /// Send `X-Forwarded-For` naming one of this many addresses in turn (0: none).
    #[arg(long, default_value_t = 0)]
    forwarded_for_pool: u32,
    /// Source address of the connections (default: the system's choice).
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    Get,
    Join,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Get => "get",
            Kind::Join => "join",
        }
    }

    /// Whether this answer to this kind of guess means the token exists.
    fn is_hit(self, status: u16) -> bool {
        match self {
            Kind::Get => status == 200 || status == 410,
            Kind::Join => !matches!(status, 404 | 401 | 429),
        }
    }
}

/// What the connections share: the request shape and the live counters.
#[derive(Debug)]
struct Shared {
    args: Args,
    host: String,
    target: SocketAddr,
    start: Instant,
    guesses: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
struct Found {
    kind: &'static str,
    token: String,
    status: u16,
}

/// One connection's tally, merged at the end.
#[derive(Debug, Default)]
struct Tally {
    by_kind: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    hits: u64,
    found: Vec<Found>,
    /// (seconds from the start, Retry-After) of this connection's first 429.
    first_429: Option<(f64, Option<String>)>,
    retry_after_range: Option<(u64, u64)>,
    reconnects: u64,
    errors: ErrorTally,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    connections: usize,
    mix: Vec<&'static str>,
    forwarded_for_pool: u32,
    bind: Option<String>,
    duration_s: Value,
    guesses: u64,
    guesses_per_s: f64,
    statuses: BTreeMap<u16, u64>,
    by_kind: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    answered: u64,
    refused_429: u64,
    hits: u64,
    found: Vec<Found>,
    first_429_s: Option<f64>,
    first_retry_after: Option<String>,
    retry_after_min_s: Option<u64>,
    retry_after_max_s: Option<u64>,
    reconnects: u64,
    connection_errors: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = run::runtime(args.threads).and_then(|rt| rt.block_on(main_async(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guesser: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async(args: Args) -> Result<()> {
    if args.connections == 0 || args.mix.is_empty() {
        return Err("--connections and --mix must not be empty".into());
    }
    let host = args
        .url
        .strip_prefix("http://")
        .ok_or("--url must be http://host:port")?
        .trim_end_matches('/')
        .to_owned();
    let target = tokio::net::lookup_host(host.as_str())
        .await
        .context(format_args!("resolving {host}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    run::raise_open_files_limit(args.connections as u64);
    let shared = Arc::new(Shared {
        host,
        target,
        start: Instant::now(),
        guesses: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        args,
    });
    eprintln!(
        "guesser: {} connections to {} for {}, mix {:?}, X-Forwarded-For pool {}",
        shared.args.connections,
        shared.args.url,
        humantime::format_duration(shared.args.duration),
        shared.args.mix,
        shared.args.forwarded_for_pool
    );
    let tasks: Vec<_> = (0..shared.args.connections)
        .map(|index| tokio::spawn(guess(index, Arc::clone(&shared))))
        .collect();
    let progress = tokio::spawn(progress(Arc::clone(&shared)));
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.context("a connection task")?;
        merge(&mut total, tally);
    }
    progress.abort();
    let elapsed = shared.start.elapsed().as_secs_f64();

    let mut statuses = BTreeMap::new();
    for counts in total.by_kind.values() {
        for (status, n) in counts {
            *statuses.entry(*status).or_default() += n;
        }
    }
    let guesses: u64 = statuses.values().sum();
    let refused = statuses.get(&429).copied().unwrap_or(0);
    let args = &shared.args;
    run::print_json_line(&Report {
        url: args.url.clone(),
        connections: args.connections,
        mix: args.mix.iter().map(|k| k.name()).collect(),
        forwarded_for_pool: args.forwarded_for_pool,
        bind: args.bind.map(|a| a.to_string()),
        duration_s: json_number((elapsed * 1000.0).round() / 1000.0),
        guesses,
        guesses_per_s: (guesses as f64 / elapsed).round(),
        statuses,
        by_kind: total.by_kind,
        answered: guesses - refused,
        refused_429: refused,
        hits: total.hits,
        found: total.found,
        first_429_s: total
            .first_429
            .as_ref()
            .map(|f| (f.0 * 1000.0).round() / 1000.0),
        first_retry_after: total.first_429.and_then(|f| f.1),
        retry_after_min_s: total.retry_after_range.map(|r| r.0),
        retry_after_max_s: total.retry_after_range.map(|r| r.1),
        reconnects: total.reconnects,
        connection_errors: total.errors.total(),
    })?;
    total.errors.report("guesser: error");
    Ok(())
}

fn merge(total: &mut Tally, tally: Tally) {
    for (kind, counts) in tally.by_kind {
        let into = total.by_kind.entry(kind).or_default();
        for (status, n) in counts {
            *into.entry(status).or_default() += n;
        }
    }
    total.hits += tally.hits;
    let room = MAX_FOUND_LISTED.saturating_sub(total.found.len());
    total.found.extend(tally.found.into_iter().take(room));
    if let Some(first) = tally.first_429 {
        if total.first_429.as_ref().is_none_or(|t| first.0 < t.0) {
            total.first_429 = Some(first);
        }
    }
    if let Some((lo, hi)) = tally.retry_after_range {
        let (tlo, thi) = total.retry_after_range.unwrap_or((lo, hi));
        total.retry_after_range = Some((tlo.min(lo), thi.max(hi)));
    }
    total.reconnects += tally.reconnects;
    for (error, n) in tally.errors.top(usize::MAX) {
        total.errors.add_count(error, n);
    }
}

async fn progress(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tick.tick().await;
        eprintln!(
            "guesser: t={:.0}s {} guesses, {} refused (429)",
            shared.start.elapsed().as_secs_f64(),
            shared.guesses.load(Ordering::Relaxed),
            shared.refused.load(Ordering::Relaxed)
        );
    }
}

async fn connect(shared: &Shared) -> Result<TcpStream> {
    let socket = if shared.target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("socket")?;
    if let Some(ip) = shared.args.bind {
        socket.bind(SocketAddr::new(ip, 0)).context("bind")?;
    }
    let stream = tokio::time::timeout(EXCHANGE_TIMEOUT, socket.connect(shared.target))
        .await
        .map_err(|_| "connect timed out")?
        .context("connect")?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(stream)
}

/// The request of guess number `n` for `token`.
fn guess_request(shared: &Shared, kind: Kind, token: &str, n: u64) -> String {
    let args = &shared.args;
    let context = args.context.trim_end_matches('/');
    let forwarded = (args.forwarded_for_pool > 0).then(|| {
        let i = (n % u64::from(args.forwarded_for_pool)) as u32 + 1;
        std::net::Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).to_string()
    });
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3);
    if let Some(addr) = forwarded.as_deref() {
        headers.push(("X-Forwarded-For", addr));
    }
    match kind {
        Kind::Get => {
            headers.push(("Origin", &args.origin));
            let path = format!("{context}/rest/live/sessions/{token}");
            http1::request("GET", &path, &shared.host, &headers, "")
        }
        Kind::Join => {
            headers.push(("Content-Type", "application/json"));
            let path = format!("{context}/rest/live/sessions/{token}/users");
            http1::request("POST", &path, &shared.host, &headers, r#"{"role":2}"#)
        }
    }
}

/// One connection's loop: guess until the deadline, reconnecting when the
/// server closes or an exchange fails.
async fn guess(index: usize, shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let deadline = shared.start + shared.args.duration;
    let mix = &shared.args.mix;
    let mut stream: Option<TcpStream> = None;
    let mut n = index as u64;
    while Instant::now() < deadline {
        let mut conn = match stream.take() {
            Some(conn) => conn,
            None => match connect(&shared).await {
                Ok(conn) => conn,
                Err(e) => {
                    tally.errors.add(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let kind = mix[(n as usize) % mix.len()];
        let token = format!("{:09}", rand::rng().random_range(0..1_000_000_000u32));
        let request = guess_request(&shared, kind, &token, n);
        n += shared.args.connections as u64;
        let exchange = async {
            conn.write_all(request.as_bytes()).await.context("send")?;
            http1::read_response(&mut conn).await.context("answer")
        };
        let response = match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                tally.errors.add(e);
                tally.reconnects += 1;
                continue;
            }
            Err(_) => {
                tally.errors.add("exchange timed out");
                tally.reconnects += 1;
                continue;
            }
        };
        record(&mut tally, &shared, kind, token, &response);
        if response.keep_alive {
            stream = Some(conn);
        } else {
            tally.reconnects += 1;
        }
    }
    tally
}

fn record(tally: &mut Tally, shared: &Shared, kind: Kind, token: String, r: &http1::Response) {
    *tally
        .by_kind
        .entry(kind.name())
        .or_default()
        .entry(r.status)
        .or_default() += 1;
    shared.guesses.fetch_add(1, Ordering::Relaxed);
    if kind.is_hit(r.status) {
        tally.hits += 1;
        if tally.found.len() < MAX_FOUND_LISTED {
            tally.found.push(Found {
                kind: kind.name(),
                token,
                status: r.status,
            });
        }
    }
    if r.status == 429 {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        if tally.first_429.is_none() {
            let at = shared.start.elapsed().as_secs_f64();
            tally.first_429 = Some((at, r.retry_after.clone()));
        }
        if let Some(secs) = r.retry_after.as_deref().and_then(|v| v.parse::<u64>().ok()) {
            let (lo, hi) = tally.retry_after_range.unwrap_or((secs, secs));
            tally.retry_after_range = Some((lo.min(secs), hi.max(secs)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_what_tells_a_token_exists() {
        for status in [200, 410] {
            assert!(Kind::Get.is_hit(status));
        }
        for status in [404, 429, 403, 401, 503] {
            assert!(!Kind::Get.is_hit(status), "{status}");
        }
        for status in [200, 409, 410, 403, 400, 503] {
            assert!(Kind::Join.is_hit(status), "{status}");
        }
        for status in [404, 401, 429] {
            assert!(!Kind::Join.is_hit(status));
        }
    }
}
