//! The caps that keep one connection from making the proxy hold or scan
//! unbounded input.

/// Caps on what a peer may send. [`Default`] is 64 KiB of head, 100 headers,
/// 1 KiB of chunk extension per chunk and 8 KiB of trailers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a head, request line (or status line) and final CRLF
    /// included. Past it without a complete head: [`crate::HeadError::TooLarge`].
    /// At most `u32::MAX` is used (spans are `u32`).
    pub max_head_bytes: usize,
    /// Header lines in one head; more is [`crate::HeadError::TooManyHeaders`].
    /// Capped at [`Limits::HEADERS_CAP`] (the parser's stack slots).
    pub max_headers: usize,
    /// Bytes of one chunk's extension (after the size, before its CRLF).
    pub max_chunk_ext: usize,
    /// Bytes of the trailer section (after the last chunk's size line, the
    /// final CRLF included).
    pub max_trailer_bytes: usize,
}

impl Limits {
    /// The most headers a head can have whatever `max_headers` says: the
    /// parser keeps its header slots on the stack so a head allocates only
    /// its result.
    pub const HEADERS_CAP: usize = 256;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_chunk_ext: 1024,
            max_trailer_bytes: 8 * 1024,
        }
    }
}
