//! `access-cost join`: µs per REST Join Session as agent on real nodes,
//! with a bearer credential and without one.
//!
//! Per round and node: `--joins` sessions are created (not timed), then each
//! is joined once as agent (role 2), one request at a time on one keep-alive
//! connection, timed from writing the request to reading the whole answer.
//! The two nodes take turns (a b, b a, …) so that a disturbance hits both.

use std::time::Instant;

use loadgen::{http1, Context, Result};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{median, round};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node that verifies credentials (`http://host:port`).
    #[arg(long)]
    url: String,
    /// The credential its agents join with (`Authorization: Bearer`).
    #[arg(long, env = "LOADGEN_AGENT_TOKEN", hide_env_values = true)]
    agent_token: Option<String>,
    /// A node started with `--agent-auth none`, joined without a credential.
    #[arg(long)]
    baseline_url: Option<String>,
    /// Context path of the application.
    #[arg(long, default_value = "/cobrowse")]
    context: String,
    /// Joins per node per round.
    #[arg(long, default_value_t = 2000)]
    joins: usize,
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Joins per node before the first round, not recorded.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
}

/// One node and the connection to it.
#[derive(Debug)]
struct Target {
    host: String,
    context: String,
    bearer: Option<String>,
    conn: Option<TcpStream>,
    samples: Vec<f64>,
    round_medians: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Stats {
    url: String,
    credential: bool,
    joins: usize,
    mean_us: f64,
    median_us: f64,
    p90_us: f64,
    p99_us: f64,
    round_medians_us: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    joins_per_round: usize,
    rounds: usize,
    /// A join without a credential on `--url` answered this (401: checked).
    without_credential_status: u16,
    with_credential: Stats,
    without_credential: Option<Stats>,
    /// Median (and mean) of all joins with, minus without.
    added_median_us: Option<f64>,
    added_mean_us: Option<f64>,
    /// Median over rounds of (round median with − round median without).
    added_median_of_rounds_us: Option<f64>,
}

impl Target {
    fn new(url: &str, context: &str, bearer: Option<String>) -> Result<Self> {
        let host = url
            .strip_prefix("http://")
            .ok_or("URLs must be http://host:port")?
            .trim_end_matches('/');
        Ok(Self {
            host: host.to_owned(),
            context: context.trim_end_matches('/').to_owned(),
            bearer,
            conn: None,
            samples: Vec::new(),
            round_medians: Vec::new(),
        })
    }

    /// One request and its answer (reconnecting when needed).
    async fn exchange(&mut self, request: &str) -> Result<(http1::Response, Vec<u8>)> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let conn = TcpStream::connect(&self.host)
                    .await
                    .context(format_args!("connect {}", self.host))?;
                conn.set_nodelay(true)?;
                conn
            }
        };
        conn.write_all(request.as_bytes()).await.context("send")?;
        let (response, body) = http1::read_response_with_body(&mut conn)
            .await
            .context("answer")?;
        if response.keep_alive {
            self.conn = Some(conn);
        }
        Ok((response, body))
    }

    async fn create(&mut self, n: usize) -> Result<Vec<String>> {
        let request = http1::request(
            "POST",
            &format!("{}/rest/live/sessions", self.context),
            &self.host,
            &[],
            "",
        );
        let mut tokens = Vec::with_capacity(n);
        for _ in 0..n {
            let (response, body) = self.exchange(&request).await?;
            let answer: Value = serde_json::from_slice(&body).context("create answer")?;
            match (
                response.status,
                answer.get("sessionToken").and_then(Value::as_str),
            ) {
                (200, Some(token)) => tokens.push(token.to_owned()),
                (status, _) => {
                    return Err(format!("{}: create answered {status} {answer}", self.host).into())
                }
            }
        }
        Ok(tokens)
    }

    fn join_request(&self, token: &str, bearer: Option<&str>) -> String {
        let authorization = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(value) = authorization.as_deref() {
            headers.push(("Authorization", value));
        }
        let path = format!("{}/rest/live/sessions/{token}/users", self.context);
        http1::request(
            "POST",
            &path,
            &self.host,
            &headers,
            r#"{"role":2,"name":"bench"}"#,
        )
    }

    /// Creates `n` sessions and joins each; records the joins' µs if `record`.
    async fn round(&mut self, n: usize, record: bool) -> Result<()> {
        let tokens = self.create(n).await?;
        let mut times = Vec::with_capacity(n);
        for token in &tokens {
            let request = self.join_request(token, self.bearer.as_deref());
            let started = Instant::now();
            let (response, body) = self.exchange(&request).await?;
            let us = started.elapsed().as_secs_f64() * 1e6;
            if response.status != 200 {
                return Err(format!(
                    "{}: join answered {} {}",
                    self.host,
                    response.status,
                    String::from_utf8_lossy(&body)
                )
                .into());
            }
            times.push(us);
        }
        if record {
            self.samples.extend_from_slice(&times);
            self.round_medians.push(median(&mut times));
        }
        Ok(())
    }

    fn stats(mut self) -> Stats {
        let joins = self.samples.len();
        let mean = self.samples.iter().sum::<f64>() / joins.max(1) as f64;
        let median_us = median(&mut self.samples);
        let at = |p: f64| {
            self.samples
                .get(((joins as f64 * p) as usize).min(joins.saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        Stats {
            url: format!("http://{}", self.host),
            credential: self.bearer.is_some(),
            joins,
            mean_us: round(mean, 2),
            median_us: round(median_us, 2),
            p90_us: round(at(0.90), 2),
            p99_us: round(at(0.99), 2),
            round_medians_us: self.round_medians.iter().map(|m| round(*m, 2)).collect(),
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    if args.joins == 0 || args.rounds == 0 {
        return Err("--joins and --rounds must be at least 1".into());
    }
    let mut with = Target::new(&args.url, &args.context, args.agent_token.clone())?;
    let mut without = match &args.baseline_url {
        Some(url) => Some(Target::new(url, &args.context, None)?),
        None => None,
    };
    let probe = with.create(1).await?;
    let request = with.join_request(&probe[0], None);
    let without_credential_status = with.exchange(&request).await?.0.status;
    eprintln!(
        "access-cost: a join without a credential on {} answered {without_credential_status}",
        args.url
    );

    with.round(args.warmup, false).await?;
    if let Some(b) = without.as_mut() {
        b.round(args.warmup, false).await?;
    }
    for r in 0..args.rounds {
        if r % 2 == 1 {
            if let Some(b) = without.as_mut() {
                b.round(args.joins, true).await?;
            }
        }
        with.round(args.joins, true).await?;
        if r % 2 == 0 {
            if let Some(b) = without.as_mut() {
                b.round(args.joins, true).await?;
            }
        }
        eprintln!("access-cost: join round {}/{} done", r + 1, args.rounds);
    }
    let mut round_diffs: Vec<f64> = match &without {
        Some(b) => with
            .round_medians
            .iter()
            .zip(&b.round_medians)
            .map(|(a, b)| a - b)
            .collect(),
        None => Vec::new(),
    };
    let with = with.stats();
    let without = without.map(Target::stats);
    let diff = |f: fn(&Stats) -> f64| without.as_ref().map(|b| round(f(&with) - f(b), 2));
    let report = Report {
        joins_per_round: args.joins,
        rounds: args.rounds,
        without_credential_status,
        added_median_us: diff(|s| s.median_us),
        added_mean_us: diff(|s| s.mean_us),
        added_median_of_rounds_us: (!round_diffs.is_empty())
            .then(|| round(median(&mut round_diffs), 2)),
        with_credential: with,
        without_credential: without,
    };
    loadgen::run::print_json_line(&report)
}
