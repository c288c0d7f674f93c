//! A node's answer on its way to the client: the head rewritten
//! ([`crate::wire::rewrite`]) and written with the body bytes already read,
//! the rest of the body streamed by its framing, the node connection back
//! to its pool when the answer ended cleanly. A 101 turns both connections
//! into a WebSocket tunnel.

use std::time::Duration;

use futures_util::FutureExt;
use http1::ResponseBody;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::exchange::Answer;
use crate::wire::body::{BodyCopy, CopyError, Framing};
use crate::wire::buffers::Inbound;
use crate::wire::rewrite::{self, AnswerFraming};
use crate::wire::stream::ClientStream;

/// Bytes each way a tunnel reads at once at most.
const TUNNEL_BUF: usize = 16 * 1024;

/// What the client connection is like, for the answer's head.
#[derive(Debug, Clone, Copy)]
pub struct ClientSide {
    /// The request was a HEAD: the answer has no body whatever it says.
    pub head_request: bool,
    /// The proxy closes the client connection after this answer anyway.
    pub close: bool,
    /// An HTTP/1.0 client asked for keep-alive.
    pub keep_alive_10: bool,
    pub http10: bool,
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// The whole answer went out; `close`: the client connection must close
    /// now (the answer said so, or it ends at the close).
    Done { close: bool },
    /// The node's answer broke after its head went out: the client has a
    /// truncated answer, its connection must close.
    NodeBroke,
    /// The client went away.
    ClientGone,
}

/// The answer's framing, or `None` when the node framed it invalidly
/// (nothing has been written: the caller answers 502).
pub fn framing(answer: &Answer, head_request: bool) -> Option<Framing> {
    match answer.head.body(answer.buf(), head_request) {
        Ok(ResponseBody::None) => Some(Framing::Length(0)),
        Ok(ResponseBody::Length(n)) => Some(Framing::Length(n)),
        Ok(ResponseBody::Chunked) => Some(Framing::Chunked),
        Ok(ResponseBody::UntilClose) => Some(Framing::UntilClose),
        Err(error) => {
            tracing::debug!(?error, "the node's answer is framed invalidly");
            None
        }
    }
}

/// Relays a (non-101) answer framed by `framing` to `client`. `out` is a
/// scratch buffer for the head.
pub async fn relay<C>(
    mut answer: Answer,
    framing: Framing,
    client: &mut C,
    side: ClientSide,
    limits: &http1::Limits,
    out: &mut Vec<u8>,
) -> Relayed
where
    C: AsyncWrite + Unpin + ?Sized,
{
    let until_close = framing == Framing::UntilClose;
    // An HTTP/1.0 client cannot read chunks: it gets the body until close.
    let chunked_to_10 = side.http10 && framing == Framing::Chunked;
    let close = side.close || until_close || chunked_to_10 || !answer.request_done;
    let answer_framing = if framing == Framing::Chunked && !chunked_to_10 {
        AnswerFraming::Chunked
    } else {
        AnswerFraming::AsIs
    };
    out.clear();
    rewrite::response_to_client(
        out,
        answer.buf(),
        &answer.head,
        answer_framing,
        false,
        close,
        side.keep_alive_10 && !close,
    );
    let head_len = answer.head.len;
    answer.inbound.consume(head_len);
    let mut body = BodyCopy::new(framing, limits, u64::MAX);
    if chunked_to_10 {
        // Passing chunk framing to a 1.0 client would corrupt its body;
        // such clients are rare enough that dechunking is not done here:
        // the framing goes as it is and the connection closes after it.
        tracing::debug!("chunked answer to an HTTP/1.0 client");
    }
    if body.take_buffered(&mut answer.inbound, out).is_err() {
        return Relayed::NodeBroke;
    }
    if client.write_all(out).await.is_err() {
        return Relayed::ClientGone;
    }
    let copied = body
        .copy_rest(&mut answer.lease.conn.stream, &mut answer.inbound, client)
        .await;
    match copied {
        Ok(()) => {}
        Err(CopyError::Write(_)) => return Relayed::ClientGone,
        Err(error) => {
            tracing::debug!(%error, "the node's answer broke mid-body");
            return Relayed::NodeBroke;
        }
    }
    let reusable =
        !until_close && answer.head.keep_alive && answer.request_done && answer.inbound.is_empty();
    if reusable {
        answer.lease.give_back();
    }
    Relayed::Done { close }
}

/// Answers the client's upgrade with the node's 101, then copies both ways
/// ([`pump`]) until both sides close or `stop` turns true (the shutdown
/// deadline).
/// Bytes already read past either head go first.
pub async fn tunnel<C>(
    mut answer: Answer,
    client: &mut C,
    client_in: &mut Inbound,
    mut stop: watch::Receiver<bool>,
    out: &mut Vec<u8>,
) where
    C: ClientStream + ?Sized,
{
    out.clear();
    rewrite::response_to_client(
        out,
        answer.buf(),
        &answer.head,
        AnswerFraming::AsIs,
        true,
        false,
        false,
    );
    let head_len = answer.head.len;
    answer.inbound.consume(head_len);
    out.extend_from_slice(answer.inbound.data());
    answer.inbound.release();
    let upstream = &mut answer.lease.conn.stream;
    let start = async {
        client.write_all(out).await?;
        upstream.write_all(client_in.data()).await?;
        client_in.release();
        Ok::<_, std::io::Error>(())
    };
    if start.await.is_err() {
        return;
    }
    out.clear();
    out.shrink_to(0);
    tokio::select! {
        result = pump(client, upstream) => {
            if let Err(error) = result {
                tracing::debug!(%error, "tunnel closed with an error");
            }
        }
        () = crate::raised(&mut stop) => {
            tracing::debug!("tunnel cut at shutdown");
        }
    }
}

/// Copies both ways until both sides have closed (a side that closes has
/// the other's write side shut). An idle tunnel holds no buffer: each side
/// waits for readability, then reads into a pooled buffer that goes back
/// once written to the other side.
async fn pump<C>(client: &mut C, upstream: &mut TcpStream) -> std::io::Result<()>
where
    C: ClientStream + ?Sized,
{
    let mut from_client = Inbound::new();
    let mut from_node = Inbound::new();
    let (mut client_open, mut node_open) = (true, true);
    while client_open || node_open {
        // A read never waits inside a branch: readiness can be stale, and
        // a read that waited would stall the other direction until this
        // side spoke again. Nothing there: back to waiting on both.
        tokio::select! {
            ready = client.ready(), if client_open => {
                ready?;
                match from_client.read_from(client, TUNNEL_BUF).now_or_never() {
                    None => from_client.release(),
                    Some(read) => {
                        if read? == 0 {
                            client_open = false;
                            upstream.shutdown().await?;
                        } else {
                            upstream.write_all(from_client.data()).await?;
                            from_client.release();
                        }
                    }
                }
            }
            ready = upstream.readable(), if node_open => {
                ready?;
                match from_node.read_from(upstream, TUNNEL_BUF).now_or_never() {
                    None => from_node.release(),
                    Some(read) => {
                        if read? == 0 {
                            node_open = false;
                            client.shutdown().await?;
                        } else {
                            client.write_all(from_node.data()).await?;
                            from_node.release();
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// How long a closing connection is read from (and what is read dropped)
/// after the last answer, so that the client reads that answer rather than
/// a reset.
pub const LINGER: Duration = Duration::from_secs(1);
