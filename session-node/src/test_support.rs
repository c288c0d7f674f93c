//! Shared by the unit tests: an agent key, credentials signed with it, and
//! an access policy that requires them.

use std::sync::Arc;
use std::time::Duration;

use access::agent::{mint, MintRequest};
use access::{AgentKeys, Budget, Verifier};

use crate::sessions::access::{AccessConfig, AgentAuth, Credential};

pub const SECRET: &[u8] = b"test-secret-test-secret-test-sec";

/// Agent credentials required, verified against [`SECRET`]; budgets as
/// given.
pub fn access_with(probe_budget: Budget, create_budget: Budget) -> AccessConfig {
    AccessConfig {
        agent_auth: AgentAuth::Required(Arc::new(Verifier::new(
            AgentKeys::shared_secret(SECRET).unwrap(),
            Duration::from_secs(3600),
        ))),
        probe_budget,
        create_budget,
        ..AccessConfig::default()
    }
}

/// Agent credentials required; no budgets in the way of tests about other
/// rules.
pub fn access_config() -> AccessConfig {
    access_with(Budget::OFF, Budget::OFF)
}

/// A credential for `sub`, optionally bound to one session and roles.
pub fn agent_jwt(sub: &str, session: Option<&str>, roles: Option<Vec<u8>>) -> String {
    mint(
        SECRET,
        &MintRequest {
            sub,
            ttl: Duration::from_secs(600),
            session_token: session,
            roles,
        },
    )
    .unwrap()
}

pub fn agent_credential(sub: &str, session: Option<&str>, roles: Option<Vec<u8>>) -> Credential {
    Credential::new(agent_jwt(sub, session, roles))
}
