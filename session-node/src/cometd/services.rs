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

use serde::Deserialize;
use serde_json::json;
use shared_types::api::{CreateSessionResponse, Role};
use shared_types::bayeux::{
    Message, SERVICE_ACTIVATED, SERVICE_CREATE, SERVICE_EXIT, SERVICE_JOIN, SERVICE_STOP,
};

use super::{error_reply, unknown_client, Bayeux, Participant};
use crate::api::MAX_NAME_CHARS;
use crate::sessions::SessionError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinData {
    session_token: String,
    role: Role,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserData {
    user_token: String,
}

/// The Bayeux error string for a session error.
pub(crate) fn error_string(error: SessionError) -> &'static str {
    match error {
        SessionError::SessionNotFound => "404::session not found",
        SessionError::UserNotFound => "404::user not found",
        SessionError::Ended => "410::session ended",
        SessionError::NotController => "403::only the controller may stop the session",
        SessionError::SessionFull { .. } => "409::session full",
        SessionError::Draining => "503::node draining",
        SessionError::CapacityExhausted => "503::node full",
    }
}

/// Handles a publish to a `/service/` channel: the answer messages, and
/// whether the answer should carry the stickiness cookie (a session was
/// created or joined).
pub(crate) fn handle(bayeux: &Bayeux, message: &Message) -> (Vec<Message>, bool) {
    let (reply, stick) = answer(bayeux, message);
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

fn answer(bayeux: &Bayeux, message: &Message) -> (Message, bool) {
    let Some(client_id) = message.client_id.as_deref() else {
        return (unknown_client(message), false);
    };
    if !bayeux.lock().clients.contains_key(client_id) {
        return (unknown_client(message), false);
    }
    let data = message.data.clone().unwrap_or_else(|| json!({}));
    let ok = |value: serde_json::Value| Message {
        client_id: Some(client_id.to_owned()),
        data: Some(value),
        ..message.reply(true)
    };
    let fail = |error: &str| Message {
        client_id: Some(client_id.to_owned()),
        ..error_reply(message, error)
    };
    match message.channel.as_str() {
        SERVICE_CREATE => match bayeux.sessions.create(bayeux.readiness.is_ready()) {
            Ok(token) => (
                ok(json!(CreateSessionResponse {
                    session_token: token,
                    session_server_name: bayeux.node_name.clone(),
                })),
                true,
            ),
            Err(e) => (fail(error_string(e)), false),
        },
        SERVICE_JOIN => {
            let join: JoinData = match serde_json::from_value(data) {
                Ok(join) => join,
                Err(e) => return (fail(&format!("400::{e}")), false),
            };
            if join
                .name
                .as_ref()
                .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
            {
                return (fail("400::name too long"), false);
            }
            // Hold the registry while joining so the `joined`/`activated`
            // events this join causes find the new participant registered.
            let mut registry = bayeux.lock();
            // A late joiner of an already active session is told so at once;
            // a join that activates the session is told by the event.
            let already_active = bayeux.sessions.activation_time(&join.session_token);
            match bayeux
                .sessions
                .join(&join.session_token, join.role, join.name)
            {
                Ok(joined) => {
                    registry.join(
                        client_id,
                        Participant {
                            session: join.session_token,
                            user_id: joined.user_id,
                        },
                    );
                    if let Some(activation_time) = already_active {
                        registry.enqueue(
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
                Err(e) => (fail(error_string(e)), false),
            }
        }
        SERVICE_EXIT | SERVICE_STOP => {
            let user: UserData = match serde_json::from_value(data) {
                Ok(user) => user,
                Err(e) => return (fail(&format!("400::{e}")), false),
            };
            let result = if message.channel == SERVICE_STOP {
                bayeux.sessions.stop(&user.user_token)
            } else {
                bayeux.sessions.exit(&user.user_token)
            };
            match result {
                Ok(times) => (ok(json!(times)), false),
                Err(e) => (fail(error_string(e)), false),
            }
        }
        other => {
            tracing::warn!(
                client = client_id,
                channel = other,
                "unknown service channel"
            );
            (fail("404::unknown service channel"), false)
        }
    }
}
