//! The two Bayeux transports, thin around [`crate::cometd::Bayeux`]: they parse batches,
//! hand them to the engine, hold `/meta/connect`, and write answers back.
//!
//! - long-polling: `POST <ctx>/cometd` (and `<ctx>/cometd/<type>`, which the
//!   CometD client uses when it appends the message type to the URL);
//! - WebSocket: `GET <ctx>/cometd` with an upgrade; each text frame is a batch.
//!
//! Both answer with the `gcbSessionServer` cookie and header when the batch
//! handshook, created or joined a session (for WebSocket, on the upgrade
//! answer), so the client's next requests stick to this node.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared_types::bayeux::{self, Message};
use tokio::sync::Notify;

use super::caller::ClientIp;
use crate::cometd::{Bayeux, HeldConnect, Transport};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest Bayeux batch accepted on either transport (page content travels
/// in these), in bytes.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Initial read buffer of a WebSocket client.
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// `POST <ctx>/cometd[/…]`: one long-polling request.
pub async fn long_polling(
    State(state): State<AppState>,
    ClientIp(peer): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: MAX_BATCH_BYTES,
            }
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let batch = bayeux::parse_batch(&body)
        .map_err(|e| ApiError::InvalidJson(format!("not a Bayeux batch: {e}")))?;
    let outcome = state.bayeux.handle(batch, Transport::LongPolling, peer);
    let mut answer = outcome.replies;
    if let Some(held) = outcome.connect {
        answer.extend(state.bayeux.hold(held).await);
    }
    let mut response = Json(answer).into_response();
    if outcome.stick {
        state.stickiness.apply(response.headers_mut());
    }
    Ok(response)
}

/// `GET <ctx>/cometd` with `Upgrade: websocket`. Browsers apply no CORS to
/// WebSockets, so the node does: an upgrade whose `Origin` is not an
/// allowed origin is refused (403 `origin_not_allowed`), as a long-polling
/// page from that origin would be by its preflight. Without an `Origin`
/// (not a browser page) the upgrade is served, as REST is.
pub async fn websocket(
    State(state): State<AppState>,
    ClientIp(peer): ClientIp,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if headers.contains_key(axum::http::header::ORIGIN) && state.origins.check(&headers).is_none() {
        return ApiError::OriginNotAllowed.into_response();
    }
    let Ok(upgrade) = upgrade else {
        return ApiError::BadRequest(
            "the Bayeux endpoint takes a WebSocket upgrade (GET) or a long-polling POST".into(),
        )
        .into_response();
    };
    let bayeux = Arc::clone(&state.bayeux);
    // axum's default buffers are 128 KiB each, and the read buffer is filled
    // at once: ~137 KB of memory per idle client. Batches are small; the
    // buffers grow when a large one comes.
    let mut response = upgrade
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_BATCH_BYTES)
        .on_upgrade(move |socket| serve_socket(bayeux, socket, peer));
    state.stickiness.apply(response.headers_mut());
    response
}

/// One WebSocket: batches in, replies and deliveries out, the connect held.
async fn serve_socket(bayeux: Arc<Bayeux>, mut socket: WebSocket, peer: IpAddr) {
    let mut client: Option<String> = None;
    let mut notify: Option<Arc<Notify>> = None;
    let mut pending: Option<HeldConnect> = None;
    loop {
        // Register for wake-ups before looking at the queue, so a message
        // queued in between still wakes us (`notify_waiters` keeps no permit).
        let wake = notify.clone();
        let mut registered = wake.as_deref().map(|n| Box::pin(n.notified()));
        if let Some(n) = registered.as_mut() {
            n.as_mut().enable();
        }
        let notified = async {
            match registered.as_mut() {
                Some(n) => n.as_mut().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(notified);
        if let Some(id) = &client {
            let queued = bayeux.drain_queue(id);
            if !queued.is_empty() && send(&mut socket, &queued).await.is_err() {
                break;
            }
        }
        let deadline = pending.as_ref().map(|h| h.deadline);
        let connect_due = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Ok(WsMessage::Binary(_))) => {
                        let error = [Message { successful: Some(false), error: Some("400::binary frames are not Bayeux".into()), ..Message::default() }];
                        if send(&mut socket, &error).await.is_err() { break; }
                        continue;
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                };
                // Lengths only: frames carry credentials, keys and page content.
                tracing::trace!(bytes = text.len(), "websocket batch");
                let batch = match bayeux::parse_batch(text.as_bytes()) {
                    Ok(batch) => batch,
                    Err(e) => {
                        let error = [Message { successful: Some(false), error: Some(format!("400::not a Bayeux batch: {e}")), ..Message::default() }];
                        if send(&mut socket, &error).await.is_err() { break; }
                        continue;
                    }
                };
                let outcome = bayeux.handle(batch, Transport::WebSocket, peer);
                // The socket carries the client the batch spoke for: the
                // first one, or a new one after a handshake again (a client
                // that was dropped and told to handshake).
                if let Some(id) = outcome.client_id.clone() {
                    if client.as_deref() != Some(id.as_str()) {
                        if let Some(fresh) = bayeux.notifier(&id) {
                            if let Some(old) = client.take() {
                                bayeux.set_attached(&old, false);
                            }
                            bayeux.set_attached(&id, true);
                            notify = Some(fresh);
                            client = Some(id);
                        }
                    }
                }
                let mut answer = outcome.replies;
                if let Some(held) = outcome.connect {
                    if let Some(older) = pending.replace(held) {
                        answer.extend(bayeux.finish_connect(older));
                    }
                }
                if !answer.is_empty() && send(&mut socket, &answer).await.is_err() {
                    break;
                }
            }
            () = &mut notified => {}
            () = connect_due => {
                if let Some(held) = pending.take() {
                    let answer = bayeux.finish_connect(held);
                    if send(&mut socket, &answer).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    if let Some(id) = client {
        bayeux.set_attached(&id, false);
    }
}

async fn send(socket: &mut WebSocket, messages: &[Message]) -> Result<(), axum::Error> {
    let text = serde_json::to_string(messages).unwrap_or_else(|_| "[]".to_owned());
    tracing::trace!(bytes = text.len(), "websocket answer");
    socket.send(WsMessage::Text(text.into())).await
}
