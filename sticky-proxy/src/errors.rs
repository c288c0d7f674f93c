//! The answers the proxy generates itself.
//!
//! Every one of them is the shared [`ErrorBody`] JSON with
//! `content-type: application/json`, so that clients handle a proxy error the
//! same way as a node error and can tell "the owner of my session is gone"
//! (`session_server_unavailable`) from "nothing can take a new session"
//! (`no_server_available`).
//!
//! The 429s and `server_busy` carry `Retry-After` (whole seconds). The one answer made
//! outside hyper, to a connection over `--max-connections-per-client`, is
//! [`too_many_connections_answer`]: raw bytes, as no request was read.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use shared_types::error::{codes, ErrorBody};

/// Body of the admin listener's answers (the hyper side of the proxy).
pub type ProxyBody = http_body_util::Full<Bytes>;

/// A failure the proxy answers instead of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The request is bound to this node (cookie, header, query or lookup)
    /// and the node is down or refused the connection. Never re-routed: no
    /// other node knows the session.
    SessionServerUnavailable(Arc<str>),
    /// A session path whose owner the lookup could not find: no node that
    /// answered holds it, and these nodes could not say (they did not answer,
    /// or are down and were not asked). Named as what they are, never as the
    /// owner.
    SessionNotOnLiveNodes {
        silent: Vec<Arc<str>>,
        down: Vec<Arc<str>>,
    },
    /// No connection to this node can be had right now: the proxy holds
    /// `--max-conns-per-node` to it and the queue is full or timed out
    /// (`local: false`), or the proxy is out of descriptors or sockets
    /// (`local: true`). The session is not lost: retry.
    ServerBusy { node: Arc<str>, local: bool },
    /// An unbound request found no ready node.
    NoServerAvailable,
    /// The node did not send its response head within `--upstream-timeout`.
    UpstreamTimeout(Arc<str>),
    /// The connection to the node broke before a response head arrived.
    BadGateway(Arc<str>),
    /// A request the proxy cannot forward (for instance `CONNECT`).
    BadRequest(&'static str),
    /// The client's probe budget is spent; retry after this many seconds.
    TooManyAttempts(u64),
    /// The client's create budget is spent; retry after this many seconds.
    TooManyCreates(u64),
    /// More than one node claims the session: the proxy picks none.
    SessionAmbiguous,
    /// The body is over `--max-body-size` (this many bytes).
    BodyTooLarge(usize),
    /// A head the proxy will not forward (invalid framing, obs-fold, two
    /// `Host`s…): the reason, for the client.
    Malformed(&'static str),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::SessionServerUnavailable(_)
            | ProxyError::SessionNotOnLiveNodes { .. }
            | ProxyError::ServerBusy { .. }
            | ProxyError::NoServerAvailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::BadRequest(_) | ProxyError::Malformed(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::TooManyAttempts(_) | ProxyError::TooManyCreates(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ProxyError::SessionAmbiguous => StatusCode::CONFLICT,
        }
    }

    /// The stable machine-readable code of [`shared_types::error::codes`].
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::SessionServerUnavailable(_) | ProxyError::SessionNotOnLiveNodes { .. } => {
                codes::SESSION_SERVER_UNAVAILABLE
            }
            ProxyError::ServerBusy { .. } => codes::SERVER_BUSY,
            ProxyError::NoServerAvailable => codes::NO_SERVER_AVAILABLE,
            ProxyError::UpstreamTimeout(_) => codes::UPSTREAM_TIMEOUT,
            ProxyError::BadGateway(_) => codes::BAD_GATEWAY,
            ProxyError::BadRequest(_) | ProxyError::Malformed(_) => codes::BAD_REQUEST,
            ProxyError::BodyTooLarge(_) => codes::PAYLOAD_TOO_LARGE,
            ProxyError::TooManyAttempts(_) => codes::TOO_MANY_ATTEMPTS,
            ProxyError::TooManyCreates(_) => codes::TOO_MANY_CREATES,
            ProxyError::SessionAmbiguous => codes::SESSION_AMBIGUOUS,
        }
    }

    /// Seconds for `Retry-After`, on the answers that have one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::TooManyAttempts(secs) | ProxyError::TooManyCreates(secs) => Some(*secs),
            ProxyError::ServerBusy { .. } => Some(1),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ProxyError::SessionServerUnavailable(node) => format!(
                "the session server {node} that holds this session is unavailable; start a new session"
            ),
            ProxyError::SessionNotOnLiveNodes { silent, down } => {
                let mut text =
                    "the session was not found on the session servers that answered".to_owned();
                if !silent.is_empty() {
                    text.push_str(&format!("; {} did not answer", silent.join(", ")));
                }
                if !down.is_empty() {
                    let verb = if down.len() == 1 { "is" } else { "are" };
                    text.push_str(&format!("; {} {verb} down", down.join(", ")));
                }
                text.push_str("; it may be there: retry, or start a new session");
                text
            }
            ProxyError::ServerBusy { node, local: false } => format!(
                "the session server {node} has as many connections from this proxy as it may; retry shortly"
            ),
            ProxyError::ServerBusy { node, local: true } => format!(
                "the proxy cannot open a connection to the session server {node} right now; retry shortly"
            ),
            ProxyError::NoServerAvailable => "no session server is available".to_owned(),
            ProxyError::UpstreamTimeout(node) => {
                format!("the session server {node} did not answer in time")
            }
            ProxyError::BadGateway(node) => {
                format!("the connection to the session server {node} failed")
            }
            ProxyError::BadRequest(why) => (*why).to_owned(),
            ProxyError::Malformed(why) => format!("the request cannot be forwarded: {why}"),
            ProxyError::BodyTooLarge(max) => {
                format!("the request body is larger than the proxy accepts ({max} bytes)")
            }
            // No detail a guesser could use: not which token, not how many.
            ProxyError::TooManyAttempts(_) => {
                "too many failed attempts from this client; try again later".to_owned()
            }
            ProxyError::TooManyCreates(_) => {
                "too many sessions created by this client; try again later".to_owned()
            }
            ProxyError::SessionAmbiguous => {
                "more than one session server claims this session; the proxy picks none"
                    .to_owned()
            }
        }
    }

    /// The JSON response for this error.
    pub fn to_response(&self) -> Response<ProxyBody> {
        let mut response =
            json_response(self.status(), &ErrorBody::new(self.code(), self.message()));
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ProxyError {}

/// A JSON response; serialising our own types cannot fail, but if it ever did
/// the client still gets the status with an empty body rather than a panic.
pub(crate) fn json_response<T: serde::Serialize>(
    status: StatusCode,
    body: &T,
) -> Response<ProxyBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(ProxyBody::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The whole answer to a connection refused for holding too many: a
/// minimal HTTP/1.1 429 with the JSON body, then the connection closes.
pub fn too_many_connections_answer() -> &'static [u8] {
    static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(|| {
        let body = serde_json::to_vec(&ErrorBody::new(
            codes::TOO_MANY_CONNECTIONS,
            "too many connections from this address",
        ))
        .unwrap_or_default();
        let mut answer = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        answer
    })
}

/// An empty response with only a status (the proxy's own `/health`).
pub(crate) fn empty_response(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::default());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn unavailable_names_the_node_in_json() {
        let response = ProxyError::SessionServerUnavailable("node-2".into()).to_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error, "session_server_unavailable");
        assert!(body.message.contains("node-2"));
    }

    #[tokio::test]
    async fn an_unreachable_session_names_nodes_only_as_what_they_are() {
        let error = ProxyError::SessionNotOnLiveNodes {
            silent: vec!["node-2".into()],
            down: vec!["node-4".into()],
        };
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code(), "session_server_unavailable");
        let message = error.message();
        assert!(message.contains("node-2 did not answer"), "{message}");
        assert!(message.contains("node-4 is down"), "{message}");
        assert!(!message.contains("holds"), "{message}");

        let busy = ProxyError::ServerBusy {
            node: "node-1".into(),
            local: false,
        };
        let response = busy.to_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error, "server_busy");
        assert!(body.message.contains("node-1"));
    }

    #[test]
    fn statuses_match_codes() {
        assert_eq!(ProxyError::NoServerAvailable.status(), 503);
        assert_eq!(ProxyError::UpstreamTimeout("n".into()).status(), 504);
        assert_eq!(
            ProxyError::UpstreamTimeout("n".into()).code(),
            "upstream_timeout"
        );
        assert_eq!(ProxyError::BadGateway("n".into()).status(), 502);
        assert_eq!(ProxyError::SessionAmbiguous.status(), 409);
        assert_eq!(ProxyError::SessionAmbiguous.code(), "session_ambiguous");
        assert_eq!(ProxyError::SessionAmbiguous.retry_after(), None);
    }

    #[tokio::test]
    async fn refusals_say_when_to_retry() {
        for (error, code) in [
            (ProxyError::TooManyAttempts(7), "too_many_attempts"),
            (ProxyError::TooManyCreates(7), "too_many_creates"),
        ] {
            let response = error.to_response();
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()[header::RETRY_AFTER], "7");
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body.error, code);
        }
    }

    #[test]
    fn the_connection_refusal_is_a_whole_answer() {
        let answer = String::from_utf8(too_many_connections_answer().to_vec()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(body.error, "too_many_connections");
    }
}
