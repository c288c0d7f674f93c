//! The one error body of the API.

use serde::{Deserialize, Serialize};

/// Every error a node or the proxy answers has this shape:
/// `{"error":"<code>","message":"<human text>"}`. `error` is a stable,
/// machine-readable code (see [`codes`]); `message` is for people and may change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Stable error codes.
pub mod codes {
    /// 404: no such resource (unknown path).
    pub const NOT_FOUND: &str = "not_found";
    /// 404: the session token is unknown (or malformed).
    pub const SESSION_NOT_FOUND: &str = "session_not_found";
    /// 404: the user token is unknown (or malformed).
    pub const USER_NOT_FOUND: &str = "user_not_found";
    /// 410: the session was stopped or expired and is only retained.
    pub const SESSION_ENDED: &str = "session_ended";
    /// 403: the request's Origin/Referer is missing or not allowed.
    pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
    /// 403: only the controller may stop a session.
    pub const NOT_CONTROLLER: &str = "not_controller";
    /// 400: the body is not the JSON the resource expects.
    pub const INVALID_JSON: &str = "invalid_json";
    /// 415: the body is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 413: the body is larger than the limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 405: the resource exists but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 503: the node is draining and takes no new sessions.
    pub const DRAINING: &str = "draining";
    /// 503: the node holds as many sessions as it may.
    pub const CAPACITY_EXHAUSTED: &str = "capacity_exhausted";
    /// 409: the session holds as many users as it may.
    pub const SESSION_FULL: &str = "session_full";
    /// 503 (proxy): the node that owns the request's session cannot be reached.
    pub const SESSION_SERVER_UNAVAILABLE: &str = "session_server_unavailable";
    /// 503 (proxy): no node is ready to take a new session.
    pub const NO_SERVER_AVAILABLE: &str = "no_server_available";
    /// 504 (proxy): the node did not answer in time.
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    /// 502 (proxy): the node's answer was broken or the connection failed mid-request.
    pub const BAD_GATEWAY: &str = "bad_gateway";
    /// 431 (proxy): the request head is larger than the limit.
    pub const HEADERS_TOO_LARGE: &str = "request_header_fields_too_large";
    /// 400: a malformed request.
    pub const BAD_REQUEST: &str = "bad_request";
    /// 429: this client (address, or agent) missed too often: unknown or
    /// ended tokens, bad credentials or keys. `Retry-After` says when to
    /// try again.
    pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
    /// 429: this client created too many sessions lately (`Retry-After`).
    pub const TOO_MANY_CREATES: &str = "too_many_creates";
    /// 429 (proxy): this client holds too many connections.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// 401: joining as agent or controller needs an agent credential
    /// (`Authorization: Bearer <JWT>`).
    pub const AGENT_AUTH_REQUIRED: &str = "agent_auth_required";
    /// 401: the agent credential is not valid (for this session or role).
    pub const AGENT_AUTH_INVALID: &str = "agent_auth_invalid";
    /// 403: joining as the customer needs the session's `customerKey`.
    pub const CUSTOMER_KEY_INVALID: &str = "customer_key_invalid";
    /// 409: the session's customer has already joined.
    pub const CUSTOMER_ALREADY_JOINED: &str = "customer_already_joined";
    /// 409 (proxy): two nodes claim the same session token; the proxy picks
    /// neither.
    pub const SESSION_AMBIGUOUS: &str = "session_ambiguous";
    /// 503 (proxy): no connection to the named node can be had right now —
    /// the proxy already holds `--max-conns-per-node` to it and the short
    /// queue is full or timed out, or the proxy itself is out of sockets or
    /// file descriptors. The session is not lost: retry (`Retry-After`).
    pub const SERVER_BUSY: &str = "server_busy";
    /// 500: a bug; the message says no more than that.
    pub const INTERNAL: &str = "internal_error";
}
