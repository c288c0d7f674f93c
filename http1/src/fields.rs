//! What the headers of a head say, read in the same pass that turns
//! httparse's slices into spans: framing (`Content-Length`,
//! `Transfer-Encoding`), `Connection` tokens, `Host`, `Expect`, `Upgrade`.
//! Shared by requests and responses; each decides what is an error.

use crate::span::{Header, Span, Version};
use crate::HeadError;

/// "No such header" for a `u16` index.
pub(crate) const NONE: u16 = u16::MAX;

/// The framing a head declares, before the message kind decides (a response
/// to HEAD, a 204…).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// One pass over the headers.
#[derive(Debug)]
pub(crate) struct Fields {
    pub framing: Result<Framing, HeadError>,
    pub close: bool,
    pub keep_alive_token: bool,
    pub upgrade_token: bool,
    pub upgrade_header: bool,
    /// Index of the first `Connection` header that lists a name other than
    /// `close`, `keep-alive` or `upgrade` (NONE if none): hop-by-hop
    /// look-ups scan the headers only then, and only from there — the
    /// usual `Connection: keep-alive` costs them nothing.
    pub connection_first: u16,
    pub host: Option<Span>,
    pub host_count: u32,
    pub expect_continue: bool,
}

/// Converts httparse's headers into spans into `buf` (pushed on `out`) and
/// reads what they say about the message.
pub(crate) fn read(
    buf: &[u8],
    parsed: &[httparse::Header<'_>],
    version: Version,
    out: &mut Vec<Header>,
) -> Fields {
    out.clear();
    out.reserve(parsed.len());
    let mut f = Fields {
        framing: Ok(Framing::None),
        close: false,
        keep_alive_token: false,
        upgrade_token: false,
        upgrade_header: false,
        connection_first: NONE,
        host: None,
        host_count: 0,
        expect_continue: false,
    };
    let mut length: Option<Result<u64, HeadError>> = None;
    let mut length_count = 0u32;
    let mut te_count = 0u32;
    let mut te_chunked = false;
    for (i, h) in parsed.iter().enumerate() {
        let name = h.name.as_bytes();
        let header = Header {
            name: Span::within(buf, name),
            value: Span::within(buf, h.value),
        };
        out.push(header);
        // Dispatch on length first: most headers match none of these names
        // and cost one compare.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                f.host_count += 1;
                if f.host.is_none() {
                    f.host = Some(header.value);
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                f.expect_continue |= h.value.eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => f.upgrade_header = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        f.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        f.keep_alive_token = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        f.upgrade_token = true;
                    } else if f.connection_first == NONE {
                        f.connection_first = i as u16;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                length_count += 1;
                length = Some(content_length(h.value));
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                te_count += 1;
                te_chunked = h.value.eq_ignore_ascii_case(b"chunked");
            }
            _ => {}
        }
    }
    f.framing = match (length, te_count) {
        (None, 0) => Ok(Framing::None),
        (Some(_), 1..) => Err(HeadError::Invalid(
            "both Content-Length and Transfer-Encoding",
        )),
        (Some(_), 0) if length_count > 1 => Err(HeadError::Invalid("several Content-Length")),
        (Some(length), 0) => length.map(Framing::Length),
        (None, 2..) => Err(HeadError::Invalid("several Transfer-Encoding")),
        // One Transfer-Encoding from here on.
        (None, _) if version == Version::Http10 => {
            Err(HeadError::Invalid("Transfer-Encoding in HTTP/1.0"))
        }
        (None, _) if te_chunked => Ok(Framing::Chunked),
        (None, _) => Err(HeadError::Invalid("Transfer-Encoding other than chunked")),
    };
    f
}

/// `1*DIGIT` only: no sign, no list (`5, 5`), no whitespace inside, no
/// overflow — anything a backend might read another way.
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    const BAD: HeadError = HeadError::Invalid("invalid Content-Length");
    if value.is_empty() {
        return Err(BAD);
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(BAD);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(BAD)?;
    }
    Ok(n)
}

/// The comma-separated tokens of a list value, trimmed, empty ones skipped.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// The first value of header `name` (case-insensitive).
pub(crate) fn first<'a>(headers: &[Header], buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    named(headers, buf, name.as_bytes()).next()
}

/// Every value of header `name`, in order.
pub(crate) fn named<'h, 'a, 'n>(
    headers: &'h [Header],
    buf: &'a [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + use<'h, 'a, 'n> {
    headers.iter().filter_map(move |h| {
        let n = h.name.of(buf);
        (n.len() == name.len() && n.eq_ignore_ascii_case(name)).then(|| h.value.of(buf))
    })
}

/// Hop-by-hop for this message: the fixed list of RFC 9110 §7.6.1 (plus the
/// non-standard `Proxy-Connection`), and any name a `Connection` header lists
/// — except `Content-Length` and `Host`, which a client could otherwise have
/// the proxy strip so that the node reads the body as a second request, or
/// routes by nothing.
pub(crate) fn is_hop_by_hop(
    headers: &[Header],
    connection_first: u16,
    buf: &[u8],
    name: &[u8],
) -> bool {
    let fixed: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"trailer", b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        16 => &[b"proxy-connection"],
        17 => &[b"transfer-encoding"],
        4 if name.eq_ignore_ascii_case(b"host") => return false,
        14 if name.eq_ignore_ascii_case(b"content-length") => return false,
        _ => &[],
    };
    if fixed.iter().any(|f| name.eq_ignore_ascii_case(f)) {
        return true;
    }
    if connection_first == NONE {
        return false;
    }
    let from = usize::from(connection_first);
    named(headers.get(from..).unwrap_or_default(), buf, b"connection")
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(name)))
}

/// `keep_alive` by version and `Connection` tokens (RFC 9112 §9.3).
pub(crate) fn keep_alive(version: Version, f: &Fields) -> bool {
    match version {
        Version::Http11 => !f.close,
        Version::Http10 => f.keep_alive_token && !f.close,
    }
}
