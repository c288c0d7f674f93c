//! `access-cost`: what the access checks of issue 8 cost.
//!
//! - `access-cost verify`: µs per `access::Verifier::verify` of a valid agent
//!   credential, HS256 (a shared secret), EdDSA (Ed25519) and RS256
//!   (RSA-2048); the public keys are made with `openssl` for the run (an
//!   embedded Ed25519 test key, and no RS256 row, if openssl is missing).
//!   Median of `--batches` batches of `--batch` calls.
//! - `access-cost limiter`: RSS of the process (`VmRSS` in
//!   `/proc/self/status`) before and after one miss is spent for each of
//!   `--addresses` distinct IPv4 addresses in `access::Budgets` holding at
//!   most `--capacity` keys; checkpoints on the way show the bound.
//! - `access-cost join`: µs per REST Join Session as agent on a real node,
//!   with a bearer credential (`--url`, `--agent-token`) and, interleaved,
//!   on a node that checks none (`--baseline-url`, started with
//!   `--agent-auth none`): the difference is what verification adds.
//!
//! Each prints one JSON line on stdout, progress on stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loadgen::run;

mod join;
mod limiter;
mod verify;

#[derive(Debug, Parser)]
#[command(
    name = "access-cost",
    about = "What the access checks cost: credential verification, the limiter's memory, a join with and without a credential"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// µs per credential verification, per algorithm.
    Verify(verify::Args),
    /// RSS of the probe budget holding many distinct addresses.
    Limiter(limiter::Args),
    /// µs per Join Session on real nodes, with and without a credential.
    Join(join::Args),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = run::runtime(1).and_then(|rt| {
        rt.block_on(async move {
            match args.command {
                Command::Verify(a) => verify::run(a),
                Command::Limiter(a) => limiter::run(a),
                Command::Join(a) => join::run(a).await,
            }
        })
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("access-cost: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The median of `values` (sorted here).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `x` rounded to `digits` decimals (for the JSON line).
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
