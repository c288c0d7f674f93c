//! The response-head rules: framing by status, request method and headers
//! (RFC 9112 §6.3), and what a node may not send.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http1::{HeadError, Limits, ResponseBody, ResponseHead, Version};

fn parse(raw: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
    ResponseHead::parse(raw, &Limits::default())
}

/// `(row, raw head, request was HEAD, body() answer)`.
type Row = (
    &'static str,
    &'static [u8],
    bool,
    Result<ResponseBody, HeadError>,
);

#[test]
fn body_framing() {
    use ResponseBody::*;
    const BOTH: HeadError = HeadError::Invalid("both Content-Length and Transfer-Encoding");
    const SEVERAL_CL: HeadError = HeadError::Invalid("several Content-Length");
    const BAD_CL: HeadError = HeadError::Invalid("invalid Content-Length");
    const BAD_TE: HeadError = HeadError::Invalid("Transfer-Encoding other than chunked");
    let rows: &[Row] = &[
        ("200 CL", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, Ok(Length(5))),
        ("200 chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, Ok(Chunked)),
        ("200 unframed", b"HTTP/1.1 200 OK\r\n\r\n", false, Ok(UntilClose)),
        ("1.0 unframed", b"HTTP/1.0 200 OK\r\n\r\n", false, Ok(UntilClose)),
        ("HEAD with CL", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, Ok(None)),
        ("HEAD with chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, Ok(None)),
        ("HEAD unframed", b"HTTP/1.1 200 OK\r\n\r\n", true, Ok(None)),
        ("100", b"HTTP/1.1 100 Continue\r\n\r\n", false, Ok(None)),
        ("101", b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false, Ok(None)),
        ("103 with CL", b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n", false, Ok(None)),
        ("204 with CL", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, Ok(None)),
        ("304 with CL", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false, Ok(None)),
        ("205 CL 0", b"HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\n\r\n", false, Ok(Length(0))),
        ("413 CL", b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", false, Ok(Length(2))),
        ("CL + TE", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, Err(BOTH)),
        ("CL + TE to HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true, Err(BOTH)),
        ("CL + TE on 304", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, Err(BOTH)),
        ("two CL", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", false, Err(SEVERAL_CL)),
        ("CL list", b"HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\n\r\n", false, Err(BAD_CL)),
        ("CL signed", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, Err(BAD_CL)),
        ("TE gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, Err(BAD_TE)),
        ("TE gzip, chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, Err(BAD_TE)),
        ("TE on 1.0", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, Err(HeadError::Invalid("Transfer-Encoding in HTTP/1.0"))),
    ];
    let mut wrong = Vec::new();
    for (name, raw, head, want) in rows {
        let res = parse(raw).unwrap().unwrap();
        assert_eq!(res.len, raw.len(), "{name}");
        let got = res.body(raw, *head);
        if got != *want {
            wrong.push(format!("{name}: {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn rejected_heads() {
    let name = HeadError::Invalid("invalid header name");
    let status = HeadError::Invalid("invalid status line");
    let rows: &[(&str, &[u8], HeadError)] = &[
        ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", name),
        (
            "SP before colon",
            b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
            name,
        ),
        (
            "bare CR",
            b"HTTP/1.1 200 OK\r\nX-A: b\rc\r\n\r\n",
            HeadError::Invalid("invalid header value"),
        ),
        (
            "NUL",
            b"HTTP/1.1 200 OK\r\nX-A: \0\r\n\r\n",
            HeadError::Invalid("invalid header value"),
        ),
        (
            "status 600",
            b"HTTP/1.1 600 Odd\r\n\r\n",
            HeadError::Invalid("status code out of range"),
        ),
        (
            "status 099",
            b"HTTP/1.1 099 Odd\r\n\r\n",
            HeadError::Invalid("status code out of range"),
        ),
        ("two-digit status", b"HTTP/1.1 20 OK\r\n\r\n", status),
        ("status junk", b"HTTP/1.1 200x OK\r\n\r\n", status),
        (
            "HTTP/2",
            b"HTTP/2.0 200 OK\r\n\r\n",
            HeadError::Invalid("invalid HTTP version"),
        ),
    ];
    let mut wrong = Vec::new();
    for (row, raw, want) in rows {
        let got = parse(raw);
        if got != Err(*want) {
            wrong.push(format!("{row}: {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let small = Limits {
        max_head_bytes: 20,
        max_headers: 1,
        ..Limits::default()
    };
    assert_eq!(
        ResponseHead::parse(b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", &small),
        Err(HeadError::TooLarge)
    );
    assert_eq!(
        ResponseHead::parse(b"HTTP/1.1 200 OK\r\nA: 1", &small),
        Err(HeadError::TooLarge)
    );
    assert_eq!(
        ResponseHead::parse(b"HTTP/1.1 200 OK\r\nA: 1", &Limits::default()),
        Ok(None)
    );
    let few = Limits {
        max_headers: 1,
        ..Limits::default()
    };
    assert_eq!(
        ResponseHead::parse(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", &few),
        Err(HeadError::TooManyHeaders)
    );
}

#[test]
fn head_fields() {
    let raw = b"HTTP/1.1 404 Not Found\r\nConnection: x-a, close\r\nX-A: 1\r\nContent-Length: 0\r\n\r\nHTTP/1.1";
    let res = parse(raw).unwrap().unwrap();
    assert_eq!(res.status, 404);
    assert_eq!(res.reason(raw), b"Not Found");
    assert_eq!(res.version, Version::Http11);
    assert!(!res.keep_alive);
    assert_eq!(&raw[res.len..], b"HTTP/1.1");
    assert!(res.is_hop_by_hop(raw, b"X-A") && res.is_hop_by_hop(raw, b"Connection"));
    let kept: Vec<&[u8]> = res.end_to_end(raw).map(|h| h.name.of(raw)).collect();
    assert_eq!(kept, [&b"Content-Length"[..]]);
    assert_eq!(res.header(raw, "content-length"), Some(&b"0"[..]));

    let rows: &[(&[u8], bool)] = &[
        (b"HTTP/1.1 200 OK\r\n\r\n", true),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false),
        (b"HTTP/1.0 200 OK\r\n\r\n", false),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", true),
    ];
    for (raw, keep) in rows {
        assert_eq!(
            parse(raw).unwrap().unwrap().keep_alive,
            *keep,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    // No reason phrase at all, and a bare LF head.
    let raw = b"HTTP/1.1 200\r\n\r\n";
    let res = parse(raw).unwrap().unwrap();
    assert_eq!((res.status, res.reason(raw)), (200, &b""[..]));
    let raw = b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx";
    let res = parse(raw).unwrap().unwrap();
    assert_eq!(res.len, raw.len() - 1);
    assert_eq!(res.body(raw, false), Ok(ResponseBody::Length(1)));
}
