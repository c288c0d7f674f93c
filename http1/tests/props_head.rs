//! Property tests of the head parsers: no panic on any input, growing
//! prefixes read as incomplete until the head is whole and then exactly as
//! the whole buffer, and a head rewritten line by line (as the proxy
//! forwards it) reads the same as received. `PROPTEST_CASES` sets the count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{framing_byte, mutate, mutation, request, Body};
use http1::{Limits, RequestBody, RequestHead, ResponseHead, Version};
use proptest::prelude::*;

/// Every span lies inside the head; the accessors answer without panicking.
fn check_request(h: &RequestHead, buf: &[u8]) {
    assert!(h.len <= buf.len());
    let spans = [h.method, h.target]
        .into_iter()
        .chain(h.headers.iter().flat_map(|x| [x.name, x.value]));
    for s in spans.chain(h.host) {
        assert!(
            s.start <= s.end && s.end as usize <= h.len,
            "{s:?} beyond {}",
            h.len
        );
    }
    let _ = (h.method(buf), h.path(buf), h.header(buf, "host"));
    for x in &h.headers {
        let _ = h.is_hop_by_hop(buf, x.name.of(buf));
    }
}

fn check_response(h: &ResponseHead, buf: &[u8]) {
    assert!(h.len <= buf.len());
    for s in h
        .headers
        .iter()
        .flat_map(|x| [x.name, x.value])
        .chain([h.reason])
    {
        assert!(s.start <= s.end && s.end as usize <= h.len);
    }
    let _ = (
        h.body(buf, false),
        h.body(buf, true),
        h.end_to_end(buf).count(),
    );
}

/// The head as the proxy writes it: request line and `name: value` lines
/// with CRLF, nothing else.
fn rewrite(h: &RequestHead, buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [
        h.method(buf),
        b" ",
        h.target.of(buf),
        b" ",
        h.version.as_bytes(),
        b"\r\n",
    ] {
        out.extend(part);
    }
    for x in &h.headers {
        for part in [x.name.of(buf), b": ", x.value.of(buf), b"\r\n"] {
            out.extend(part);
        }
    }
    out.extend(b"\r\n");
    out
}

/// What a head means, independent of where its bytes are.
fn meaning(h: &RequestHead, buf: &[u8]) -> impl PartialEq + std::fmt::Debug {
    let headers: Vec<(Vec<u8>, Vec<u8>)> = h
        .headers
        .iter()
        .map(|x| (x.name.of(buf).to_vec(), x.value.of(buf).to_vec()))
        .collect();
    (
        h.method(buf).to_vec(),
        h.target.of(buf).to_vec(),
        h.path(buf).to_vec(),
        h.version,
        headers,
        h.body,
        h.keep_alive,
        h.upgrade,
        h.expect_continue,
        h.host.map(|s| s.of(buf).to_vec()),
    )
}

fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
    let start = prop::sample::select(vec![
        &b""[..],
        b"GET / HTTP/1.1\r\n",
        b"POST /x HTTP/1.0\r\nHost: a\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 204 \r\nContent-Length: 1\r\n",
    ]);
    (start, prop::collection::vec(framing_byte(), 0..300)).prop_map(|(s, rest)| [s, &rest].concat())
}

fn response() -> impl Strategy<Value = (Vec<u8>, u16)> {
    let status = prop::sample::select(vec![
        100u16, 101, 200, 204, 206, 301, 304, 404, 413, 502, 599,
    ]);
    let header = ("X-[A-Za-z0-9-]{1,12}", "([!-~]([ -~]{0,30}[!-~])?)?");
    let framing = prop::sample::select(vec![
        "",
        "Content-Length: 12\r\n",
        "Transfer-Encoding: chunked\r\n",
    ]);
    (
        status,
        "[ -~]{0,20}",
        prop::collection::vec(header, 0..8),
        framing,
    )
        .prop_map(|(status, reason, hs, framing)| {
            let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
            for (n, v) in hs {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str(framing);
            head.push_str("\r\n");
            (head.into_bytes(), status)
        })
}

proptest! {
    #[test]
    fn any_bytes_never_panic(raw in head_bytes(), max_head in 0usize..400, max_headers in 0usize..12) {
        for limits in [Limits::default(), Limits { max_head_bytes: max_head, max_headers, ..Limits::default() }] {
            if let Ok(Some(h)) = RequestHead::parse(&raw, &limits) {
                check_request(&h, &raw);
            }
            if let Ok(Some(h)) = ResponseHead::parse(&raw, &limits) {
                check_response(&h, &raw);
            }
        }
    }

    #[test]
    fn raw_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Some(h)) = RequestHead::parse(&raw, &Limits::default()) {
            check_request(&h, &raw);
        }
        if let Ok(Some(h)) = ResponseHead::parse(&raw, &Limits::default()) {
            check_response(&h, &raw);
        }
    }

    #[test]
    fn a_generated_request_reads_as_written(req in request()) {
        let wire = req.wire();
        let limits = Limits::default();
        let head = RequestHead::parse(&wire, &limits).unwrap().unwrap();
        prop_assert_eq!(head.len, req.head.len());
        prop_assert_eq!(head.method(&wire), req.method.as_bytes());
        prop_assert_eq!(head.target.of(&wire), req.target.as_bytes());
        prop_assert_eq!(head.path(&wire), req.target.as_bytes());
        prop_assert_eq!(head.version, Version::Http11);
        let got: Vec<(&[u8], &[u8])> = head.headers.iter().map(|h| (h.name.of(&wire), h.value.of(&wire))).collect();
        let want: Vec<(&[u8], &[u8])> = req.headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
        prop_assert_eq!(got, want);
        let body = match &req.body {
            Body::None => RequestBody::None,
            Body::Length(b) => RequestBody::Length(b.len() as u64),
            Body::Chunked(_) => RequestBody::Chunked,
        };
        prop_assert_eq!(head.body, body);
        prop_assert!(head.keep_alive);
        check_request(&head, &wire);
    }

    #[test]
    fn growing_prefixes_are_incomplete_until_the_head_is_whole(req in request()) {
        let wire = req.wire();
        let limits = Limits::default();
        let whole = RequestHead::parse(&wire, &limits).unwrap().unwrap();
        for cut in 0..whole.len {
            prop_assert_eq!(RequestHead::parse(&wire[..cut], &limits), Ok(None), "cut at {}", cut);
        }
        for cut in [whole.len, whole.len + 1, wire.len()] {
            let cut = cut.min(wire.len());
            prop_assert_eq!(RequestHead::parse(&wire[..cut], &limits), Ok(Some(whole.clone())));
        }
        // With the cap at the head's size it still parses; one byte less, it is too large.
        let at = Limits { max_head_bytes: whole.len, ..limits };
        prop_assert_eq!(RequestHead::parse(&wire, &at), Ok(Some(whole.clone())));
        let under = Limits { max_head_bytes: whole.len - 1, ..limits };
        prop_assert_eq!(RequestHead::parse(&wire, &under), Err(http1::HeadError::TooLarge));
    }

    #[test]
    fn growing_prefixes_of_a_response((raw, status) in response()) {
        let mut wire = raw.clone();
        wire.extend(b"body bytes\r\n");
        let limits = Limits::default();
        let whole = ResponseHead::parse(&wire, &limits).unwrap().unwrap();
        prop_assert_eq!((whole.len, whole.status), (raw.len(), status));
        for cut in 0..whole.len {
            prop_assert_eq!(ResponseHead::parse(&wire[..cut], &limits), Ok(None), "cut at {}", cut);
        }
        prop_assert_eq!(ResponseHead::parse(&wire, &limits), Ok(Some(whole.clone())));
        check_response(&whole, &wire);
    }

    #[test]
    fn a_rewritten_head_reads_the_same(req in request(), m in mutation()) {
        let limits = Limits::default();
        let mut raw = req.head.clone();
        raw.extend(b"after");
        let framing: Vec<usize> = (0..req.head.len()).collect();
        mutate(&mut raw, &framing, &m);
        if let Ok(Some(head)) = RequestHead::parse(&raw, &limits) {
            check_request(&head, &raw);
            let again = rewrite(&head, &raw);
            let reread = RequestHead::parse(&again, &limits).unwrap().unwrap();
            prop_assert_eq!(reread.len, again.len());
            prop_assert_eq!(meaning(&reread, &again), meaning(&head, &raw));
        }
    }
}
