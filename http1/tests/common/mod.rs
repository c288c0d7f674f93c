//! Generators of valid messages for the property tests, and a reference
//! reading of chunked bodies: written for obviousness, not speed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

/// A chunked body as bytes, with the data it carries.
#[derive(Clone, Debug)]
pub struct Chunked {
    pub bytes: Vec<u8>,
    pub data_len: u64,
    /// Positions of the framing bytes (all but chunk data): where a
    /// mutation is worth making.
    pub framing: Vec<usize>,
    /// The longest extension (`;` included) and the trailer section's size:
    /// the limits at which this body is just valid.
    pub max_ext: usize,
    pub trailer_bytes: usize,
}

fn chunk_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..40),
        1 => (any::<u8>(), 200usize..3000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn extension() -> impl Strategy<Value = String> {
    "(;[a-z]{1,8}(=([a-z0-9]{1,8}|\"[a-z ;=]{0,8}\"))?){1,3}"
}

/// A valid chunked body: random chunk sizes (hex in either case, leading
/// zeros), extensions, and trailers.
pub fn chunked() -> impl Strategy<Value = Chunked> {
    let zeros = prop_oneof![3 => 0usize..3, 1 => 10usize..16];
    let chunk = (
        chunk_data(),
        prop::option::of(extension()),
        any::<bool>(),
        zeros,
    );
    let trailer = (
        "[A-Za-z0-9-]{1,12}",
        "[ \t]{0,2}",
        "[!-~]([ -~]{0,20}[!-~])?",
    );
    (
        prop::collection::vec(chunk, 0..6),
        prop::option::of(extension()),
        prop::collection::vec(trailer, 0..3),
    )
        .prop_map(|(chunks, last_ext, trailers)| {
            let mut bytes = Vec::new();
            let mut framing = Vec::new();
            let mut frame = |bytes: &mut Vec<u8>, part: &[u8]| {
                framing.extend(bytes.len()..bytes.len() + part.len());
                bytes.extend(part);
            };
            let mut data_len = 0;
            let mut max_ext = 0;
            for (data, ext, upper, zeros) in chunks {
                let size = if upper {
                    format!("{:X}", data.len())
                } else {
                    format!("{:x}", data.len())
                };
                // At most 16 digits in all.
                let zeros = "0".repeat(zeros.min(16 - size.len()));
                let ext = ext.unwrap_or_default();
                max_ext = max_ext.max(ext.len());
                frame(&mut bytes, format!("{zeros}{size}{ext}\r\n").as_bytes());
                bytes.extend(&data);
                frame(&mut bytes, b"\r\n");
                data_len += data.len() as u64;
            }
            let last_ext = last_ext.unwrap_or_default();
            max_ext = max_ext.max(last_ext.len());
            frame(&mut bytes, format!("0{last_ext}\r\n").as_bytes());
            let trailers_start = bytes.len();
            for (name, ows, value) in trailers {
                frame(&mut bytes, format!("{name}:{ows}{value}\r\n").as_bytes());
            }
            frame(&mut bytes, b"\r\n");
            let trailer_bytes = bytes.len() - trailers_start;
            Chunked {
                bytes,
                data_len,
                framing,
                max_ext,
                trailer_bytes,
            }
        })
}

#[derive(Clone, Debug)]
pub enum Body {
    None,
    Length(Vec<u8>),
    Chunked(Chunked),
}

/// A valid HTTP/1.1 request: head, body, and what the parser must report.
#[derive(Clone, Debug)]
pub struct Request {
    pub head: Vec<u8>,
    pub method: String,
    pub target: String,
    /// Every header, in order, values as the parser must report them.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    pub fn body_bytes(&self) -> &[u8] {
        match &self.body {
            Body::None => b"",
            Body::Length(b) => b,
            Body::Chunked(c) => &c.bytes,
        }
    }

    /// Head, body, and a pipelined request after them.
    pub fn wire(&self) -> Vec<u8> {
        let mut all = self.head.clone();
        all.extend(self.body_bytes());
        all.extend(NEXT);
        all
    }
}

pub const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n";

pub fn request() -> impl Strategy<Value = Request> {
    request_with(prop_oneof![
        Just(Body::None),
        prop::collection::vec(any::<u8>(), 0..100).prop_map(Body::Length),
        chunked().prop_map(Body::Chunked),
    ])
}

pub fn chunked_request() -> impl Strategy<Value = Request> {
    request_with(chunked().prop_map(Body::Chunked))
}

fn request_with(body: impl Strategy<Value = Body>) -> impl Strategy<Value = Request> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
    let target = "/[a-zA-Z0-9/._~-]{0,30}(\\?[a-z0-9=&%]{0,20})?";
    let header = (
        "X-[A-Za-z0-9-]{1,12}",
        "[ \t]{0,2}",
        "([!-~]([ -~]{0,30}[!-~])?)?",
        "[ \t]{0,2}",
    );
    (
        method,
        target,
        "[a-z0-9.:-]{1,20}",
        0usize..8,
        prop::collection::vec(header, 0..8),
        body,
        any::<bool>(),
    )
        .prop_map(|(method, target, host, host_at, extra, body, bare_lf)| {
            let eol = if bare_lf { "\n" } else { "\r\n" };
            let mut lines: Vec<(String, String, String)> = extra
                .into_iter()
                .map(|(n, a, v, b)| (format!("{n}:{a}{v}{b}"), n, v))
                .collect();
            let host_at = host_at.min(lines.len());
            lines.insert(host_at, (format!("Host: {host}"), "Host".into(), host));
            match &body {
                Body::None => {}
                Body::Length(b) => {
                    let n = b.len().to_string();
                    lines.push((format!("Content-Length: {n}"), "Content-Length".into(), n));
                }
                Body::Chunked(_) => lines.push((
                    "Transfer-Encoding: chunked".into(),
                    "Transfer-Encoding".into(),
                    "chunked".into(),
                )),
            }
            let mut head = format!("{method} {target} HTTP/1.1{eol}");
            for (line, _, _) in &lines {
                head.push_str(line);
                head.push_str(eol);
            }
            head.push_str(eol);
            Request {
                head: head.into_bytes(),
                method: method.into(),
                target,
                headers: lines.into_iter().map(|(_, n, v)| (n, v)).collect(),
                body,
            }
        })
}

/// A byte likely to matter to a parser, or any byte.
pub fn framing_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"\r\n;:= \t0aF9gxX\0\x01\x1f\x7f".to_vec()),
        any::<u8>(),
    ]
}

/// One byte flipped, inserted or deleted. `AtFraming` makes the mutation
/// at a framing byte (an index into `Chunked::framing`) instead of anywhere.
#[derive(Clone, Debug)]
pub enum Mutation {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    AtFraming(prop::sample::Index, Box<Mutation>),
    /// The k-th CRLF replaced by another line end.
    LineEnd(prop::sample::Index, &'static [u8]),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let anywhere = prop_oneof![
        (any::<prop::sample::Index>(), framing_byte()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<prop::sample::Index>(), framing_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
    ];
    let ends: Vec<&'static [u8]> = vec![b"\n", b"\r", b"\n\n", b"\r\r", b"\n\r", b"", b" \r\n"];
    let line_end = (any::<prop::sample::Index>(), prop::sample::select(ends))
        .prop_map(|(i, e)| Mutation::LineEnd(i, e));
    let placed = (any::<Option<prop::sample::Index>>(), anywhere).prop_map(|(at, m)| match at {
        Some(at) => Mutation::AtFraming(at, Box::new(m)),
        None => m,
    });
    prop_oneof![3 => placed, 1 => line_end]
}

/// Applies `m` to `bytes`, whose framing bytes are at `framing`.
pub fn mutate(bytes: &mut Vec<u8>, framing: &[usize], m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::AtFraming(at, m) if !framing.is_empty() => {
            let pos = framing[at.index(framing.len())];
            let (Mutation::Flip(_, b) | Mutation::Insert(_, b)) = **m else {
                bytes.remove(pos);
                return;
            };
            if matches!(**m, Mutation::Flip(..)) {
                bytes[pos] = b;
            } else {
                bytes.insert(pos, b);
            }
        }
        Mutation::AtFraming(_, m) => mutate(bytes, framing, m),
        Mutation::LineEnd(k, end) => {
            let crlfs: Vec<usize> = (0..bytes.len() - 1)
                .filter(|&i| &bytes[i..i + 2] == b"\r\n")
                .collect();
            if !crlfs.is_empty() {
                let at = crlfs[k.index(crlfs.len())];
                bytes.splice(at..at + 2, end.iter().copied());
            }
        }
        Mutation::Flip(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Delete(i) => {
            bytes.remove(i.index(bytes.len()));
        }
    }
}

/// What a reading of a chunked body says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The body ends at `end` and carries `data_len` bytes.
    Valid {
        end: usize,
        data_len: u64,
    },
    Invalid,
    /// The input ends first.
    Incomplete,
}

/// RFC 9112 §7.1 read the slow way: find each CRLF, split the line, check
/// its parts, decode the whole body. The same caps and the same strictness
/// the scanner documents.
pub fn reference(buf: &[u8], max_ext: usize, max_trailers: usize) -> Reading {
    fn line(buf: &[u8], from: usize) -> Option<Result<&[u8], ()>> {
        let rest = buf.get(from..)?;
        let at = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..at];
        // A CR or LF inside a line is a bare one.
        Some(if line.iter().any(|&b| b == b'\r' || b == b'\n') {
            Err(())
        } else {
            Ok(line)
        })
    }
    let text = |b: &u8| *b == b'\t' || (b' '..=b'~').contains(b) || *b >= 0x80;
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let mut pos = 0;
    let mut data_len = 0u64;
    loop {
        let Some(size_line) = line(buf, pos) else {
            // No CRLF left: an LF in what is left would be a bare one.
            let bare_lf = buf.get(pos..).is_some_and(|rest| rest.contains(&b'\n'));
            return if bare_lf {
                Reading::Invalid
            } else {
                Reading::Incomplete
            };
        };
        let Ok(size_line) = size_line else {
            return Reading::Invalid;
        };
        pos += size_line.len() + 2;
        let (digits, ext) = match size_line.iter().position(|&b| b == b';') {
            Some(i) => size_line.split_at(i),
            None => (size_line, &b""[..]),
        };
        if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Reading::Invalid;
        }
        if ext.len() > max_ext || !ext.iter().all(text) {
            return Reading::Invalid;
        }
        let size = u64::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        let Some(end) = usize::try_from(size).ok().and_then(|s| pos.checked_add(s)) else {
            return Reading::Incomplete;
        };
        if buf.len() < end + 2 {
            return if buf.len() > end && buf[end] != b'\r' {
                Reading::Invalid
            } else {
                Reading::Incomplete
            };
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Reading::Invalid;
        }
        data_len += size;
        pos = end + 2;
    }
    let trailers_start = pos;
    loop {
        let Some(l) = line(buf, pos) else {
            return if buf.len() - trailers_start > max_trailers {
                Reading::Invalid
            } else {
                Reading::Incomplete
            };
        };
        let Ok(l) = l else { return Reading::Invalid };
        pos += l.len() + 2;
        if pos - trailers_start > max_trailers {
            return Reading::Invalid;
        }
        if l.is_empty() {
            return Reading::Valid { end: pos, data_len };
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return Reading::Invalid;
        };
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        if name.is_empty() || !name.iter().all(tchar) || !value.iter().all(text) {
            return Reading::Invalid;
        }
    }
}
