//! Cookie-free routing of CometD long-polling: the node a `clientId` names.
//!
//! A node issues `clientId`s of the form `<node name>.<32 hex>`
//! ([`shared_types::bayeux::client_id`]). For a `POST <ctx>/cometd[/…]` the
//! proxy reads the start of the body — at most `--cometd-peek-limit` bytes
//! (256 KiB), and only until the first message's `clientId` is read or the
//! first message ends without one — finds the `clientId`, and routes to the
//! configured node it names. The bytes read are sent first and the rest of
//! the body streams on ([`crate::route::Exchange::peek_client_id`]);
//! nothing else is buffered. Only `Content-Length` bodies are read ahead
//! (the CometD clients send those); a chunked one is routed without its
//! `clientId`. The name is looked up among the configured nodes only: a
//! `clientId` naming no node, or malformed, is ignored (the request is routed
//! as if it had none, and the node that gets it answers `402::Unknown
//! client` itself); a name is never used as an address.
//!
//! For a CometD POST the `clientId` comes before the cookie, header and
//! query parameter: it names exactly the node that holds the client, while
//! a cookie may be left from an older session. A handshake has no
//! `clientId`: it is routed by cookie, header or query parameter if it has
//! one (a client that created its session over REST must handshake on that
//! node), else balanced like a create.
//!
//! Limits: a `clientId` that is not within the first `--cometd-peek-limit`
//! bytes (a first message with a larger `data` before its `clientId` — the
//! CometD JavaScript client writes `clientId` after `data`) is not found,
//! and the request is routed without it. A WebSocket upgrade carries no
//! body: its messages travel inside the tunnel, so it is routed by cookie,
//! header or query parameter only.

use std::fmt;

use http::Method;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::affinity::Paths;

/// Whether `method` on `path` is a CometD long-polling request:
/// `POST <ctx>/cometd`, `<ctx>/cometd/` or `<ctx>/cometd/<type>`.
pub fn is_cometd_post(paths: &Paths, method: &Method, path: &str) -> bool {
    method == Method::POST
        && path
            .strip_prefix(paths.cometd())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What the start of a body says about its first message's `clientId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The first message's `clientId`.
    Found(String),
    /// The first message ended without one (a handshake), or the body is
    /// not a Bayeux batch: no need to read further.
    Absent,
    /// The bytes so far end before the first message's `clientId` or end.
    NeedMore,
}

/// Reads a Bayeux batch (a JSON array of messages, or one message) as far
/// as its first message's `clientId`. `data` may be a truncated prefix.
pub fn scan(data: &[u8]) -> Scan {
    let mut found = None;
    let mut first_done = false;
    let mut de = serde_json::Deserializer::from_slice(data);
    let result = Batch {
        found: &mut found,
        first_done: &mut first_done,
    }
    .deserialize(&mut de);
    if let Some(id) = found {
        return Scan::Found(id);
    }
    match result {
        // The first message was read whole, or the batch is empty.
        Ok(()) => Scan::Absent,
        Err(_) if first_done => Scan::Absent,
        Err(error) if error.is_eof() => Scan::NeedMore,
        Err(_) => Scan::Absent,
    }
}

/// The top level: an array (its first element) or a single message.
struct Batch<'a> {
    found: &'a mut Option<String>,
    first_done: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Batch<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Batch<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Bayeux batch")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let first = FirstMessage { found: self.found };
        if seq.next_element_seed(first)?.is_some() {
            *self.first_done = true;
        }
        // The rest of the batch is the node's business: stop here (the
        // deserializer then reports trailing elements, which is ignored).
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        FirstMessage { found: self.found }.visit_map(map)?;
        *self.first_done = true;
        Ok(())
    }
}

/// One message: its `clientId` if it is a string, everything else skipped.
struct FirstMessage<'a> {
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for FirstMessage<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FirstMessage<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Bayeux message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "clientId" {
                match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(id) => {
                        *self.found = Some(id);
                        // Found: the rest of the message is not read.
                        return Err(de::Error::custom("clientId found"));
                    }
                    _ => continue,
                }
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "node-2.0123456789abcdef0123456789abcdef";

    #[test]
    fn the_first_messages_client_id_is_found() {
        let connect = format!(
            r#"[{{"channel":"/meta/connect","clientId":"{ID}","connectionType":"long-polling"}}]"#
        );
        assert_eq!(scan(connect.as_bytes()), Scan::Found(ID.to_owned()));
        // One message rather than an array; whitespace; clientId last.
        let single = format!(
            " {{ \"channel\" : \"/x\", \"data\": {{\"clientId\": \"nested\", \"a\": [1, {{}}]}}, \"clientId\" : \"{ID}\" }}"
        );
        assert_eq!(scan(single.as_bytes()), Scan::Found(ID.to_owned()));
        // Escapes in the key and the value.
        let escaped = r#"[{"client\u0049d":"node-1.0123456789abcdef0123456789abcde\u0066"}]"#;
        assert_eq!(
            scan(escaped.as_bytes()),
            Scan::Found("node-1.0123456789abcdef0123456789abcdef".to_owned())
        );
        // Only the first message counts.
        let batch = format!(r#"[{{"channel":"/a","clientId":"{ID}"}},{{"clientId":"other"}}]"#);
        assert_eq!(scan(batch.as_bytes()), Scan::Found(ID.to_owned()));
    }

    #[test]
    fn a_truncated_prefix_needs_more_until_the_id_is_in_it() {
        let connect = format!(r#"[{{"channel":"/meta/connect","clientId":"{ID}"}}]"#);
        let cut = connect.find(ID).unwrap() + 5;
        for end in [0, 1, 10, cut] {
            assert_eq!(scan(&connect.as_bytes()[..end]), Scan::NeedMore, "{end}");
        }
        let after = connect.find(ID).unwrap() + ID.len() + 1;
        assert_eq!(
            scan(&connect.as_bytes()[..after]),
            Scan::Found(ID.to_owned()),
            "the message need not be complete"
        );
    }

    #[test]
    fn handshakes_and_non_batches_have_none() {
        for body in [
            r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}, {"clientId":"later"}]"#,
            r#"[]"#,
            r#"[{"channel":"/x","clientId":42}]"#,
            r#"{"channel":"/meta/handshake"}"#,
            r#"not json"#,
            r#"[1,2]"#,
            r#""clientId""#,
        ] {
            assert_eq!(scan(body.as_bytes()), Scan::Absent, "{body}");
        }
    }

    #[test]
    fn cometd_posts_are_recognised() {
        let paths = Paths::new("/cobrowse");
        for path in [
            "/cobrowse/cometd",
            "/cobrowse/cometd/",
            "/cobrowse/cometd/connect",
        ] {
            assert!(is_cometd_post(&paths, &Method::POST, path), "{path}");
        }
        assert!(!is_cometd_post(&paths, &Method::GET, "/cobrowse/cometd"));
        assert!(!is_cometd_post(&paths, &Method::POST, "/cobrowse/cometdx"));
        assert!(!is_cometd_post(&paths, &Method::POST, "/cometd"));
        assert!(is_cometd_post(&Paths::new(""), &Method::POST, "/cometd"));
    }
}
