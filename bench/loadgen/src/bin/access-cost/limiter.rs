//! `access-cost limiter`: the probe budget's memory under many addresses.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use access::{Budget, Budgets, ClientKey};
use loadgen::{Context, Result};
use serde::Serialize;

use super::round;

/// The first address spent for (11.0.0.0; 16 million follow it).
const FIRST_ADDRESS: u32 = 0x0b00_0000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keys the budget holds at most (the node's `--limiter-capacity`).
    #[arg(long, default_value_t = 1_000_000)]
    capacity: u64,
    /// Distinct IPv4 addresses that each spend one miss.
    #[arg(long, default_value_t = 1_000_000)]
    addresses: u32,
    /// The budget (the node's `--probe-budget`).
    #[arg(long, default_value = "20/10m")]
    budget: Budget,
    /// Points on the way where keys held and RSS are read.
    #[arg(long, default_value_t = 10)]
    checkpoints: u32,
}

#[derive(Debug, Serialize)]
struct Checkpoint {
    addresses: u32,
    keys_held: u64,
    rss_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    budget: String,
    capacity: u64,
    addresses: u32,
    seconds: f64,
    rss_before: u64,
    rss_after: u64,
    hwm_after: u64,
    keys_held: u64,
    max_keys_held: u64,
    /// (RSS after − before) ÷ keys held.
    bytes_per_key: f64,
    /// RSS growth over the second half of the addresses (flat once the
    /// capacity is reached).
    rss_growth_second_half: i64,
    /// Misses a new address could make, after all the others, before it
    /// was refused (the budget's limit, if the bound does not cost the
    /// newest keys their budget); `null`: not refused within 10 × limit.
    new_address_refused_after: Option<u32>,
    checkpoints: Vec<Checkpoint>,
}

pub fn run(args: Args) -> Result<()> {
    if args.budget.is_off() || args.addresses == 0 || args.checkpoints == 0 {
        return Err(
            "need a budget that is not off, and at least one address and checkpoint".into(),
        );
    }
    let budgets = Budgets::new(args.budget, args.capacity);
    let rss_before = status_bytes("VmRSS")?;
    let every = (args.addresses / args.checkpoints).max(1);
    let mut checkpoints = Vec::new();
    let started = Instant::now();
    for i in 0..args.addresses {
        let key = ClientKey::addr(IpAddr::V4(Ipv4Addr::from(FIRST_ADDRESS + i)));
        // The first miss of an address never spends a budget of 2 or more.
        let _ = budgets.spend(&key);
        let done = i + 1;
        if done % every == 0 || done == args.addresses {
            let point = Checkpoint {
                addresses: done,
                keys_held: budgets.len(),
                rss_bytes: status_bytes("VmRSS")?,
            };
            eprintln!(
                "access-cost: {done} addresses: {} keys held, RSS {:.1} MiB",
                point.keys_held,
                point.rss_bytes as f64 / 1048576.0
            );
            checkpoints.push(point);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_after = status_bytes("VmRSS")?;
    let keys_held = budgets.len();
    let half = checkpoints
        .iter()
        .find(|c| c.addresses >= args.addresses / 2)
        .map_or(rss_before, |c| c.rss_bytes);
    let newcomer = ClientKey::addr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let tries = args.budget.limit.saturating_mul(10);
    let new_address_refused_after = (1..=tries).find(|_| budgets.spend(&newcomer).is_err());
    loadgen::run::print_json_line(&Report {
        budget: args.budget.to_string(),
        capacity: args.capacity,
        addresses: args.addresses,
        seconds: round(seconds, 2),
        rss_before,
        rss_after,
        hwm_after: status_bytes("VmHWM")?,
        keys_held,
        max_keys_held: checkpoints.iter().map(|c| c.keys_held).max().unwrap_or(0),
        bytes_per_key: round(
            rss_after.saturating_sub(rss_before) as f64 / keys_held.max(1) as f64,
            1,
        ),
        rss_growth_second_half: rss_after as i64 - half as i64,
        new_address_refused_after,
        checkpoints,
    })
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(key: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no {key} in /proc/self/status").into())
}
