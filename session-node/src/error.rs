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

use crate::sessions::SessionError;

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
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if let ApiError::CapacityExhausted { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}
