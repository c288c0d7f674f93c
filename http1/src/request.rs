//! Request heads: request line, target form, and the framing a request may
//! declare (RFC 9112 §3, §6).

use std::mem::MaybeUninit;

use crate::fields::{self, Framing};
use crate::span::{Header, Span, Version};
use crate::{HeadError, Limits};

/// The form of the request-target (RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/path?query`.
    Origin,
    /// `http://authority/path?query` (scheme `http` or `https`, any case).
    /// `path_and_query` is empty when the target has no path
    /// (`http://host`), which [`RequestHead::path`] reads as `/`.
    Absolute {
        authority: Span,
        path_and_query: Span,
    },
    /// `*`, only with OPTIONS.
    Asterisk,
    /// `host:port`, only with CONNECT.
    Authority,
}

/// How a request's body is framed. A request without either header has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head. Every [`Span`] points into the buffer it was
/// parsed from; the accessors take that buffer again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, leading empty lines and the final empty line
    /// included: the body, or the next pipelined request, starts here.
    pub len: usize,
    pub method: Span,
    pub target: Span,
    pub target_form: Target,
    pub version: Version,
    /// In order, as received.
    pub headers: Vec<Header>,
    pub body: RequestBody,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// HTTP/1.1, `Connection` lists `upgrade` and an `Upgrade` header is
    /// present (an Upgrade in HTTP/1.0 is ignored, RFC 9110 §7.8).
    pub upgrade: bool,
    /// HTTP/1.1 with `Expect: 100-continue` (ignored in HTTP/1.0, RFC 9110
    /// §10.1.1).
    pub expect_continue: bool,
    /// The value of the one `Host` header (absent in HTTP/1.0 only). For an
    /// absolute-form target the authority in `target_form` is the one that
    /// counts (RFC 9112 §3.2.2): the proxy replaces this by it.
    pub host: Option<Span>,
    connection_first: u16,
}

impl RequestHead {
    /// Parses a request head from the start of `buf`. `Ok(None)`: incomplete,
    /// read more and call again with the whole buffer. Errors are final.
    ///
    /// What is refused, beyond httparse's own grammar: both `Content-Length`
    /// and `Transfer-Encoding`; several `Content-Length` (even equal) or one
    /// that is not plain digits within u64; a `Transfer-Encoding` other than
    /// exactly one `chunked` (any case), or any in HTTP/1.0; HTTP/1.1
    /// without `Host`, or two `Host`; a target that is none of the four
    /// forms (absolute form: `http`/`https` only, no userinfo, a query
    /// needs a path: `http://h/?q`), or with a `#`; `*` without OPTIONS; a head over
    /// `max_head_bytes` even incomplete ([`HeadError::TooLarge`]), more than
    /// `max_headers` lines ([`HeadError::TooManyHeaders`]).
    ///
    /// httparse refuses obs-fold, whitespace before a colon, a bare CR, and
    /// control characters (NUL included) in names and values; obs-text
    /// (bytes ≥ 0x80) is allowed in values and targets.
    ///
    /// A bare LF ending a line is **accepted** (as httparse and nginx do):
    /// the proxy writes every line it forwards anew with CRLF, so a node
    /// never sees the bare LF, and `len` still counts the bytes as received.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, HeadError> {
        Self::parse_into(buf, limits, &mut Vec::new())
    }

    /// [`RequestHead::parse`] reusing `spare`'s allocation: on success the
    /// head takes the Vec (`spare` is left empty; get it back with
    /// [`RequestHead::into_headers`] or `mem::take(&mut head.headers)`); on
    /// `Ok(None)` or an error `spare` keeps its capacity.
    pub fn parse_into(
        buf: &[u8],
        limits: &Limits,
        spare: &mut Vec<Header>,
    ) -> Result<Option<RequestHead>, HeadError> {
        let limit = limits.max_head_bytes.min(u32::MAX as usize);
        // Never scan past the cap: a complete head beyond it is refused anyway.
        let window = &buf[..buf.len().min(limit)];
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); Limits::HEADERS_CAP];
        let slots = &mut slots[..limits.max_headers.min(Limits::HEADERS_CAP)];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(window, slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > limit => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HeadError::from_httparse(e)),
        };
        // A complete parse fills all three.
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(HeadError::Invalid("invalid request line"));
        };
        let version = Version::from_minor(minor);
        let f = fields::read(window, req.headers, version, spare);
        let body = match f.framing? {
            Framing::None => RequestBody::None,
            Framing::Length(n) => RequestBody::Length(n),
            Framing::Chunked => RequestBody::Chunked,
        };
        match (version, f.host_count) {
            (_, 2..) => return Err(HeadError::Invalid("several Host")),
            (Version::Http11, 0) => return Err(HeadError::Invalid("HTTP/1.1 without Host")),
            _ => {}
        }
        let method = Span::within(window, method.as_bytes());
        let target = Span::within(window, target.as_bytes());
        let target_form = target_form(method.of(window), target, window)?;
        let http11 = version == Version::Http11;
        Ok(Some(RequestHead {
            len,
            method,
            target,
            target_form,
            version,
            headers: std::mem::take(spare),
            body,
            keep_alive: fields::keep_alive(version, &f),
            upgrade: http11 && f.upgrade_token && f.upgrade_header,
            expect_continue: http11 && f.expect_continue,
            host: f.host,
            connection_first: f.connection_first,
        }))
    }

    pub fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.method.of(buf)
    }

    /// Path and query of an origin-form or absolute-form target (`/` for
    /// `http://host`); empty for `*` and authority form.
    pub fn path<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        match self.target_form {
            Target::Origin => self.target.of(buf),
            Target::Absolute { path_and_query, .. } if path_and_query.is_empty() => b"/",
            Target::Absolute { path_and_query, .. } => path_and_query.of(buf),
            Target::Asterisk | Target::Authority => b"",
        }
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

    /// True if `name` is hop-by-hop for this message: `Connection`,
    /// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
    /// `Transfer-Encoding`, `Upgrade`, and any name a `Connection` header
    /// lists — except `Content-Length` and `Host`, never dropped (a client
    /// listing them would have the node misread the framing).
    /// `Proxy-Authorization` is forwarded.
    ///
    /// The forwarder re-adds what it needs: `Transfer-Encoding: chunked` for
    /// a chunked body it passes through, `Connection: upgrade` + `Upgrade`
    /// for an upgrade.
    pub fn is_hop_by_hop(&self, buf: &[u8], name: &[u8]) -> bool {
        fields::is_hop_by_hop(&self.headers, self.connection_first, buf, name)
    }

    /// The headers to forward, in order: those that are not hop-by-hop.
    pub fn end_to_end<'s>(&'s self, buf: &'s [u8]) -> impl Iterator<Item = &'s Header> + 's {
        self.headers
            .iter()
            .filter(move |h| !self.is_hop_by_hop(buf, h.name.of(buf)))
    }

    /// The headers Vec, to reuse with [`RequestHead::parse_into`].
    pub fn into_headers(self) -> Vec<Header> {
        self.headers
    }
}

/// Which of the four forms the target has (RFC 9112 §3.2), checked against
/// the method.
fn target_form(method: &[u8], target: Span, buf: &[u8]) -> Result<Target, HeadError> {
    let t = target.of(buf);
    if t.contains(&b'#') {
        // httparse allows it; a fragment is never sent (RFC 9110 §4.2.5) and
        // nodes might cut the path there or not.
        return Err(HeadError::Invalid("fragment in request target"));
    }
    if method == b"CONNECT" {
        return if t.contains(&b'/') || t.contains(&b'@') {
            Err(HeadError::Invalid("CONNECT target not host:port"))
        } else {
            Ok(Target::Authority)
        };
    }
    match t.first() {
        Some(b'/') => return Ok(Target::Origin),
        Some(b'*') if t.len() == 1 => {
            return if method == b"OPTIONS" {
                Ok(Target::Asterisk)
            } else {
                Err(HeadError::Invalid("asterisk-form without OPTIONS"))
            }
        }
        _ => {}
    }
    let rest = if t.len() > 7 && t[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if t.len() > 8 && t[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return Err(HeadError::Invalid("invalid request target"));
    };
    let after = &t[rest..];
    let auth_end = after
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after.len());
    let authority = &after[..auth_end];
    if authority.is_empty() || authority.contains(&b'@') {
        return Err(HeadError::Invalid("invalid authority in request target"));
    }
    if after.get(auth_end).is_some_and(|&b| b != b'/') {
        // `http://h?q` has no slice that reads `/?q`; clients send `http://h/?q`.
        return Err(HeadError::Invalid("absolute target without a path"));
    }
    Ok(Target::Absolute {
        authority: target.slice(rest, rest + auth_end),
        path_and_query: target.slice(rest + auth_end, t.len()),
    })
}
