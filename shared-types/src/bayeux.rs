//! Bayeux 1.0 (CometD) messages and the channel names of the realtime side.
//!
//! A Bayeux request or response is a JSON array of messages (a single object
//! is accepted too). One struct covers every message: the protocol's fields
//! are optional depending on the channel, and unknown fields are kept in
//! `other` so nothing a client sends is silently dropped by a round trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const META_HANDSHAKE: &str = "/meta/handshake";
pub const META_CONNECT: &str = "/meta/connect";
pub const META_SUBSCRIBE: &str = "/meta/subscribe";
pub const META_UNSUBSCRIBE: &str = "/meta/unsubscribe";
pub const META_DISCONNECT: &str = "/meta/disconnect";

/// Client-initiated service channels (same meaning as the REST resources).
pub const SERVICE_CREATE: &str = "/service/session/create";
pub const SERVICE_JOIN: &str = "/service/session/join";
pub const SERVICE_EXIT: &str = "/service/session/exit";
pub const SERVICE_STOP: &str = "/service/session/stop";
/// Server-initiated service channels.
pub const SERVICE_JOINED: &str = "/service/session/joined";
pub const SERVICE_ACTIVATED: &str = "/service/session/activated";
pub const SERVICE_DEACTIVATED: &str = "/service/session/deactivated";

/// Transports.
pub const WEBSOCKET: &str = "websocket";
pub const LONG_POLLING: &str = "long-polling";

/// The channel carrying a session's page content and agent actions between
/// its participants: `/session/{sessionToken}/data`.
pub fn session_data_channel(session_token: &str) -> String {
    format!("/session/{session_token}/data")
}

/// The session token of a session data channel, if `channel` is one.
pub fn session_of_data_channel(channel: &str) -> Option<&str> {
    let token = channel.strip_prefix("/session/")?.strip_suffix("/data")?;
    crate::token::is_session_token(token).then_some(token)
}

/// A Bayeux `clientId` that names the node which issued it:
/// `<node name>.<32 hex digits>` (128 random bits). A proxy reads the node
/// from the message itself, with no cookie, header or URL parameter; the
/// name is looked up among the configured nodes, never used as an address.
pub fn client_id(node: &str, secret: u128) -> String {
    format!("{node}.{secret:032x}")
}

/// The node a `clientId` names, if it has the shape [`client_id`] makes.
pub fn node_of_client_id(id: &str) -> Option<&str> {
    let (node, secret) = id.rsplit_once('.')?;
    let well_formed = !node.is_empty()
        && secret.len() == 32
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some(node)
}

/// One Bayeux message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_connection_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub other: Map<String, Value>,
}

impl Message {
    /// The reply skeleton to `self`: same channel and id.
    pub fn reply(&self, successful: bool) -> Message {
        Message {
            channel: self.channel.clone(),
            id: self.id.clone(),
            successful: Some(successful),
            ..Message::default()
        }
    }

    /// A message delivered to subscribers of `channel`.
    pub fn delivery(channel: impl Into<String>, data: Value) -> Message {
        Message {
            channel: channel.into(),
            data: Some(data),
            ..Message::default()
        }
    }
}

/// Parses a Bayeux request body: a JSON array of messages, or one message.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Message>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Batch {
        Many(Vec<Message>),
        One(Box<Message>),
    }
    Ok(match serde_json::from_slice(body)? {
        Batch::Many(messages) => messages,
        Batch::One(message) => vec![*message],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_unknown_fields() {
        let raw = r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"1","custom":7}]"#;
        let batch = parse_batch(raw.as_bytes()).unwrap();
        assert_eq!(batch[0].channel, META_HANDSHAKE);
        assert_eq!(batch[0].other["custom"], 7);
        let back = serde_json::to_value(&batch[0]).unwrap();
        assert_eq!(back["supportedConnectionTypes"][0], "websocket");
        assert_eq!(parse_batch(br#"{"channel":"/a"}"#).unwrap().len(), 1);
        assert!(parse_batch(b"[1]").is_err());
    }

    #[test]
    fn client_ids_name_their_node() {
        let id = client_id("node-2", 0xabc);
        assert_eq!(node_of_client_id(&id), Some("node-2"));
        assert_eq!(node_of_client_id(&client_id("a.b", 1)), Some("a.b"));
        assert_eq!(node_of_client_id("0123456789abcdef0123456789abcdef"), None);
        assert_eq!(node_of_client_id("node-2.XYZ"), None);
        assert_eq!(node_of_client_id(".0123456789abcdef0123456789abcdef"), None);
    }

    #[test]
    fn data_channels_name_their_session() {
        assert_eq!(session_data_channel("012345678"), "/session/012345678/data");
        assert_eq!(
            session_of_data_channel("/session/012345678/data"),
            Some("012345678")
        );
        assert_eq!(session_of_data_channel("/session/0123/data"), None);
        assert_eq!(session_of_data_channel("/session/012345678/other"), None);
    }
}
