//! `access-cost verify`: µs per `Verifier::verify`, per algorithm.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use access::agent::{mint, MintRequest, AUDIENCE};
use access::{AgentKeys, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use loadgen::{Context, Result};
use serde::Serialize;

use super::{median, round};

/// Fallback Ed25519 key pair when openssl is missing (the one of
/// `access/src/agent.rs`'s tests, made with `openssl genpkey -algorithm ed25519`).
const TEST_ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDxxLJdjbcw+/YqjDKje0o9Qq5sKrvmFK+PoO3pkoNLS\n-----END PRIVATE KEY-----\n";
const TEST_ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA4tqyRvoGb6RllhZvwgGKXTj/mBNYfxcWSKT1ZipVCr0=\n-----END PUBLIC KEY-----\n";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Verifications per batch.
    #[arg(long, default_value_t = 20_000)]
    batch: u32,
    /// Batches per algorithm (the median is reported).
    #[arg(long, default_value_t = 5)]
    batches: usize,
    /// The openssl binary that makes the Ed25519 and RSA-2048 keys.
    #[arg(long, default_value = "openssl")]
    openssl: String,
}

#[derive(Debug, Serialize)]
struct Row {
    algorithm: &'static str,
    /// How the key was made.
    key: String,
    token_bytes: usize,
    batch: u32,
    /// µs per verification of a credential seen for the first time (the
    /// signature check: `Verifier::verify_signature`), median over the
    /// batches, and the range.
    median_us: f64,
    min_us: f64,
    max_us: f64,
    /// µs per verification of a credential verified before (`verify`, which
    /// remembers credentials that verified), median over the batches.
    repeat_us: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    batches: usize,
    verify: Vec<Row>,
    /// A forged HS256 credential (right shape, wrong signature): what a
    /// guesser costs a node per attempt.
    hs256_bad_signature_us: f64,
    skipped: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    if args.batch == 0 || args.batches == 0 {
        return Err("--batch and --batches must be at least 1".into());
    }
    let max_age = Duration::from_secs(12 * 3600);
    let mut rows = Vec::new();
    let mut skipped = Vec::new();

    let secret: String = (0..64)
        .map(|_| char::from(b"0123456789abcdef"[rand::random_range(0..16usize)]))
        .collect();
    let request = MintRequest {
        sub: "bench-agent",
        ttl: Duration::from_secs(3600),
        session_token: None,
        roles: None,
    };
    let token = mint(secret.as_bytes(), &request)?;
    let hs = Verifier::new(AgentKeys::shared_secret(secret.as_bytes())?, max_age);
    rows.push(measure(&args, "HS256", "64 hex digits", &hs, &token)?);
    // The signature's first character changed: it decodes, and the MAC differs.
    let at = token
        .rfind('.')
        .ok_or("a minted credential without a signature")?
        + 1;
    let swap = if token[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let forged = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
    let hs256_bad_signature_us = per_call_us(&args, &hs, &forged, false)?;

    let dir = std::env::temp_dir().join(format!("access-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context(format_args!("creating {}", dir.display()))?;
    let outcome = (|| -> Result<()> {
        let (ed_private, ed_public, how) =
            match openssl_pair(&args.openssl, &dir, "ed25519", &["-algorithm", "ed25519"]) {
                Ok((private, public)) => (
                    private,
                    public,
                    "openssl genpkey -algorithm ed25519".to_owned(),
                ),
                Err(e) => {
                    skipped.push(format!(
                        "openssl for Ed25519 ({e}): the embedded test key was used"
                    ));
                    (
                        TEST_ED25519_PRIVATE.to_owned(),
                        TEST_ED25519_PUBLIC.to_owned(),
                        "embedded test key".to_owned(),
                    )
                }
            };
        let key = EncodingKey::from_ed_pem(ed_private.as_bytes()).context("Ed25519 private key")?;
        let (verifier, token) = pair(Algorithm::EdDSA, &key, &ed_public, max_age)?;
        rows.push(measure(&args, "EdDSA (Ed25519)", &how, &verifier, &token)?);

        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        match openssl_pair(&args.openssl, &dir, "rsa", &rsa) {
            Ok((private, public)) => {
                let key =
                    EncodingKey::from_rsa_pem(private.as_bytes()).context("RSA private key")?;
                let (verifier, token) = pair(Algorithm::RS256, &key, &public, max_age)?;
                let how = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048";
                rows.push(measure(&args, "RS256 (RSA-2048)", how, &verifier, &token)?);
            }
            Err(e) => skipped.push(format!("RS256: no RSA key ({e})")),
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    loadgen::run::print_json_line(&Report {
        batches: args.batches,
        verify: rows,
        hs256_bad_signature_us: round(hs256_bad_signature_us, 3),
        skipped,
    })
}

/// A verifier of `public` (PEM) and a credential signed with `key`.
fn pair(
    algorithm: Algorithm,
    key: &EncodingKey,
    public: &str,
    max_age: Duration,
) -> Result<(Verifier, String)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims =
        serde_json::json!({"sub": "bench-agent", "iat": now, "exp": now + 3600, "aud": AUDIENCE});
    let token = jsonwebtoken::encode(&Header::new(algorithm), &claims, key).context("signing")?;
    Ok((
        Verifier::new(AgentKeys::public_keys(public)?, max_age),
        token,
    ))
}

/// A private key made by `openssl genpkey` and its public key (PEM).
fn openssl_pair(
    openssl: &str,
    dir: &Path,
    name: &str,
    genpkey: &[&str],
) -> Result<(String, String)> {
    let private: PathBuf = dir.join(format!("{name}.pem"));
    let public: PathBuf = dir.join(format!("{name}.pub.pem"));
    let mut gen = vec!["genpkey"];
    gen.extend_from_slice(genpkey);
    let private_arg = private.to_string_lossy().into_owned();
    let public_arg = public.to_string_lossy().into_owned();
    gen.extend_from_slice(&["-out", &private_arg]);
    let pubout = ["pkey", "-in", &private_arg, "-pubout", "-out", &public_arg];
    for argv in [gen.as_slice(), pubout.as_slice()] {
        let out = Command::new(openssl).args(argv).output().context(openssl)?;
        if !out.status.success() {
            return Err(format!(
                "{openssl} {}: {}",
                argv[0],
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
    }
    Ok((
        std::fs::read_to_string(&private)?,
        std::fs::read_to_string(&public)?,
    ))
}

fn measure(
    args: &Args,
    algorithm: &'static str,
    key: &str,
    verifier: &Verifier,
    token: &str,
) -> Result<Row> {
    per_call_us(args, verifier, token, true)?; // warm-up, and the check that it verifies
    let mut batches = Vec::with_capacity(args.batches);
    let mut repeats = Vec::with_capacity(args.batches);
    for _ in 0..args.batches {
        batches.push(signature_us(args, verifier, token)?);
        repeats.push(per_call_us(args, verifier, token, true)?);
    }
    let median_us = median(&mut batches);
    let repeat_us = median(&mut repeats);
    eprintln!(
        "access-cost: {algorithm}: {median_us:.2} µs per verification ({} batches of {})",
        args.batches, args.batch
    );
    Ok(Row {
        algorithm,
        key: key.to_owned(),
        token_bytes: token.len(),
        batch: args.batch,
        median_us: round(median_us, 3),
        min_us: round(batches[0], 3),
        max_us: round(batches[batches.len() - 1], 3),
        repeat_us: round(repeat_us, 3),
    })
}

/// µs per full signature check (no cache) over one batch.
fn signature_us(args: &Args, verifier: &Verifier, token: &str) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..args.batch {
        if black_box(verifier.verify_signature(black_box(token))).is_err() {
            return Err("a credential was refused unexpectedly".into());
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(args.batch))
}

/// µs per call over one batch; fails if a call's outcome is not `valid`.
fn per_call_us(args: &Args, verifier: &Verifier, token: &str, valid: bool) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..args.batch {
        let outcome = verifier.verify(black_box(Some(token)));
        if black_box(outcome).is_ok() != valid {
            return Err(format!(
                "a credential {} unexpectedly",
                if valid { "was refused" } else { "verified" }
            )
            .into());
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(args.batch))
}
