//! The `/service/session/*` channels: the REST resources' meaning over
//! Bayeux, through the same session core.
//!
//! A successful service publish is answered with two messages, in this order:
//! the result (`data`) on the service channel with the request's `id`, then
//! the plain publish acknowledgement. The CometD client treats a reply with
//! `data` as the answer of a `remoteCall` with that id, or else delivers it to
//! the channel's listeners (the vendor's style: `addListener` on
//! `/service/session/join`); a plain `publish` callback only fires on the
//! acknowledgement without `data`. Failures answer one `successful: false`
//! message with a Bayeux error string `<code>::<text>` whose code is the HTTP
//! status the REST resource would have answered.
//!
//! The agent credential of a join is `data.agentToken`, or else the
//! handshake's `ext.agentToken`; the customer's key is `data.customerKey`.
//! The rules themselves are all in [`crate::sessions`].

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::json;
use shared_types::api::{CreateSessionResponse, CreatedSession, JoinRequest, Role};
use shared_types::bayeux::{
    Message, SERVICE_ACTIVATED, SERVICE_CREATE, SERVICE_EXIT, SERVICE_JOIN, SERVICE_STOP,
};

use super::{error_reply, unknown_client, Bayeux, Participant};
use crate::sessions::access::{Caller, Credential};
use crate::sessions::SessionError;

/// Where a CometD client puts its agent credential: the join's `data`, or
/// the handshake's `ext`.
pub const AGENT_TOKEN_FIELD: &str = "agentToken";

// No `Debug`: it holds the customer key and the agent credential.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinData {
    session_token: String,
    role: Role,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    customer_key: Option<String>,
    #[serde(default)]
    agent_token: Option<String>,
}

// No `Debug`: a user token is a secret.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserData {
    user_token: String,
}

/// A session this node does not hold may live on another node of the
/// cluster: the answer says what a client can do about it.
pub const SESSION_NOT_FOUND: &str = "404::session not found on this node; it may live on another node: create it over this connection, or put ?gcbSessionServer=<its sessionServerName> in the CometD URL";

/// The Bayeux error string for a session error.
pub(crate) fn error_string(error: SessionError) -> String {
    use SessionError::*;
    let text = match error {
        SessionNotFound => SESSION_NOT_FOUND,
        UserNotFound => "404::user not found",
        Ended => "410::session ended",
        NotController => "403::only the controller may stop the session",
        SessionFull { .. } => "409::session full",
        Draining => "503::node draining",
        CapacityExhausted => "503::node full",
        NameTooLong => "400::name too long",
        AgentAuthRequired => "401::agent_auth_required",
        AgentAuthUnconfigured => "401::agent_auth_required: this node has no agent key",
        AgentAuthInvalid => "401::agent_auth_invalid",
        CustomerKeyInvalid => "403::customer_key_invalid",
        CustomerAlreadyJoined => "409::customer_already_joined",
        TooManyAttempts(retry) => {
            return format!("429::too_many_attempts: retry after {}s", retry.secs())
        }
        TooManyCreates(retry) => {
            return format!("429::too_many_creates: retry after {}s", retry.secs())
        }
    };
    text.to_owned()
}

/// Handles a publish to a `/service/` channel: the answer messages, and
/// whether the answer should carry the stickiness cookie (a session was
/// created or joined).
pub(crate) fn handle(bayeux: &Bayeux, message: &Message, peer: IpAddr) -> (Vec<Message>, bool) {
    let (reply, stick) = answer(bayeux, message, peer);
    if reply.data.is_some() {
        let ack = Message {
            client_id: reply.client_id.clone(),
            ..message.reply(true)
        };
        (vec![reply, ack], stick)
    } else {
        (vec![reply], stick)
    }
}

/// The caller of a service message: the address of the request it came in
/// (the handshake's if unknown) and the credential it carries.
fn caller(bayeux: &Bayeux, peer: IpAddr, credential: Option<&Credential>) -> Caller {
    bayeux.sessions.caller(peer, credential)
}

fn answer(bayeux: &Bayeux, message: &Message, peer: IpAddr) -> (Message, bool) {
    let Some(client_id) = message.client_id.as_deref() else {
        return (unknown_client(message), false);
    };
    let Some((_, handshake_credential)) = bayeux.lock().origin(client_id) else {
        return (unknown_client(message), false);
    };
    let data = message.data.clone().unwrap_or_else(|| json!({}));
    let ok = |value: serde_json::Value| Message {
        client_id: Some(client_id.to_owned()),
        data: Some(value),
        ..message.reply(true)
    };
    let fail = |error: SessionError| {
        if let Some(reason) = error.rejection_reason() {
            metrics::counter!("node_rejected_total", "reason" => reason).increment(1);
        }
        Message {
            client_id: Some(client_id.to_owned()),
            ..error_reply(message, &error_string(error))
        }
    };
    let malformed = |e: serde_json::Error| Message {
        client_id: Some(client_id.to_owned()),
        ..error_reply(message, &format!("400::{e}"))
    };
    match message.channel.as_str() {
        SERVICE_CREATE => {
            let caller = caller(bayeux, peer, None);
            match bayeux.sessions.create(&caller, bayeux.readiness.is_ready()) {
                Ok(created) => (
                    ok(json!(CreatedSession {
                        session: CreateSessionResponse {
                            session_token: created.token,
                            session_server_name: bayeux.node_name.clone(),
                        },
                        customer_key: created.customer_key,
                    })),
                    true,
                ),
                Err(e) => (fail(e), false),
            }
        }
        SERVICE_JOIN => {
            let join: JoinData = match serde_json::from_value(data) {
                Ok(join) => join,
                Err(e) => return (malformed(e), false),
            };
            let credential = join
                .agent_token
                .map(Credential::new)
                .or(handshake_credential);
            // Verify before taking the registry lock: signatures cost time.
            let caller = caller(bayeux, peer, credential.as_ref());
            let request = JoinRequest {
                role: join.role,
                name: join.name,
                customer_key: join.customer_key,
            };
            // Hold the registry while joining so the `joined`/`activated`
            // events this join causes find the new participant registered.
            let mut registry = bayeux.lock();
            // A late joiner of an already active session is told so at once;
            // a join that activates the session is told by the event.
            let already_active = bayeux.sessions.activation_time(&join.session_token);
            match bayeux.sessions.join(&caller, &join.session_token, request) {
                Ok(joined) => {
                    registry.join(
                        client_id,
                        Participant {
                            session: join.session_token,
                            user_id: joined.user_id,
                        },
                    );
                    if let Some(activation_time) = already_active {
                        registry.enqueue_event(
                            client_id,
                            Message::delivery(
                                SERVICE_ACTIVATED,
                                json!({ "activationTime": activation_time }),
                            ),
                            bayeux.max_queue(),
                        );
                    }
                    (ok(json!(joined)), true)
                }
                Err(e) => (fail(e), false),
            }
        }
        SERVICE_EXIT | SERVICE_STOP => {
            let user: UserData = match serde_json::from_value(data) {
                Ok(user) => user,
                Err(e) => return (malformed(e), false),
            };
            let caller = caller(bayeux, peer, handshake_credential.as_ref());
            let result = if message.channel == SERVICE_STOP {
                bayeux.sessions.stop(&caller, &user.user_token)
            } else {
                bayeux.sessions.exit(&caller, &user.user_token)
            };
            match result {
                Ok(times) => (ok(json!(times)), false),
                Err(e) => (fail(e), false),
            }
        }
        other => {
            tracing::warn!(
                client = client_id,
                channel = other,
                "unknown service channel"
            );
            let reply = Message {
                client_id: Some(client_id.to_owned()),
                ..error_reply(message, "404::unknown service channel")
            };
            (reply, false)
        }
    }
}
