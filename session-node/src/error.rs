//! The node's one error type.
//!
//! Every failure a client can cause maps to a variant here, and every variant
//! answers with the shared JSON body `{"error","message"}` and its status, so
//! a client never has to parse two shapes (in the spirit of axum's
//! `examples/error-handling`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared_types::error::{codes, ErrorBody};

use crate::sessions::{SessionError, MAX_NAME_CHARS};

#[derive(Debug)]
pub enum ApiError {
    /// No route matches the path.
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    SessionNotFound,
    UserNotFound,
    SessionEnded,
    OriginNotAllowed,
    NotController,
    SessionFull {
        max_users: usize,
    },
    InvalidJson(String),
    BadRequest(String),
    UnsupportedMediaType,
    PayloadTooLarge {
        limit: usize,
    },
    Draining,
    CapacityExhausted {
        retry_after_secs: u64,
    },
    /// Agent-side join without a credential; `unconfigured` when this node
    /// has no key to check one against.
    AgentAuthRequired {
        unconfigured: bool,
    },
    AgentAuthInvalid,
    CustomerKeyInvalid,
    CustomerAlreadyJoined,
    TooManyAttempts {
        retry_after_secs: u64,
    },
    TooManyCreates {
        retry_after_secs: u64,
    },
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use ApiError::*;
        match self {
            NotFound => (
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                "no such resource".into(),
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                "this resource does not accept that method".into(),
            ),
            SessionNotFound => (
                StatusCode::NOT_FOUND,
                codes::SESSION_NOT_FOUND,
                "no such session on this node".into(),
            ),
            UserNotFound => (
                StatusCode::NOT_FOUND,
                codes::USER_NOT_FOUND,
                "no such user on this node".into(),
            ),
            SessionEnded => (
                StatusCode::GONE,
                codes::SESSION_ENDED,
                "the session has ended".into(),
            ),
            OriginNotAllowed => (
                StatusCode::FORBIDDEN,
                codes::ORIGIN_NOT_ALLOWED,
                "the request needs an Origin or Referer header from an allowed origin".into(),
            ),
            NotController => (
                StatusCode::FORBIDDEN,
                codes::NOT_CONTROLLER,
                "only the session's controller may stop it".into(),
            ),
            SessionFull { max_users } => (
                StatusCode::CONFLICT,
                codes::SESSION_FULL,
                format!("the session already has {max_users} users"),
            ),
            InvalidJson(why) => (StatusCode::BAD_REQUEST, codes::INVALID_JSON, why.clone()),
            BadRequest(why) => (StatusCode::BAD_REQUEST, codes::BAD_REQUEST, why.clone()),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json".into(),
            ),
            PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes"),
            ),
            Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                codes::DRAINING,
                "this node is draining and takes no new sessions".into(),
            ),
            CapacityExhausted { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                codes::CAPACITY_EXHAUSTED,
                "this node holds as many sessions as it may; try again later".into(),
            ),
            AgentAuthRequired { unconfigured } => (
                StatusCode::UNAUTHORIZED,
                codes::AGENT_AUTH_REQUIRED,
                if *unconfigured {
                    "agents cannot join: this node has no agent key configured".into()
                } else {
                    "joining as agent or controller needs an agent credential (Authorization: Bearer)".into()
                },
            ),
            AgentAuthInvalid => (
                StatusCode::UNAUTHORIZED,
                codes::AGENT_AUTH_INVALID,
                "the agent credential is not valid for this join".into(),
            ),
            CustomerKeyInvalid => (
                StatusCode::FORBIDDEN,
                codes::CUSTOMER_KEY_INVALID,
                "joining as the customer needs the session's customerKey".into(),
            ),
            CustomerAlreadyJoined => (
                StatusCode::CONFLICT,
                codes::CUSTOMER_ALREADY_JOINED,
                "the session's customer has already joined".into(),
            ),
            TooManyAttempts { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_ATTEMPTS,
                "too many failed attempts from this client; try again later".into(),
            ),
            TooManyCreates { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_CREATES,
                "too many sessions created by this client; try again later".into(),
            ),
        }
    }

    /// `Retry-After` seconds, for the answers that have one.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::CapacityExhausted { retry_after_secs }
            | ApiError::TooManyAttempts { retry_after_secs }
            | ApiError::TooManyCreates { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// A session refusal as an answer; refusals that guard access are counted in
/// `node_rejected_total{reason}` on the way.
impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        if let Some(reason) = err.rejection_reason() {
            metrics::counter!("node_rejected_total", "reason" => reason).increment(1);
        }
        match err {
            SessionError::SessionNotFound => ApiError::SessionNotFound,
            SessionError::UserNotFound => ApiError::UserNotFound,
            SessionError::Ended => ApiError::SessionEnded,
            SessionError::NotController => ApiError::NotController,
            SessionError::SessionFull { max_users } => ApiError::SessionFull { max_users },
            SessionError::Draining => ApiError::Draining,
            SessionError::CapacityExhausted => ApiError::CapacityExhausted {
                retry_after_secs: 5,
            },
            SessionError::NameTooLong => {
                ApiError::BadRequest(format!("name is longer than {MAX_NAME_CHARS} characters"))
            }
            SessionError::AgentAuthRequired => ApiError::AgentAuthRequired {
                unconfigured: false,
            },
            SessionError::AgentAuthUnconfigured => {
                ApiError::AgentAuthRequired { unconfigured: true }
            }
            SessionError::AgentAuthInvalid => ApiError::AgentAuthInvalid,
            SessionError::CustomerKeyInvalid => ApiError::CustomerKeyInvalid,
            SessionError::CustomerAlreadyJoined => ApiError::CustomerAlreadyJoined,
            SessionError::TooManyAttempts(retry) => ApiError::TooManyAttempts {
                retry_after_secs: retry.secs(),
            },
            SessionError::TooManyCreates(retry) => ApiError::TooManyCreates {
                retry_after_secs: retry.secs(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cobrowse\""),
            );
        }
        response
    }
}
