//! JSON bodies of the live REST resources.

use serde::{Deserialize, Serialize};

/// Answer of Create Session (`POST <context>/rest/live/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionResponse {
    pub session_token: String,
    pub session_server_name: String,
}

/// What a node answers Create Session with: the contract's two fields, and
/// the session's `customerKey` (only the creator learns it, and joining as
/// the customer needs it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSession {
    #[serde(flatten)]
    pub session: CreateSessionResponse,
    pub customer_key: String,
}

/// Answer of Get Session (`GET <context>/rest/live/sessions/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetSessionResponse {
    pub session_token: String,
    pub session_server_name: String,
    /// Present only when the node has a configured public URL (`--server-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_server_url: Option<String>,
}

/// A participant's role in a session.
///
/// On the wire a role is the number the vendor uses: 1 customer, 2 agent,
/// 3 controller. Any other number is rejected when deserialising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Role {
    Customer,
    Agent,
    Controller,
}

impl Role {
    /// Agents and controllers are the agent side; the first of them to join
    /// activates the session.
    pub fn is_agent_side(self) -> bool {
        matches!(self, Role::Agent | Role::Controller)
    }
}

impl TryFrom<u8> for Role {
    type Error = String;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(Role::Customer),
            2 => Ok(Role::Agent),
            3 => Ok(Role::Controller),
            other => Err(format!(
                "role must be 1 (customer), 2 (agent) or 3 (controller), not {other}"
            )),
        }
    }
}

impl From<Role> for u8 {
    fn from(role: Role) -> u8 {
        match role {
            Role::Customer => 1,
            Role::Agent => 2,
            Role::Controller => 3,
        }
    }
}

/// Body of Join Session (`POST <context>/rest/live/sessions/{token}/users`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The session's `customerKey`, needed to join as the customer (role 1).
    #[serde(
        rename = "customerKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub customer_key: Option<String>,
}

// The customer key is a secret: `Debug` leaves it out.
impl std::fmt::Debug for CreatedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSession")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("role", &self.role)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One participant as listed to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub user_id: u32,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For agents and controllers: the `sub` of the credential they joined
    /// with, so the other parties know who is watching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// Answer of Join Session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub user_token: String,
    pub user_id: u32,
    /// Everyone in the session after this join, the new user included.
    pub users: Vec<UserInfo>,
}

/// Answer of Stop Session (`GET <context>/rest/live/users/{userToken}/session/stop`).
/// Both times are UTC milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopResponse {
    /// When the session became active; a session stopped before any agent
    /// joined was never active and reports `null`.
    pub activation_time: Option<u64>,
    pub deactivation_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_response_uses_the_vendor_field_names() {
        let body = CreateSessionResponse {
            session_token: "045800826".into(),
            session_server_name: "node-1".into(),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"sessionToken":"045800826","sessionServerName":"node-1"}"#
        );
    }

    #[test]
    fn created_session_adds_the_customer_key() {
        let body = CreatedSession {
            session: CreateSessionResponse {
                session_token: "045800826".into(),
                session_server_name: "node-1".into(),
            },
            customer_key: "k".into(),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"sessionToken":"045800826","sessionServerName":"node-1","customerKey":"k"}"#
        );
        let plain: CreateSessionResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(plain, body.session);
    }

    #[test]
    fn server_url_is_omitted_when_absent() {
        let body = GetSessionResponse {
            session_token: "1".into(),
            session_server_name: "n".into(),
            session_server_url: None,
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(!json.contains("sessionServerUrl"));
    }

    #[test]
    fn roles_travel_as_numbers_and_reject_others() {
        let join: JoinRequest = serde_json::from_str(r#"{"role":3,"name":"Ann"}"#).unwrap();
        assert_eq!(join.role, Role::Controller);
        assert!(serde_json::from_str::<JoinRequest>(r#"{"role":4}"#).is_err());
        assert!(serde_json::from_str::<JoinRequest>(r#"{"role":"1"}"#).is_err());
        assert_eq!(serde_json::to_string(&Role::Agent).unwrap(), "2");
    }
}
