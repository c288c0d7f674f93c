//! Who may join, and how often anyone may miss.
//!
//! The rules, whichever transport (REST or CometD) a request came on:
//!
//! | role           | needs                                                        |
//! |----------------|--------------------------------------------------------------|
//! | 1 customer     | the session's `customerKey` (only its creator was told it); one per session |
//! | 2 agent        | a valid agent credential that allows this session and role 2 |
//! | 3 controller   | a valid agent credential that allows this session and role 3 |
//!
//! and every operation that could tell whether a token exists (Get Session,
//! Join, Stop and Exit by user token) first checks the caller's *probe
//! budget*; a miss (unknown or ended token, bad credential or key) spends
//! from it. A caller with a valid agent credential is budgeted as that agent
//! (`sub`), anyone else by address. Creates spend from a *create budget*.
//!
//! The HTTP and Bayeux layers only build a [`Caller`] (address and presented
//! credential) and translate the answers.

use std::net::IpAddr;
use std::sync::Arc;

use access::{AgentClaims, AuthError, Budget, Budgets, ClientKey, RetryAfter, Verifier};

/// How agent credentials are checked.
#[derive(Debug, Clone)]
pub enum AgentAuth {
    /// Credentials are verified with these keys.
    Required(Arc<Verifier>),
    /// No key configured: agent and controller joins are refused.
    Unconfigured,
    /// `--agent-auth none`: anyone may join as agent or controller.
    Disabled,
}

/// The access settings of a node.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub agent_auth: AgentAuth,
    /// Misses a caller may make per window.
    pub probe_budget: Budget,
    /// Sessions a caller may create per window.
    pub create_budget: Budget,
    /// Callers each budget remembers at most.
    pub limiter_capacity: u64,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            agent_auth: AgentAuth::Unconfigured,
            probe_budget: DEFAULT_PROBE_BUDGET,
            create_budget: DEFAULT_CREATE_BUDGET,
            limiter_capacity: DEFAULT_LIMITER_CAPACITY,
        }
    }
}

pub const DEFAULT_PROBE_BUDGET: Budget = Budget {
    limit: 20,
    window: std::time::Duration::from_secs(600),
};
pub const DEFAULT_CREATE_BUDGET: Budget = Budget {
    limit: 60,
    window: std::time::Duration::from_secs(60),
};
pub const DEFAULT_LIMITER_CAPACITY: u64 = 1_000_000;

/// Failed joins (credential or customer key) against one live session after
/// which it is reported as being guessed at.
pub const PROBE_ALERT_THRESHOLD: u32 = 10;

/// A credential as presented; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(raw: impl Into<String>) -> Self {
        Credential(raw.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

/// The agent side of a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCredential {
    Absent,
    Invalid,
    Valid(AgentClaims),
}

/// Who is asking: an address, and the agent credential presented, verified.
#[derive(Debug, Clone)]
pub struct Caller {
    addr: ClientKey,
    agent: AgentCredential,
    /// A trusted proxy asking on its own behalf (an owner lookup): not
    /// budgeted, since the proxy budgets the client it asks for.
    infrastructure: bool,
}

impl Caller {
    /// The same caller, as a trusted proxy's own request (see
    /// [`crate::api::caller`]).
    pub fn as_infrastructure(self) -> Caller {
        Caller {
            infrastructure: true,
            ..self
        }
    }

    pub fn is_infrastructure(&self) -> bool {
        self.infrastructure
    }

    /// The key this caller's budgets are kept under.
    pub fn budget_key(&self) -> ClientKey {
        match &self.agent {
            AgentCredential::Valid(claims) => ClientKey::agent(&claims.sub),
            _ => self.addr.clone(),
        }
    }

    /// The caller's address key (for per-address caps).
    pub fn addr_key(&self) -> &ClientKey {
        &self.addr
    }

    pub fn agent(&self) -> &AgentCredential {
        &self.agent
    }
}

/// The access state of a node: the verifier and the two budgets.
#[derive(Debug)]
pub struct Access {
    agent_auth: AgentAuth,
    pub(super) probes: Budgets,
    pub(super) creates: Budgets,
}

impl Access {
    pub fn new(config: &AccessConfig) -> Self {
        Self {
            agent_auth: config.agent_auth.clone(),
            probes: Budgets::new(config.probe_budget, config.limiter_capacity),
            creates: Budgets::new(config.create_budget, config.limiter_capacity),
        }
    }

    /// Builds the caller of a request from its address and the credential
    /// it presented (verified here, once).
    pub fn caller(&self, ip: IpAddr, credential: Option<&Credential>) -> Caller {
        let agent = match (&self.agent_auth, credential) {
            (_, None) => AgentCredential::Absent,
            (AgentAuth::Required(verifier), Some(raw)) => {
                match verifier.verify(Some(raw.expose())) {
                    Ok(claims) => AgentCredential::Valid(claims),
                    Err(AuthError::Missing) => AgentCredential::Absent,
                    Err(AuthError::Invalid) => AgentCredential::Invalid,
                }
            }
            // Nothing to verify against: the credential counts for nothing.
            (AgentAuth::Unconfigured | AgentAuth::Disabled, Some(_)) => AgentCredential::Absent,
        };
        Caller {
            addr: ClientKey::addr(ip),
            agent,
            infrastructure: false,
        }
    }

    /// May `caller` join `session` as an agent-side `role` (2 or 3)?
    /// Returns the agent id shown to the others.
    pub(super) fn agent_join(
        &self,
        caller: &Caller,
        session: &str,
        role: u8,
    ) -> Result<Option<String>, super::SessionError> {
        use super::SessionError;
        match (&self.agent_auth, &caller.agent) {
            (AgentAuth::Disabled, _) => Ok(None),
            (AgentAuth::Unconfigured, _) => Err(SessionError::AgentAuthUnconfigured),
            (AgentAuth::Required(_), AgentCredential::Absent) => {
                Err(SessionError::AgentAuthRequired)
            }
            (AgentAuth::Required(_), AgentCredential::Invalid) => {
                Err(SessionError::AgentAuthInvalid)
            }
            (AgentAuth::Required(_), AgentCredential::Valid(claims)) => {
                if claims.allows(session, role) {
                    Ok(Some(claims.sub.clone()))
                } else {
                    Err(SessionError::AgentAuthInvalid)
                }
            }
        }
    }

    /// Refuses a caller whose probe budget is spent.
    pub(super) fn check_probes(&self, key: &ClientKey) -> Result<(), RetryAfter> {
        self.probes.check(key)
    }

    /// Spends a miss; logs the moment a caller's budget runs out.
    pub(super) fn miss(&self, key: &ClientKey) {
        if self.probes.spend(key).is_err() {
            metrics::counter!("node_budget_exhausted_total", "budget" => "probe").increment(1);
            tracing::info!(client = %key, budget = %self.probes.budget(), "probe budget spent: further token lookups refused for a while");
        }
    }

    pub(super) fn take_create(&self, key: &ClientKey) -> Result<(), RetryAfter> {
        self.creates.take(key)
    }

    /// Keys held by the probe and create budgets.
    pub fn limiter_keys(&self) -> (u64, u64) {
        (self.probes.len(), self.creates.len())
    }
}

/// Compares secrets in time independent of where they differ.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
