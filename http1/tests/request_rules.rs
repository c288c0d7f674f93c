//! The request-head rules, one row each: the raw head and what the parser
//! must answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http1::{HeadError, Limits, RequestBody, RequestHead, Target, Version};

const BOTH: HeadError = HeadError::Invalid("both Content-Length and Transfer-Encoding");
const SEVERAL_CL: HeadError = HeadError::Invalid("several Content-Length");
const BAD_CL: HeadError = HeadError::Invalid("invalid Content-Length");
const BAD_TE: HeadError = HeadError::Invalid("Transfer-Encoding other than chunked");
const SEVERAL_TE: HeadError = HeadError::Invalid("several Transfer-Encoding");
const TE_10: HeadError = HeadError::Invalid("Transfer-Encoding in HTTP/1.0");
const NAME: HeadError = HeadError::Invalid("invalid header name");
const VALUE: HeadError = HeadError::Invalid("invalid header value");
const LINE: HeadError = HeadError::Invalid("invalid request line");
const NEWLINE: HeadError = HeadError::Invalid("invalid line ending");
const VERSION: HeadError = HeadError::Invalid("invalid HTTP version");
const TARGET: HeadError = HeadError::Invalid("invalid request target");

fn parse(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    RequestHead::parse(raw, &Limits::default())
}

#[test]
fn rejected_requests() {
    let rows: &[(&str, &[u8], HeadError)] = &[
        ("CL then TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", BOTH),
        ("TE then CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", BOTH),
        ("TE then CL 0", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", BOTH),
        ("two equal CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", SEVERAL_CL),
        ("two CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", SEVERAL_CL),
        ("CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", BAD_CL),
        ("CL plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", BAD_CL),
        ("CL minus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", BAD_CL),
        ("CL hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", BAD_CL),
        ("CL inner space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", BAD_CL),
        ("CL suffix", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", BAD_CL),
        ("CL empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", BAD_CL),
        ("CL u64 overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", BAD_CL),
        ("CL huge", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", BAD_CL),
        ("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", BAD_TE),
        ("TE chunked, gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", BAD_TE),
        ("TE chunked, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", BAD_TE),
        ("TE identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", BAD_TE),
        ("TE chunked;", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", BAD_TE),
        ("TE empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", BAD_TE),
        ("TE xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", BAD_TE),
        ("two TE", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", SEVERAL_TE),
        ("TE gzip then chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", SEVERAL_TE),
        ("TE on 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TE_10),
        ("obs-fold SP", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", NAME),
        ("obs-fold HTAB", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", NAME),
        ("space before first header", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", NAME),
        ("SP before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", NAME),
        ("HTAB before colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", NAME),
        ("SP before colon, CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", NAME),
        ("no colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", NAME),
        ("empty name", b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", NAME),
        ("bare CR in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", VALUE),
        ("bare CR ending value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\r\n\r\n", VALUE),
        ("bare CR in name", b"GET / HTTP/1.1\r\nHost: a\r\nX\r-A: b\r\n\r\n", NAME),
        ("bare CR in target", b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", LINE),
        ("bare CR after version", b"GET / HTTP/1.1\rHost: a\r\n\r\n", NEWLINE),
        ("bare CR as last line", b"GET / HTTP/1.1\r\nHost: a\r\n\rX", NEWLINE),
        ("bare CR before request line", b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", NEWLINE),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", VALUE),
        ("SOH in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", VALUE),
        ("ESC in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[31m\r\n\r\n", VALUE),
        ("DEL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n", VALUE),
        ("NUL in name", b"GET / HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n", NAME),
        ("NUL in target", b"GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n", LINE),
        ("two Host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HeadError::Invalid("several Host")),
        ("two equal Host", b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", HeadError::Invalid("several Host")),
        ("two Host on 1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", HeadError::Invalid("several Host")),
        ("1.1 without Host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", HeadError::Invalid("HTTP/1.1 without Host")),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", VERSION),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", VERSION),
        ("lowercase version", b"GET / http/1.1\r\nHost: a\r\n\r\n", VERSION),
        ("no version", b"GET /\r\nHost: a\r\n\r\n", LINE),
        ("two spaces", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", LINE),
        ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", VERSION),
        ("asterisk with GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::Invalid("asterisk-form without OPTIONS")),
        ("relative target", b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", TARGET),
        ("ftp target", b"GET ftp://h/ HTTP/1.1\r\nHost: a\r\n\r\n", TARGET),
        ("scheme only", b"GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", TARGET),
        ("empty authority", b"GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::Invalid("invalid authority in request target")),
        ("userinfo", b"GET http://u:p@h/p HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::Invalid("invalid authority in request target")),
        ("query without path", b"GET http://h?q HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::Invalid("absolute target without a path")),
        ("fragment", b"GET /p#f HTTP/1.1\r\nHost: a\r\n\r\n", HeadError::Invalid("fragment in request target")),
        ("CONNECT with path", b"CONNECT h:443/x HTTP/1.1\r\nHost: h\r\n\r\n", HeadError::Invalid("CONNECT target not host:port")),
        ("method not a token", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", LINE),
    ];
    let mut wrong = Vec::new();
    for (name, raw, want) in rows {
        let got = parse(raw);
        if got != Err(*want) {
            wrong.push(format!("{name}: {got:?}, want {want:?}"));
        }
        assert_eq!(want.status(), 400, "{name}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A complete head of exactly `len` bytes (at least 37).
fn head_of(len: usize) -> Vec<u8> {
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
    raw.resize(len - 4, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    raw
}

#[test]
fn caps() {
    let small = Limits {
        max_head_bytes: 64,
        max_headers: 3,
        ..Limits::default()
    };
    let cut = |len: usize| head_of(100)[..len].to_vec();
    let with = |mut a: Vec<u8>, b: &[u8]| {
        a.extend_from_slice(b);
        a
    };
    let rows: Vec<(&str, Vec<u8>, Result<bool, HeadError>)> = vec![
        (
            "complete, one over the cap",
            head_of(65),
            Err(HeadError::TooLarge),
        ),
        (
            "incomplete, one over the cap",
            cut(65),
            Err(HeadError::TooLarge),
        ),
        ("incomplete, at the cap", cut(64), Ok(false)),
        ("exactly the cap", head_of(64), Ok(true)),
        (
            "exactly the cap, a request after",
            with(head_of(64), b"GET / HTTP/1.1\r\n"),
            Ok(true),
        ),
        (
            "an error within the cap wins",
            with(b"GET / HTTP/1.1\r\nHost : a\r\n".to_vec(), &[b'a'; 100]),
            Err(NAME),
        ),
        (
            "three headers",
            b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n".to_vec(),
            Ok(true),
        ),
        (
            "four headers",
            b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n".to_vec(),
            Err(HeadError::TooManyHeaders),
        ),
        (
            "four headers, incomplete",
            b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n".to_vec(),
            Err(HeadError::TooManyHeaders),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, raw, want) in &rows {
        let got = RequestHead::parse(raw, &small).map(|h| h.is_some());
        if got != *want {
            wrong.push(format!(
                "{name} ({} bytes): {got:?}, want {want:?}",
                raw.len()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(HeadError::TooLarge.status(), 431);
    assert_eq!(HeadError::TooManyHeaders.status(), 431);
    // The default cap is 64 KiB.
    let defaults = Limits::default();
    assert_eq!(
        RequestHead::parse(&head_of(64 * 1024), &defaults).map(|h| h.is_some()),
        Ok(true)
    );
    assert_eq!(
        RequestHead::parse(&head_of(64 * 1024 + 1), &defaults),
        Err(HeadError::TooLarge)
    );
}

type Check = fn(&RequestHead, &[u8]);

#[test]
fn accepted_requests() {
    let rows: &[(&str, &[u8], Check)] = &[
        ("plain GET", b"GET /a?b=1 HTTP/1.1\r\nHost: h:80\r\nX-A:  v w \t\r\n\r\n", |h, b| {
            assert_eq!(h.len, b.len());
            assert_eq!(h.method(b), b"GET");
            assert_eq!(h.path(b), b"/a?b=1");
            assert_eq!(h.target_form, Target::Origin);
            assert_eq!(h.version, Version::Http11);
            assert_eq!(h.body, RequestBody::None);
            assert!(h.keep_alive && !h.upgrade && !h.expect_continue);
            assert_eq!(h.host.unwrap().of(b), b"h:80");
            assert_eq!(h.header(b, "x-a"), Some(&b"v w"[..]));
            assert_eq!(h.headers.len(), 2);
        }),
        ("TE Chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", |h, _| assert_eq!(h.body, RequestBody::Chunked)),
        ("TE CHUNKED with OWS", b"POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: \t CHUNKED \r\n\r\n", |h, _| assert_eq!(h.body, RequestBody::Chunked)),
        ("CL", b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length:  12 \r\n\r\n", |h, _| assert_eq!(h.body, RequestBody::Length(12))),
        ("CL leading zeros", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", |h, _| assert_eq!(h.body, RequestBody::Length(7))),
        ("CL u64 max", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", |h, _| assert_eq!(h.body, RequestBody::Length(u64::MAX))),
        ("absolute form", b"GET http://host:9/p?q HTTP/1.1\r\nHost: evil.example\r\n\r\n", |h, b| {
            let Target::Absolute { authority, .. } = h.target_form else { panic!("{:?}", h.target_form) };
            assert_eq!(authority.of(b), b"host:9");
            assert_eq!(h.path(b), b"/p?q");
            assert_eq!(h.host.unwrap().of(b), b"evil.example");
        }),
        ("absolute form without path", b"GET HTTPS://Host HTTP/1.1\r\nHost: Host\r\n\r\n", |h, b| {
            let Target::Absolute { authority, path_and_query } = h.target_form else { panic!() };
            assert_eq!(authority.of(b), b"Host");
            assert!(path_and_query.is_empty());
            assert_eq!(h.path(b), b"/");
        }),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", |h, b| {
            assert_eq!(h.target_form, Target::Asterisk);
            assert_eq!(h.target.of(b), b"*");
            assert_eq!(h.path(b), b"");
        }),
        ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", |h, _| assert_eq!(h.target_form, Target::Authority)),
        ("Expect: 100-continue", b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", |h, _| {
            assert!(h.expect_continue);
            assert_eq!(h.body, RequestBody::Length(3));
        }),
        ("Expect in 1.0 ignored", b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", |h, _| assert!(!h.expect_continue)),
        ("other Expect", b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", |h, _| assert!(!h.expect_continue)),
        ("pipelined", b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", |h, b| {
            assert_eq!(&b[h.len..h.len + 6], b"GET /2");
            let next = RequestHead::parse(&b[h.len..], &Limits::default()).unwrap().unwrap();
            assert_eq!(next.path(&b[h.len..]), b"/2");
            assert_eq!(h.len + next.len, b.len());
        }),
        ("leading empty lines", b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", |h, b| {
            assert_eq!(h.len, b.len());
            assert_eq!(h.method(b), b"GET");
        }),
        ("bare LF line ends", b"GET / HTTP/1.1\nHost: a\nX: 1\n\nNEXT", |h, b| {
            assert_eq!(&b[h.len..], b"NEXT");
            assert_eq!(h.header(b, "x"), Some(&b"1"[..]));
        }),
        ("Connection token list with Upgrade", b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", |h, b| {
            assert!(h.upgrade && h.keep_alive);
            assert!(h.is_hop_by_hop(b, b"Upgrade") && h.is_hop_by_hop(b, b"connection"));
            assert!(!h.is_hop_by_hop(b, b"host"));
        }),
        ("Connection upgrade without Upgrade", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", |h, _| assert!(!h.upgrade)),
        ("Upgrade without Connection token", b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", |h, _| assert!(!h.upgrade)),
        ("Upgrade on 1.0 ignored", b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", |h, _| assert!(!h.upgrade)),
        ("Connection: close", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", |h, _| assert!(!h.keep_alive)),
        ("close in a second Connection", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a\r\nX-A: 1\r\nconnection: ,close,\r\n\r\n", |h, b| {
            assert!(!h.keep_alive);
            assert!(h.is_hop_by_hop(b, b"X-a"));
            let kept: Vec<&[u8]> = h.end_to_end(b).map(|x| x.name.of(b)).collect();
            assert_eq!(kept, [&b"Host"[..]]);
        }),
        ("a name listed by a later Connection", b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: a\r\nX-B: 1\r\nConnection: X-B\r\n\r\n", |h, b| {
            assert!(h.keep_alive);
            assert!(h.is_hop_by_hop(b, b"x-b") && !h.is_hop_by_hop(b, b"host"));
            let kept: Vec<&[u8]> = h.end_to_end(b).map(|x| x.name.of(b)).collect();
            assert_eq!(kept, [&b"Host"[..]]);
        }),
        ("1.0 closes by default", b"GET / HTTP/1.0\r\n\r\n", |h, _| {
            assert!(!h.keep_alive);
            assert_eq!(h.version, Version::Http10);
            assert_eq!(h.host, None);
        }),
        ("1.0 keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", |h, _| assert!(h.keep_alive)),
        ("1.0 keep-alive and close", b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", |h, _| assert!(!h.keep_alive)),
        ("Connection cannot hide framing", b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Host, Cookie\r\nContent-Length: 1\r\n\r\n", |h, b| {
            assert!(!h.is_hop_by_hop(b, b"content-length"));
            assert!(!h.is_hop_by_hop(b, b"Host"));
            assert!(h.is_hop_by_hop(b, b"cookie"));
        }),
        ("hop-by-hop list", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", |h, b| {
            for n in ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade"] {
                assert!(h.is_hop_by_hop(b, n.as_bytes()), "{n}");
            }
            for n in ["Proxy-Authorization", "Cookie", "Content-Length", "Host", "X-Forwarded-For", "Te-X"] {
                assert!(!h.is_hop_by_hop(b, n.as_bytes()), "{n}");
            }
        }),
        ("obs-text in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n", |h, b| assert_eq!(h.header(b, "X-A"), Some(&b"caf\xc3\xa9"[..]))),
        ("empty value", b"GET / HTTP/1.1\r\nHost:\r\nX-A: \r\n\r\n", |h, b| {
            assert_eq!(h.host.unwrap().of(b), b"");
            assert_eq!(h.header(b, "x-a"), Some(&b""[..]));
        }),
        ("headers_named in order", b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX: y\r\ncookie: b=2\r\n\r\n", |h, b| {
            let all: Vec<&[u8]> = h.headers_named(b, "COOKIE").collect();
            assert_eq!(all, [&b"a=1"[..], &b"b=2"[..]]);
            assert_eq!(h.header(b, "missing"), None);
        }),
    ];
    for (name, raw, check) in rows {
        let head = parse(raw).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let head = head.unwrap_or_else(|| panic!("{name}: incomplete"));
        check(&head, raw);
    }
}

#[test]
fn incomplete_until_the_empty_line() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for cut in 0..raw.len() {
        assert_eq!(parse(&raw[..cut]), Ok(None), "cut at {cut}");
    }
    assert!(parse(raw).unwrap().is_some());
}

#[test]
fn parse_into_reuses_the_vec() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n";
    let mut spare = Vec::with_capacity(32);
    let head = RequestHead::parse_into(raw, &Limits::default(), &mut spare)
        .unwrap()
        .unwrap();
    assert!(spare.is_empty());
    let mut spare = head.into_headers();
    assert!(spare.capacity() >= 32);
    assert_eq!(
        RequestHead::parse_into(b"GET", &Limits::default(), &mut spare),
        Ok(None)
    );
    assert!(spare.capacity() >= 32);
}
