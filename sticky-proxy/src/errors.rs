//! The answers the proxy generates itself.
//!
//! Every one of them is the shared [`ErrorBody`] JSON with
//! `content-type: application/json`, so that clients handle a proxy error the
//! same way as a node error and can tell "the owner of my session is gone"
//! (`session_server_unavailable`) from "nothing can take a new session"
//! (`no_server_available`).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use shared_types::error::{codes, ErrorBody};

use crate::forward::ProxyBody;

/// A failure the proxy answers instead of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The request is bound to this node (cookie, header, query or lookup)
    /// and the node is down or refused the connection. Never re-routed: no
    /// other node knows the session.
    SessionServerUnavailable(Arc<str>),
    /// An unbound request found no ready node.
    NoServerAvailable,
    /// The node did not send its response head within `--upstream-timeout`.
    UpstreamTimeout(Arc<str>),
    /// The connection to the node broke before a response head arrived.
    BadGateway(Arc<str>),
    /// A request the proxy cannot forward (for instance `CONNECT`).
    BadRequest(&'static str),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::SessionServerUnavailable(_) | ProxyError::NoServerAvailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable machine-readable code of [`shared_types::error::codes`].
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::SessionServerUnavailable(_) => codes::SESSION_SERVER_UNAVAILABLE,
            ProxyError::NoServerAvailable => codes::NO_SERVER_AVAILABLE,
            ProxyError::UpstreamTimeout(_) => codes::UPSTREAM_TIMEOUT,
            ProxyError::BadGateway(_) => codes::BAD_GATEWAY,
            ProxyError::BadRequest(_) => codes::BAD_REQUEST,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ProxyError::SessionServerUnavailable(node) => format!(
                "the session server {node} that holds this session is unavailable; start a new session"
            ),
            ProxyError::NoServerAvailable => "no session server is available".to_owned(),
            ProxyError::UpstreamTimeout(node) => {
                format!("the session server {node} did not answer in time")
            }
            ProxyError::BadGateway(node) => {
                format!("the connection to the session server {node} failed")
            }
            ProxyError::BadRequest(why) => (*why).to_owned(),
        }
    }

    /// The JSON response for this error.
    pub fn to_response(&self) -> Response<ProxyBody> {
        json_response(self.status(), &ErrorBody::new(self.code(), self.message()))
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
    let mut response = Response::new(ProxyBody::full(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An empty response with only a status (the proxy's own `/health`).
pub(crate) fn empty_response(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Empty);
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

    #[test]
    fn statuses_match_codes() {
        assert_eq!(ProxyError::NoServerAvailable.status(), 503);
        assert_eq!(ProxyError::UpstreamTimeout("n".into()).status(), 504);
        assert_eq!(
            ProxyError::UpstreamTimeout("n".into()).code(),
            "upstream_timeout"
        );
        assert_eq!(ProxyError::BadGateway("n".into()).status(), 502);
    }
}
