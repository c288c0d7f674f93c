//! Why a head or a chunked body was refused. Each error is final: the
//! connection cannot be resynchronised after a framing error, so the proxy
//! answers (or reports a bad gateway) and closes.

use std::fmt;

/// A head the proxy refuses. [`HeadError::status`] is the answer to a client;
/// from a node every one of them is a bad gateway (502), the proxy's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than `Limits::max_head_bytes` (complete or not).
    TooLarge,
    /// More header lines than `Limits::max_headers`.
    TooManyHeaders,
    /// Malformed or ambiguous; a short reason for logs (never the peer's bytes).
    Invalid(&'static str),
}

impl HeadError {
    /// 431 for a head over the caps, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::Invalid(_) => 400,
        }
    }

    /// A short reason for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            HeadError::TooLarge => "head too large",
            HeadError::TooManyHeaders => "too many headers",
            HeadError::Invalid(why) => why,
        }
    }

    pub(crate) fn from_httparse(e: httparse::Error) -> HeadError {
        match e {
            httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
            httparse::Error::HeaderName => HeadError::Invalid("invalid header name"),
            httparse::Error::HeaderValue => HeadError::Invalid("invalid header value"),
            httparse::Error::NewLine => HeadError::Invalid("invalid line ending"),
            httparse::Error::Status => HeadError::Invalid("invalid status line"),
            httparse::Error::Token => HeadError::Invalid("invalid request line"),
            httparse::Error::Version => HeadError::Invalid("invalid HTTP version"),
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HeadError {}

/// Chunk framing the proxy refuses. From a client: 400; from a node: 502.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// Not a hex digit where a chunk size starts, junk after the size (also
    /// whitespace), or a control character in a chunk extension.
    BadSize,
    /// More than 16 hex digits (beyond u64).
    SizeOverflow,
    /// A chunk extension longer than `Limits::max_chunk_ext`.
    ExtensionTooLong,
    /// A line not ended by CRLF (bare LF, bare CR, or data longer than its size).
    BadLineEnd,
    /// The trailer section is longer than `Limits::max_trailer_bytes`.
    TrailersTooLarge,
    /// A trailer line that is not `name: value`.
    BadTrailer,
}

impl ChunkError {
    pub fn reason(&self) -> &'static str {
        match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::SizeOverflow => "chunk size overflows",
            ChunkError::ExtensionTooLong => "chunk extension too long",
            ChunkError::BadLineEnd => "chunk line not ended by CRLF",
            ChunkError::TrailersTooLarge => "trailers too large",
            ChunkError::BadTrailer => "invalid trailer line",
        }
    }
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ChunkError {}
