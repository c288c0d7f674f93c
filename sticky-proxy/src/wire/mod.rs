//! The proxy's HTTP/1 layer over the strict parser of the [`http1`] crate:
//! pooled read buffers, the head edits on the way through, framed bodies
//! streamed in both directions, and the proxy's own answers as bytes.

pub mod answer;
pub mod body;
pub mod buffers;
pub mod headers;
pub mod rewrite;
