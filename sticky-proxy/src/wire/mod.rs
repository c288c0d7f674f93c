//! The proxy's HTTP/1 layer over the strict parser of the [`http1`] crate:
//! pooled read buffers, the head edits on the way through, framed bodies
//! streamed in both directions, the proxy's own answers as bytes, and the
//! client streams (plain or TLS) they run over.

pub mod answer;
pub mod body;
pub mod buffers;
pub mod headers;
pub mod rewrite;
pub mod stream;
