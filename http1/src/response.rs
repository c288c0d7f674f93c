//! Response heads from a node, and how their body is framed (RFC 9112 §6.3).

use std::mem::MaybeUninit;

use crate::fields::{self, Framing};
use crate::span::{Header, Span, Version};
use crate::{HeadError, Limits};

/// How a response's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    None,
    Length(u64),
    Chunked,
    /// Until the node closes: the connection cannot be reused after it.
    UntilClose,
}

/// A parsed response head. Every [`Span`] points into the buffer it was
/// parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head, final empty line included: the body starts here.
    pub len: usize,
    /// 100..=599.
    pub status: u16,
    /// Empty if the node sent none (or one httparse found invalid).
    pub reason: Span,
    pub version: Version,
    pub headers: Vec<Header>,
    /// From version and `Connection` only. A body framed
    /// [`ResponseBody::UntilClose`] also ends the connection.
    pub keep_alive: bool,
    framing: Result<Framing, HeadError>,
    connection_first: u16,
}

impl ResponseHead {
    /// Parses a response head from the start of `buf`. `Ok(None)`:
    /// incomplete. Errors are final. The same caps and grammar as
    /// [`crate::RequestHead::parse`] (bare LF accepted, obs-fold refused);
    /// a status outside 100..=599 is refused. Framing headers are judged by
    /// [`ResponseHead::body`], which needs to know the request.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<ResponseHead>, HeadError> {
        Self::parse_into(buf, limits, &mut Vec::new())
    }

    /// [`ResponseHead::parse`] reusing `spare`'s allocation, as
    /// [`crate::RequestHead::parse_into`].
    pub fn parse_into(
        buf: &[u8],
        limits: &Limits,
        spare: &mut Vec<Header>,
    ) -> Result<Option<ResponseHead>, HeadError> {
        let limit = limits.max_head_bytes.min(u32::MAX as usize);
        let window = &buf[..buf.len().min(limit)];
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); Limits::HEADERS_CAP];
        let slots = &mut slots[..limits.max_headers.min(Limits::HEADERS_CAP)];
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, window, slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > limit => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HeadError::from_httparse(e)),
        };
        let (Some(minor), Some(status)) = (res.version, res.code) else {
            return Err(HeadError::Invalid("invalid status line"));
        };
        if !(100..=599).contains(&status) {
            return Err(HeadError::Invalid("status code out of range"));
        }
        let version = Version::from_minor(minor);
        let reason = res
            .reason
            .map(|r| Span::within(window, r.as_bytes()))
            .unwrap_or_default();
        let f = fields::read(window, res.headers, version, spare);
        Ok(Some(ResponseHead {
            len,
            status,
            reason,
            version,
            headers: std::mem::take(spare),
            keep_alive: fields::keep_alive(version, &f),
            framing: f.framing,
            connection_first: f.connection_first,
        }))
    }

    /// The framing of this response's body (RFC 9112 §6.3): none for a HEAD
    /// request, 1xx, 204 and 304 whatever the headers say; chunked for
    /// `Transfer-Encoding: chunked`; `Content-Length`; else until close.
    ///
    /// Invalid framing headers are an error even where they do not frame
    /// the body (a HEAD answer, a 304): the proxy relays those headers to the
    /// client, which must not be handed an ambiguity either. Unlike RFC 9112
    /// §6.3's leniency for responses, `Content-Length` with
    /// `Transfer-Encoding`, several `Content-Length`, or a transfer coding
    /// other than `chunked` is an error (a 502), never "read until close".
    pub fn body(&self, _buf: &[u8], request_was_head: bool) -> Result<ResponseBody, HeadError> {
        let framing = self.framing?;
        if request_was_head || self.status < 200 || self.status == 204 || self.status == 304 {
            return Ok(ResponseBody::None);
        }
        Ok(match framing {
            Framing::None => ResponseBody::UntilClose,
            Framing::Length(n) => ResponseBody::Length(n),
            Framing::Chunked => ResponseBody::Chunked,
        })
    }

    pub fn reason<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.reason.of(buf)
    }

    /// The first value of header `name`, case-insensitive.
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        fields::first(&self.headers, buf, name)
    }

    /// Every value of header `name`, in order.
    pub fn headers_named<'s, 'a, 'n>(
        &'s self,
        buf: &'a [u8],
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'s, 'a, 'n> {
        fields::named(&self.headers, buf, name.as_bytes())
    }

    /// As [`crate::RequestHead::is_hop_by_hop`].
    pub fn is_hop_by_hop(&self, buf: &[u8], name: &[u8]) -> bool {
        fields::is_hop_by_hop(&self.headers, self.connection_first, buf, name)
    }

    /// The headers to relay, in order: those that are not hop-by-hop.
    pub fn end_to_end<'s>(&'s self, buf: &'s [u8]) -> impl Iterator<Item = &'s Header> + 's {
        self.headers
            .iter()
            .filter(move |h| !self.is_hop_by_hop(buf, h.name.of(buf)))
    }

    /// The headers Vec, to reuse with [`ResponseHead::parse_into`].
    pub fn into_headers(self) -> Vec<Header> {
        self.headers
    }
}
