//! The edits a head gets on its way through, written straight from the
//! parsed spans into the outgoing buffer: no `HeaderMap`, untouched lines
//! copied as they came (name, `: `, value, CRLF).
//!
//! Request to the node: origin form; hop-by-hop fields out (`Connection`
//! and the fields it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`), except that a WebSocket upgrade keeps
//! `Upgrade` and says `Connection: upgrade`; a chunked body says
//! `Transfer-Encoding: chunked` again (its chunks pass through as they
//! are); `X-Forwarded-For` (the client's address appended to a trusted
//! peer's list, replacing an untrusted one's), `X-Forwarded-Proto` and
//! `X-Forwarded-Host` (the client's `Host`) in. `Host` passes untouched; an
//! absolute-form request's `Host` is its target's authority (RFC 9112
//! §3.2.2), and a request without one (HTTP/1.0) gets the node's.
//! `Expect` stays behind: the proxy answers `100-continue` itself.
//!
//! Answer to the client: hop-by-hop fields out (a 101 keeps `Upgrade` and
//! says `Connection: upgrade`), the framing said again, and
//! `Connection: close` when the proxy will close after it.

use http1::{RequestHead, ResponseHead, Version};

/// What the rewrite needs to know about the client connection.
#[derive(Debug, Clone)]
pub struct ClientFacts {
    /// The peer's address, as text.
    pub ip: Box<str>,
    /// The peer is a `--trusted-proxies` hop: its `X-Forwarded-For` stays.
    pub trusted: bool,
    /// The connection came over TLS: `X-Forwarded-Proto: https`.
    pub tls: bool,
}

/// `Proxy-*` fields are the proxy's, not the node's (nor the client's):
/// never passed on, whatever `Connection` says. The rest of the hop-by-hop
/// rule (and that no `Connection` token can drop `Content-Length` or
/// `Host`) is the parser's `is_hop_by_hop`.
fn is_proxy_field(name: &[u8]) -> bool {
    name.len() > 6 && name[..6].eq_ignore_ascii_case(b"proxy-")
}

/// Whether a request asks for a WebSocket upgrade (`Upgrade: websocket`
/// and `Connection: upgrade`). Other upgrades are not tunnelled: their
/// `Upgrade` is stripped like any hop-by-hop field.
pub fn is_websocket_upgrade(buf: &[u8], head: &RequestHead) -> bool {
    let has = |name: &[u8], token: &[u8]| {
        head.headers
            .iter()
            .filter(|h| h.name.of(buf).eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.of(buf).split(|b| *b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    };
    has(b"upgrade", b"websocket") && has(b"connection", b"upgrade")
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the request head the node gets. `authority` is the node's
/// `host:port`, for a request that names no host.
pub fn request_to_node(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    client: &ClientFacts,
    websocket: bool,
    authority: &str,
) {
    let headers = head.headers.as_slice();
    out.extend_from_slice(head.method.of(buf));
    out.push(b' ');
    let (path, absolute_host) = match &head.target_form {
        http1::Target::Absolute {
            authority,
            path_and_query,
        } => (path_and_query.of(buf), Some(authority.of(buf))),
        _ => (head.target.of(buf), None),
    };
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host: Option<&[u8]> = absolute_host;
    let mut forwarded_for: Option<(usize, usize)> = None;
    for h in headers {
        let name = h.name.of(buf);
        if head.is_hop_by_hop(buf, name) || is_proxy_field(name) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            if absolute_host.is_some() {
                continue;
            }
            host = Some(h.value.of(buf));
        } else if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            if client.trusted {
                // Joined below, in order, with the peer appended.
                forwarded_for.get_or_insert((h.value.start as usize, h.value.end as usize));
            }
            continue;
        } else if name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"x-forwarded-host")
            || name.eq_ignore_ascii_case(b"expect")
        {
            continue;
        }
        field(out, name, h.value.of(buf));
    }
    match host {
        Some(host) if absolute_host.is_some() => field(out, b"host", host),
        Some(_) => {}
        None => field(out, b"host", authority.as_bytes()),
    }
    if websocket {
        out.extend_from_slice(b"connection: upgrade\r\n");
        if let Some(upgrade) = head
            .headers
            .iter()
            .find(|h| h.name.of(buf).eq_ignore_ascii_case(b"upgrade"))
        {
            field(out, b"upgrade", upgrade.value.of(buf));
        }
    }
    if matches!(head.body, http1::RequestBody::Chunked) {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if forwarded_for.is_some() {
        let mut first = true;
        for h in headers
            .iter()
            .filter(|h| h.name.of(buf).eq_ignore_ascii_case(b"x-forwarded-for"))
        {
            if !first {
                out.extend_from_slice(b", ");
            }
            first = false;
            out.extend_from_slice(h.value.of(buf));
        }
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.ip.as_bytes());
    out.extend_from_slice(if client.tls {
        b"\r\nx-forwarded-proto: https\r\n"
    } else {
        b"\r\nx-forwarded-proto: http\r\n"
    });
    if let Some(host) = host {
        field(out, b"x-forwarded-host", host);
    }
    out.extend_from_slice(b"\r\n");
}

/// How the answer to the client is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFraming {
    /// As the node framed it: `Content-Length` (kept as a field) or none.
    AsIs,
    Chunked,
}

/// Writes the answer head the client gets. `close`: the proxy closes the
/// connection after this answer. `keep_alive_10`: an HTTP/1.0 client asked
/// for keep-alive and gets it.
pub fn response_to_client(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    framing: AnswerFraming,
    upgrade: bool,
    close: bool,
    keep_alive_10: bool,
) {
    let headers = head.headers.as_slice();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, head.status);
    out.push(b' ');
    out.extend_from_slice(head.reason.of(buf));
    out.extend_from_slice(b"\r\n");
    for h in headers {
        let name = h.name.of(buf);
        if head.is_hop_by_hop(buf, name) || is_proxy_field(name) {
            continue;
        }
        field(out, name, h.value.of(buf));
    }
    if upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
        if let Some(value) = head
            .headers
            .iter()
            .find(|h| h.name.of(buf).eq_ignore_ascii_case(b"upgrade"))
        {
            field(out, b"upgrade", value.value.of(buf));
        }
    } else if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if keep_alive_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if framing == AnswerFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn push_status(out: &mut Vec<u8>, status: u16) {
    let status = status.min(999);
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
}

/// Whether the client spoke HTTP/1.0.
pub fn is_http10(version: Version) -> bool {
    matches!(version, Version::Http10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http1::Limits;

    fn rewrite(raw: &str, trusted: bool, tls: bool) -> String {
        let head = RequestHead::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let client = ClientFacts {
            ip: "10.1.2.3".into(),
            trusted,
            tls,
        };
        let websocket = is_websocket_upgrade(raw.as_bytes(), &head);
        let mut out = Vec::new();
        request_to_node(
            &mut out,
            raw.as_bytes(),
            &head,
            &client,
            websocket,
            "node:1",
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_heads_for_the_node() {
        // (request, trusted peer, tls, head the node gets)
        let cases: &[(&str, bool, bool, &str)] = &[
            (
                "GET /a?b HTTP/1.1\r\nHost: h\r\nCookie: x=1\r\n\r\n",
                false,
                false,
                "GET /a?b HTTP/1.1\r\nHost: h\r\nCookie: x=1\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n",
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n",
                false,
                true,
                "GET / HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: https\r\nx-forwarded-host: h\r\n\r\n",
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
                true,
                false,
                "GET / HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n",
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
                false,
                false,
                "GET / HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n",
            ),
            // No Connection token drops the framing the body is sent by.
            (
                "POST /u HTTP/1.1\r\nHost: h\r\nConnection: content-length, host\r\nContent-Length: 2\r\n\r\n",
                false,
                false,
                "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n",
            ),
            (
                "GET http://127.0.0.1:9/p?q HTTP/1.1\r\nHost: evil.example\r\n\r\n",
                false,
                false,
                "GET /p?q HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: 127.0.0.1:9\r\n\r\n",
            ),
            (
                "GET / HTTP/1.0\r\n\r\n",
                false,
                false,
                "GET / HTTP/1.1\r\nhost: node:1\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\n\r\n",
            ),
            (
                "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                false,
                "POST /u HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n",
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
                false,
                false,
                "GET /ws HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nconnection: upgrade\r\nupgrade: websocket\r\nx-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n",
            ),
        ];
        for (raw, trusted, tls, want) in cases {
            assert_eq!(rewrite(raw, *trusted, *tls), *want, "{raw:?}");
        }
    }

    #[test]
    fn response_heads_for_the_client() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\nX-Node: n\r\n\r\n";
        let head = ResponseHead::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        response_to_client(
            &mut out,
            raw.as_bytes(),
            &head,
            AnswerFraming::AsIs,
            false,
            true,
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Node: n\r\nconnection: close\r\n\r\n"
        );
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = ResponseHead::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        response_to_client(
            &mut out,
            raw.as_bytes(),
            &head,
            AnswerFraming::Chunked,
            false,
            false,
            true,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }
}
