//! Agent credentials.
//!
//! An agent or controller joins a session with a JWT signed by the contact
//! centre (or by `session-node agent-token` in development):
//!
//! | claim          | meaning                                                       |
//! |----------------|---------------------------------------------------------------|
//! | `sub`          | the agent's id: shown to the other parties and in logs        |
//! | `exp`          | required; at most `max_age` ahead (and after `iat`, if given) |
//! | `aud`          | must be `cobrowse`                                            |
//! | `sessionToken` | optional: the credential is good for this one session only    |
//! | `roles`        | optional: the roles it may join with (`[2]`, `[3]`, `[2,3]`)  |
//!
//! Keys: HS256 with one shared secret (a file of at least 32 bytes), or
//! public keys (a PEM file with one or more Ed25519 or RSA public keys, for
//! rotation: a token verifies if any key accepts it). Errors say only
//! "missing" or "invalid": the reason goes to the debug log, the token itself
//! never goes anywhere.
//!
//! An agent presents the same credential for hours, on every join and (at
//! the proxy) on every token lookup, and a signature check costs 1.5 µs
//! (HS256) to 36 µs (Ed25519) or 55 µs (RSA-2048) here (`bench/RESULTS.md`).
//! So a credential that verified is remembered, by its exact text, until it
//! expires ([`VERIFIED_CACHE_ENTRIES`] at most); failures are not.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `aud` every agent credential must carry.
pub const AUDIENCE: &str = "cobrowse";
/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the
/// hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest accepted `sub`, in characters (it is shown to other parties).
pub const MAX_SUB_CHARS: usize = 256;
/// Longest credential looked at, in bytes; longer ones are invalid unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 5;
/// Verified credentials remembered at most.
pub const VERIFIED_CACHE_ENTRIES: u64 = 10_000;
/// A remembered credential is checked again after this at the latest.
const VERIFIED_CACHE_TTL: Duration = Duration::from_secs(3600);

/// What a verified credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentClaims {
    pub sub: String,
    /// Expiry, UTC seconds.
    pub exp: u64,
    pub session_token: Option<String>,
    /// Roles the credential may join with; `None` means agent and controller.
    pub roles: Option<Vec<u8>>,
}

impl AgentClaims {
    /// Whether the credential allows joining `session` with `role`.
    pub fn allows(&self, session: &str, role: u8) -> bool {
        self.session_token.as_deref().is_none_or(|s| s == session)
            && self.roles.as_ref().is_none_or(|r| r.contains(&role))
    }
}

/// Why a credential was refused. Deliberately no more detail than this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credential was presented.
    Missing,
    /// A credential was presented and is not good (signature, expiry,
    /// audience, lifetime, shape).
    Invalid,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireClaims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    aud: String,
    #[serde(
        rename = "sessionToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    session_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<u8>>,
}

/// The keys credentials are checked against.
pub struct AgentKeys {
    keys: Vec<(Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for AgentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("AgentKeys")
            .field(
                "algorithms",
                &self.keys.iter().map(|k| k.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AgentKeys {
    /// A shared HS256 secret.
    pub fn shared_secret(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the agent key is {} bytes; at least {MIN_SECRET_BYTES} are needed",
                secret.len()
            ));
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| format!("agent key: {e}"))?;
        Ok(Self {
            keys: vec![(Algorithm::HS256, key)],
        })
    }

    /// Public keys from PEM text: each `PUBLIC KEY` block is an Ed25519
    /// (EdDSA) or RSA (RS256) key.
    pub fn public_keys(pem: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for block in pem_blocks(pem) {
            let bytes = block.as_bytes();
            if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
                keys.push((Algorithm::EdDSA, key));
            } else if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
                keys.push((Algorithm::RS256, key));
            } else {
                return Err("a PEM block is neither an Ed25519 nor an RSA public key".into());
            }
        }
        if keys.is_empty() {
            return Err("no PEM public key found".into());
        }
        Ok(Self { keys })
    }

    /// Reads the keys a binary was configured with: `--agent-key-file`
    /// (HS256 secret, surrounding whitespace ignored) or
    /// `--agent-public-keys` (PEM), not both.
    pub fn load(
        key_file: Option<&Path>,
        public_keys: Option<&Path>,
    ) -> Result<Option<Self>, String> {
        match (key_file, public_keys) {
            (Some(_), Some(_)) => {
                Err("give --agent-key-file or --agent-public-keys, not both".into())
            }
            (Some(path), None) => {
                let raw = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Self::shared_secret(raw.trim_ascii())
                    .map(Some)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Self::public_keys(&pem)
                    .map(Some)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            (None, None) => Ok(None),
        }
    }
}

fn pem_blocks(pem: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            current = Some(format!("{line}\n"));
        } else if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    blocks
}

/// Checks agent credentials.
pub struct Verifier {
    keys: AgentKeys,
    max_age: Duration,
    /// Credentials that verified, by their text, with their claims.
    verified: moka::sync::Cache<String, AgentClaims>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cache holds credentials: never print it.
        f.debug_struct("Verifier")
            .field("keys", &self.keys)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(keys: AgentKeys, max_age: Duration) -> Self {
        Self {
            keys,
            max_age,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CACHE_ENTRIES)
                .time_to_live(VERIFIED_CACHE_TTL.min(max_age))
                .build(),
        }
    }

    /// Verifies a presented credential (`None`: none was presented).
    pub fn verify(&self, token: Option<&str>) -> Result<AgentClaims, AuthError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(AuthError::Missing);
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid);
        }
        if let Some(claims) = self.verified.get(token) {
            if claims.exp + LEEWAY_SECS > unix_now() {
                return Ok(claims);
            }
            self.verified.invalidate(token);
            return Err(AuthError::Invalid);
        }
        let claims = self.verify_signature(token)?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// The full check, without the cache: what a credential costs the first
    /// time it is seen (benchmarks measure it).
    pub fn verify_signature(&self, token: &str) -> Result<AgentClaims, AuthError> {
        let mut last = None;
        for (algorithm, key) in &self.keys.keys {
            let mut validation = Validation::new(*algorithm);
            validation.set_audience(&[AUDIENCE]);
            validation.set_required_spec_claims(&["exp", "sub", "aud"]);
            validation.leeway = LEEWAY_SECS;
            match jsonwebtoken::decode::<WireClaims>(token, key, &validation) {
                Ok(data) => return self.check_claims(data.claims),
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            tracing::debug!(reason = %e, "agent credential refused");
        }
        Err(AuthError::Invalid)
    }

    fn check_claims(&self, claims: WireClaims) -> Result<AgentClaims, AuthError> {
        let max_age = self.max_age.as_secs() + LEEWAY_SECS;
        let now = unix_now();
        let too_long = claims.exp.saturating_sub(now) > max_age
            || claims
                .iat
                .is_some_and(|iat| claims.exp.saturating_sub(iat) > max_age);
        let bad_sub = claims.sub.trim().is_empty() || claims.sub.chars().count() > MAX_SUB_CHARS;
        let bad_roles = claims
            .roles
            .as_ref()
            .is_some_and(|r| r.is_empty() || r.iter().any(|role| !(2..=3).contains(role)));
        if too_long || bad_sub || bad_roles {
            tracing::debug!(too_long, bad_sub, bad_roles, "agent credential refused");
            return Err(AuthError::Invalid);
        }
        Ok(AgentClaims {
            sub: claims.sub,
            exp: claims.exp,
            session_token: claims.session_token,
            roles: claims.roles,
        })
    }
}

/// What `session-node agent-token` puts in a credential.
#[derive(Debug, Clone)]
pub struct MintRequest<'a> {
    pub sub: &'a str,
    pub ttl: Duration,
    pub session_token: Option<&'a str>,
    pub roles: Option<Vec<u8>>,
}

/// Signs an HS256 agent credential with `secret`.
pub fn mint(secret: &[u8], request: &MintRequest<'_>) -> Result<String, String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the agent key needs at least {MIN_SECRET_BYTES} bytes"
        ));
    }
    let now = unix_now();
    let claims = WireClaims {
        sub: request.sub.to_owned(),
        iat: Some(now),
        exp: now + request.ttl.as_secs(),
        aud: AUDIENCE.to_owned(),
        session_token: request.session_token.map(str::to_owned),
        roles: request.roles.clone(),
    };
    let key = EncodingKey::from_secret(secret).map_err(|e| format!("agent key: {e}"))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| format!("cannot sign: {e}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn verifier() -> Verifier {
        Verifier::new(
            AgentKeys::shared_secret(SECRET).unwrap(),
            Duration::from_secs(12 * 3600),
        )
    }

    fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn minted_tokens_verify_with_their_claims() {
        let token = mint(
            SECRET,
            &MintRequest {
                sub: "ann",
                ttl: Duration::from_secs(3600),
                session_token: Some("012345678"),
                roles: Some(vec![2]),
            },
        )
        .unwrap();
        let claims = verifier().verify(Some(&token)).unwrap();
        assert_eq!(claims.sub, "ann");
        assert!(claims.allows("012345678", 2));
        assert!(!claims.allows("012345678", 3), "roles limit");
        assert!(!claims.allows("999999999", 2), "bound to one session");
    }

    #[test]
    fn bad_credentials_are_refused_without_detail() {
        let now = unix_now();
        let ok = serde_json::json!({"sub": "ann", "exp": now + 60, "aud": AUDIENCE});
        let cases: Vec<(&str, Option<String>, AuthError)> = vec![
            ("absent", None, AuthError::Missing),
            ("empty", Some(" ".into()), AuthError::Missing),
            ("garbage", Some("not.a.jwt".into()), AuthError::Invalid),
            (
                "other key",
                Some(sign(ok.clone(), b"another-secret-another-secret-xx")),
                AuthError::Invalid,
            ),
            (
                "expired",
                Some(sign(
                    serde_json::json!({"sub": "a", "exp": now - 60, "aud": AUDIENCE}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "no exp",
                Some(sign(
                    serde_json::json!({"sub": "a", "aud": AUDIENCE}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "wrong aud",
                Some(sign(
                    serde_json::json!({"sub": "a", "exp": now + 60, "aud": "x"}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "no aud",
                Some(sign(
                    serde_json::json!({"sub": "a", "exp": now + 60}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "valid too long",
                Some(sign(
                    serde_json::json!({"sub": "a", "exp": now + 13 * 3600, "aud": AUDIENCE}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "iat to exp too long",
                Some(sign(
                    serde_json::json!({"sub": "a", "iat": now - 20 * 3600, "exp": now + 60, "aud": AUDIENCE}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "empty sub",
                Some(sign(
                    serde_json::json!({"sub": "", "exp": now + 60, "aud": AUDIENCE}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "customer role",
                Some(sign(
                    serde_json::json!({"sub": "a", "exp": now + 60, "aud": AUDIENCE, "roles": [1]}),
                    SECRET,
                )),
                AuthError::Invalid,
            ),
            (
                "alg none",
                Some(format!(
                    "{}.{}.",
                    b64("{\"alg\":\"none\"}"),
                    b64(&ok.to_string())
                )),
                AuthError::Invalid,
            ),
        ];
        let v = verifier();
        for (name, token, want) in cases {
            assert_eq!(v.verify(token.as_deref()), Err(want), "{name}");
        }
        assert!(v.verify(Some(&sign(ok, SECRET))).is_ok());
    }

    fn b64(s: &str) -> String {
        // URL-safe base64 without padding, enough for a forged header.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn a_remembered_credential_still_expires() {
        let v = verifier();
        let now = unix_now();
        // Valid for 6 s with the 5 s leeway: cached, then expired.
        let token = sign(
            serde_json::json!({"sub": "ann", "exp": now + 1, "aud": AUDIENCE}),
            SECRET,
        );
        assert!(v.verify(Some(&token)).is_ok());
        assert!(v.verify(Some(&token)).is_ok(), "from the cache");
        let stale = AgentClaims {
            exp: now - LEEWAY_SECS,
            ..v.verified.get(&token).unwrap()
        };
        v.verified.insert(token.clone(), stale);
        assert_eq!(v.verify(Some(&token)), Err(AuthError::Invalid));
        assert!(v.verified.get(&token).is_none());
    }

    #[test]
    fn short_secrets_and_bad_pem_are_refused() {
        assert!(AgentKeys::shared_secret(b"short").is_err());
        assert!(AgentKeys::public_keys("").is_err());
        assert!(AgentKeys::public_keys(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
    }

    #[test]
    fn ed25519_public_keys_verify_and_rotate() {
        // Test keys made with `openssl genpkey -algorithm ed25519`.
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDxxLJdjbcw+/YqjDKje0o9Qq5sKrvmFK+PoO3pkoNLS\n-----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA4tqyRvoGb6RllhZvwgGKXTj/mBNYfxcWSKT1ZipVCr0=\n-----END PUBLIC KEY-----\n";
        let other = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA38mCLtNkq9GoeNtSVjVZRHiB8WVDI7t58APhNY/ZQ/U=\n-----END PUBLIC KEY-----\n";
        let claims = serde_json::json!({"sub": "bob", "exp": unix_now() + 60, "aud": AUDIENCE});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
        )
        .unwrap();
        let only_other = Verifier::new(
            AgentKeys::public_keys(other).unwrap(),
            Duration::from_secs(3600),
        );
        assert_eq!(only_other.verify(Some(&token)), Err(AuthError::Invalid));
        // Rotation: the old and the new key side by side.
        let both = AgentKeys::public_keys(&format!("{other}{public}")).unwrap();
        let v = Verifier::new(both, Duration::from_secs(3600));
        assert_eq!(v.verify(Some(&token)).unwrap().sub, "bob");
        // An HS256 token "signed" with the public key's text must not pass.
        let confused = sign(claims, public.as_bytes());
        assert_eq!(v.verify(Some(&confused)), Err(AuthError::Invalid));
    }
}
