//! A node's answer on its way to the client: the head rewritten
//! ([`crate::wire::rewrite`]) and written with the body bytes already read,
//! the rest of the body streamed by its framing, the node connection back
//! to its pool when the answer ended cleanly. A 101 turns both connections
//! into a WebSocket tunnel.

use std::time::Duration;

use http1::ResponseBody;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::exchange::Answer;
use crate::wire::body::{BodyCopy, CopyError, Framing};
use crate::wire::buffers::Inbound;
use crate::wire::rewrite::{self, AnswerFraming};

/// Bytes each way a tunnel reads at once. Small: most WebSocket frames of
/// a co-browse session are a few hundred bytes.
const TUNNEL_BUF: usize = 4096;

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
/// until either side closes or `stop` turns true (the shutdown deadline).
/// Bytes already read past either head go first.
pub async fn tunnel<C>(
    mut answer: Answer,
    client: &mut C,
    client_in: &mut Inbound,
    mut stop: watch::Receiver<bool>,
    out: &mut Vec<u8>,
) where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
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
        result = tokio::io::copy_bidirectional_with_sizes(client, upstream, TUNNEL_BUF, TUNNEL_BUF) => {
            if let Err(error) = result {
                tracing::debug!(%error, "tunnel closed with an error");
            }
        }
        () = crate::raised(&mut stop) => {
            tracing::debug!("tunnel cut at shutdown");
        }
    }
}

/// How long a closing connection is read from (and what is read dropped)
/// after the last answer, so that the client reads that answer rather than
/// a reset.
pub const LINGER: Duration = Duration::from_secs(1);
