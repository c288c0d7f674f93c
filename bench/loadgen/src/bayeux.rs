//! A minimal Bayeux client over WebSocket: one JSON array of messages per
//! text frame, as the node's transport speaks it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use shared_types::bayeux::{
    parse_batch, Message, META_CONNECT, META_DISCONNECT, META_HANDSHAKE, WEBSOCKET,
};
use shared_types::names::SESSION_SERVER;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Context, Result};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The Bayeux WebSocket URL under `base` (`http://host:port` or
/// `ws://host:port`, optionally with a path prefix) and `context_path`, with
/// `?gcbSessionServer=<node>` when `node` is given.
pub fn websocket_url(base: &str, context_path: &str, node: Option<&str>) -> Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        rest
    } else if let Some(rest) = base.strip_prefix("ws://") {
        rest
    } else if base.starts_with("https://") || base.starts_with("wss://") {
        return Err(format!("{base}: TLS is not supported by this load generator").into());
    } else {
        return Err(format!("{base}: expected http://host:port or ws://host:port").into());
    };
    if rest.is_empty() || rest.contains('?') || rest.contains('#') {
        return Err(format!("{base}: expected http://host:port[/prefix]").into());
    }
    let context = context_path.trim_matches('/');
    let mut url = format!("ws://{rest}");
    if !context.is_empty() {
        url.push('/');
        url.push_str(context);
    }
    url.push_str("/cometd");
    if let Some(node) = node {
        url.push_str(&format!("?{SESSION_SERVER}={node}"));
    }
    Ok(url)
}

/// The node a URL names with `gcbSessionServer=`, if any.
pub fn node_in_url(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(SESSION_SERVER)?.strip_prefix('='))
}

/// Socket buffers: tungstenite allocates its read buffer eagerly (128 KiB by
/// default), which would dwarf what is measured when thousands of sockets
/// are open; frames are written at once (no write batching).
pub fn socket_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
}

/// Opens a WebSocket to `url` (TCP_NODELAY set: latency is measured).
pub async fn open(url: &str, config: WebSocketConfig) -> Result<Socket> {
    let (socket, _response) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .context(format_args!("WebSocket to {url}"))?;
    Ok(socket)
}

/// Sends one batch as one text frame.
pub async fn send(socket: &mut Socket, batch: &[Message]) -> Result<()> {
    let text = serde_json::to_string(batch).context("encoding a batch")?;
    socket
        .send(Frame::text(text))
        .await
        .context("sending a frame")?;
    Ok(())
}

/// The next batch; `Ok(None)` when the server closed the socket. Control
/// frames are skipped (tungstenite answers pings itself).
pub async fn receive(socket: &mut Socket) -> Result<Option<Vec<Message>>> {
    loop {
        match socket.next().await {
            Some(Ok(Frame::Text(text))) => {
                return Ok(Some(
                    parse_batch(text.as_bytes()).context("a frame that is not a Bayeux batch")?,
                ))
            }
            Some(Ok(Frame::Binary(_))) => return Err("unexpected binary frame".into()),
            Some(Ok(Frame::Close(_))) | None => return Ok(None),
            Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => {}
            Some(Err(e)) => return Err(format!("receiving: {e}").into()),
        }
    }
}

/// Reads until the reply to `channel`/`id` (skipping everything else) and
/// fails if it is unsuccessful.
async fn reply(
    socket: &mut Socket,
    channel: &str,
    id: &Value,
    timeout: Duration,
) -> Result<Message> {
    let wait = async {
        loop {
            let Some(batch) = receive(socket).await? else {
                return Err(format!("socket closed while waiting for the {channel} reply").into());
            };
            if let Some(m) = batch
                .into_iter()
                .find(|m| m.channel == channel && m.id.as_ref() == Some(id))
            {
                return if m.successful == Some(true) {
                    Ok(m)
                } else {
                    Err(format!(
                        "{channel} refused: {}",
                        m.error.as_deref().unwrap_or("(no error given)")
                    )
                    .into())
                };
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.map_err(|_| {
        format!(
            "no {channel} reply within {}",
            humantime::format_duration(timeout)
        )
    })?
}

/// A handshaken Bayeux client on its own socket.
#[derive(Debug)]
pub struct Client {
    pub socket: Socket,
    pub client_id: String,
    /// The node that answered (`ext.gcbSessionServer` of the handshake).
    pub node: Option<String>,
    next_id: u64,
}

impl Client {
    /// Handshakes on `socket` (WebSocket transport only).
    pub async fn handshake(mut socket: Socket, timeout: Duration) -> Result<Self> {
        let id = json!("1");
        let request = Message {
            channel: META_HANDSHAKE.into(),
            id: Some(id.clone()),
            version: Some("1.0".into()),
            supported_connection_types: Some(vec![WEBSOCKET.into()]),
            ..Message::default()
        };
        send(&mut socket, &[request]).await?;
        let answer = reply(&mut socket, META_HANDSHAKE, &id, timeout).await?;
        let client_id = answer
            .client_id
            .ok_or("handshake answered without a clientId")?;
        let node = answer
            .ext
            .as_ref()
            .and_then(|ext| ext.get(SESSION_SERVER))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Self {
            socket,
            client_id,
            node,
            next_id: 2,
        })
    }

    /// A message of this client on `channel`.
    pub fn message(&self, channel: &str) -> Message {
        Message {
            channel: channel.into(),
            client_id: Some(self.client_id.clone()),
            ..Message::default()
        }
    }

    /// Sends `message` with a fresh id and waits for its (successful) reply.
    /// A service call is answered by its result and then an acknowledgement
    /// with the same id: this returns the result; the acknowledgement is
    /// skipped later like any stray message.
    pub async fn call(&mut self, mut message: Message, timeout: Duration) -> Result<Message> {
        let id = json!(self.next_id.to_string());
        self.next_id += 1;
        message.id = Some(id.clone());
        if message.client_id.is_none() {
            message.client_id = Some(self.client_id.clone());
        }
        let channel = message.channel.clone();
        send(&mut self.socket, &[message]).await?;
        reply(&mut self.socket, &channel, &id, timeout).await
    }

    /// The first `/meta/connect` (answered at once), waited for.
    pub async fn first_connect(&mut self, timeout: Duration) -> Result<Message> {
        let mut connect = self.message(META_CONNECT);
        connect.connection_type = Some(WEBSOCKET.into());
        connect.advice = Some(json!({"timeout": 0}));
        self.call(connect, timeout).await
    }

    /// Sends a `/meta/connect` the server holds (its reply comes at the
    /// server's timeout, or earlier when replaced).
    pub async fn send_connect(&mut self) -> Result<()> {
        let mut connect = self.message(META_CONNECT);
        connect.connection_type = Some(WEBSOCKET.into());
        send(&mut self.socket, &[connect]).await
    }

    /// Sends `batch` as one frame.
    pub async fn send(&mut self, batch: &[Message]) -> Result<()> {
        send(&mut self.socket, batch).await
    }

    /// The next batch; `Ok(None)` once closed.
    pub async fn receive(&mut self) -> Result<Option<Vec<Message>>> {
        receive(&mut self.socket).await
    }

    /// Leaves politely: `extra` messages then `/meta/disconnect` in one
    /// frame, waits (at most `timeout`) for the disconnect reply, closes the
    /// socket. Errors are ignored: the run is over.
    pub async fn leave(mut self, extra: Vec<Message>, timeout: Duration) {
        let id = json!(self.next_id.to_string());
        let mut batch = extra;
        batch.push(Message {
            id: Some(id.clone()),
            ..self.message(META_DISCONNECT)
        });
        if send(&mut self.socket, &batch).await.is_ok() {
            let _ = reply(&mut self.socket, META_DISCONNECT, &id, timeout).await;
        }
        let _ = tokio::time::timeout(timeout, self.socket.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_the_base() {
        assert_eq!(
            websocket_url("http://127.0.0.1:8700", "/cobrowse", None).unwrap(),
            "ws://127.0.0.1:8700/cobrowse/cometd"
        );
        assert_eq!(
            websocket_url("ws://h:1/", "cobrowse/", Some("node-2")).unwrap(),
            "ws://h:1/cobrowse/cometd?gcbSessionServer=node-2"
        );
        assert_eq!(
            websocket_url("http://h:1/pre", "", None).unwrap(),
            "ws://h:1/pre/cometd"
        );
        assert!(websocket_url("https://h", "/c", None).is_err());
        assert!(websocket_url("h:1", "/c", None).is_err());
    }

    #[test]
    fn node_is_read_from_the_query() {
        assert_eq!(
            node_in_url("ws://h/c/cometd?a=1&gcbSessionServer=node-1"),
            Some("node-1")
        );
        assert_eq!(node_in_url("ws://h/c/cometd"), None);
        assert_eq!(node_in_url("ws://h/c/cometd?gcbSessionServerX=1"), None);
    }
}
