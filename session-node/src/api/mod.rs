//! The live REST API: the router and one handler per resource.
//!
//! | method | path (below the context path)              | handler          |
//! |--------|--------------------------------------------|------------------|
//! | GET    | `/health`                                  | [`health`]       |
//! | POST   | `/rest/live/sessions`                      | [`create_session`] |
//! | GET    | `/rest/live/sessions/{token}`              | [`get_session`]  |
//! | POST   | `/rest/live/sessions/{token}/users`        | [`join_session`] |
//! | GET    | `/rest/live/users/{userToken}/session/stop`| [`stop_session`] |
//! | OPTIONS| any of the `/rest/live` paths              | [`preflight`]    |
//! | POST   | `/cometd`, `/cometd/{type}`                | [`cometd::long_polling`] |
//! | GET    | `/cometd` (WebSocket upgrade)              | [`cometd::websocket`]    |
//! | GET    | `/widget.js`, `/widget/origin`, `/agent/…` | [`web`] (the browser side) |
//!
//! Everything else is a JSON 404, a known path with another method a JSON 405.
//! Handlers only translate: [`caller`] says who is asking, the session core
//! ([`crate::sessions`]) decides, [`crate::error`] turns refusals into JSON.

pub mod caller;
pub mod cometd;
pub mod web;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use shared_types::api::{CreateSessionResponse, CreatedSession, GetSessionResponse, JoinRequest};
use shared_types::names::{HEALTH_PATH, LIVE_PREFIX, LIVE_SESSIONS_HEADER};
use shared_types::token;

use self::caller::{LookupCaller, RequestCaller};
use self::cometd::MAX_BATCH_BYTES;
use crate::cors;
use crate::error::ApiError;
use crate::state::AppState;

/// The node's router: every resource, the JSON 404/405, the body limit and
/// the CORS headers.
pub fn app(state: AppState) -> Router {
    let ctx = state.context_path.as_str();
    let live = format!("{ctx}{LIVE_PREFIX}");
    let cometd = Router::new()
        .route(
            &format!("{ctx}/cometd"),
            post(cometd::long_polling)
                .get(cometd::websocket)
                .options(preflight),
        )
        // The CometD client appends the message type to the URL
        // (`/cometd/connect`), or just `/` for a batch of several kinds.
        .route(
            &format!("{ctx}/cometd/"),
            post(cometd::long_polling).options(preflight),
        )
        .route(
            &format!("{ctx}/cometd/{{*message_type}}"),
            post(cometd::long_polling).options(preflight),
        )
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES));
    Router::new()
        .route(&format!("{ctx}{HEALTH_PATH}"), get(health))
        .route(
            &format!("{live}/sessions"),
            post(create_session).options(preflight),
        )
        .route(
            &format!("{live}/sessions/{{token}}"),
            get(get_session).options(preflight),
        )
        .route(
            &format!("{live}/sessions/{{token}}/users"),
            post(join_session).options(preflight),
        )
        .route(
            &format!("{live}/users/{{user_token}}/session/stop"),
            get(stop_session).options(preflight),
        )
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .merge(cometd)
        .merge(web::routes(ctx))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), cors_headers))
        .with_state(state)
}

/// Adds the CORS headers to every answer whose request came from an allowed
/// origin. Refusing a disallowed origin is the resource's business (only Get
/// Session and the preflight require one), not this layer's.
async fn cors_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = state.origins.check(request.headers());
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        cors::add_cors_headers(response.headers_mut(), &origin, &state.origins);
    }
    response
}

/// `OPTIONS` on an API path: 204 with the allowed methods and headers (the
/// `gcbSessionServer` request header among them) for an allowed origin.
async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.origins.check(&headers).is_none() {
        return ApiError::OriginNotAllowed.into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    cors::add_preflight_headers(response.headers_mut());
    response
}

/// 200 with an empty body while ready, 503 with an empty body while draining;
/// either way with the live session count in `cobrowse-live-sessions`.
async fn health(State(state): State<AppState>) -> Response {
    let status = if state.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let live = state.sessions.live_count();
    (status, [(LIVE_SESSIONS_HEADER, live.to_string())]).into_response()
}

/// Create Session. Refused (503) while draining or at `--max-sessions`, and
/// (429) beyond the caller's create budget. The answer adds the
/// `customerKey` to the contract's two fields.
async fn create_session(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
) -> Result<Response, ApiError> {
    let created = state.sessions.create(&caller, state.readiness.is_ready())?;
    tracing::debug!(session = %created.token, "session created");
    let mut response = Json(CreatedSession {
        session: CreateSessionResponse {
            session_token: created.token,
            session_server_name: state.name.clone(),
        },
        customer_key: created.customer_key,
    })
    .into_response();
    state.stickiness.apply(response.headers_mut());
    Ok(response)
}

/// Get Session. The CORS check comes before the session lookup: a caller from
/// an origin that is not allowed learns nothing, not even whether a token
/// exists, so Get Session cannot be used from a foreign page to enumerate the
/// (only nine-digit) session tokens.
async fn get_session(
    State(state): State<AppState>,
    LookupCaller(caller): LookupCaller,
    headers: HeaderMap,
    uri: Uri,
    token: Result<Path<String>, PathRejection>,
) -> Result<Json<GetSessionResponse>, ApiError> {
    state
        .origins
        .check(&headers)
        .ok_or(ApiError::OriginNotAllowed)?;
    let token = session_token(&uri, token)?;
    state.sessions.get(&caller, &token)?;
    Ok(Json(GetSessionResponse {
        session_token: token,
        session_server_name: state.name.clone(),
        session_server_url: state.server_url.clone(),
    }))
}

/// Join Session: our REST form of the vendor's CometD join. Agents and
/// controllers present `Authorization: Bearer <credential>`, the customer
/// the session's `customerKey` in the body.
async fn join_session(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    uri: Uri,
    token: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // A malformed token cannot name a session: 404, and no budget spent
    // (it tells a guesser nothing).
    let token = session_token(&uri, token)?;
    let request: JoinRequest = json_body(&headers, body, state.max_body_bytes)?;
    let joined = state.sessions.join(&caller, &token, request)?;
    let mut response = Json(joined).into_response();
    state.stickiness.apply(response.headers_mut());
    Ok(response)
}

/// Stop Session, with the controller's user token.
async fn stop_session(
    State(state): State<AppState>,
    RequestCaller(caller): RequestCaller,
    uri: Uri,
    user_token: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let user_token = match user_token {
        Ok(Path(t)) if plain(&uri) => t,
        _ => String::new(),
    };
    let stopped = state.sessions.stop(&caller, &user_token)?;
    Ok(Json(stopped).into_response())
}

/// A path's session token; anything not shaped like one is simply not found.
fn session_token(uri: &Uri, path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    match path {
        Ok(Path(token)) if plain(uri) && token::is_session_token(&token) => Ok(token),
        _ => Err(ApiError::SessionNotFound),
    }
}

/// A token is read as written: the proxy budgets the paths it recognises,
/// so a percent-encoded `%30%31…` must not name a session here either.
fn plain(uri: &Uri) -> bool {
    !uri.path().contains('%')
}

/// Reads a JSON body: 415 unless the content type is JSON, 413 over the limit,
/// 400 when it does not parse into `T`.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod cometd_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod web_tests;
