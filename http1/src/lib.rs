//! The proxy's HTTP/1.1 protocol layer: strict parsing of request and
//! response heads on `httparse`, and validation of chunked bodies that are
//! passed through verbatim. Pure functions over byte slices — no I/O, no
//! async, no allocation besides one `Vec<Header>` per head (reusable with
//! `parse_into`).
//!
//! Map:
//! - `limits`: [`Limits`] (head size, header count, chunk extension, trailers).
//! - `span`: [`Span`], [`Header`], [`Version`] — offsets into the caller's
//!   buffer instead of copies, so a head costs no string building.
//! - `error`: [`HeadError`] (with the status to answer) and [`ChunkError`].
//! - `fields`: what the headers say, read in one pass: framing, `Connection`
//!   tokens, `Host`, `Expect`, hop-by-hop names.
//! - `request`: [`RequestHead`] and its request-target forms ([`Target`]).
//! - `response`: [`ResponseHead`] and its body framing (RFC 9112 §6.3).
//! - `chunked`: [`ChunkedScanner`], an incremental validator of chunk framing.
//!
//! Strictness is the point: a proxy that reads a message's end differently
//! from its backend can be used to smuggle a second request, so every
//! ambiguous framing is an error rather than a guess. The one leniency is a
//! bare LF ending a head line (see [`RequestHead::parse`]).

mod chunked;
mod error;
mod fields;
mod limits;
mod request;
mod response;
mod span;

pub use chunked::{ChunkedScanner, Scan};
pub use error::{ChunkError, HeadError};
pub use limits::Limits;
pub use request::{RequestBody, RequestHead, Target};
pub use response::{ResponseBody, ResponseHead};
pub use span::{Header, Span, Version};
