//! Conformance and hostile input at the proxy's own HTTP/1 path (issue 10,
//! item 4): the real proxy on 127.0.0.1:0 in front of a raw node that
//! records the exact bytes it gets and answers with scripted bytes. Each
//! row is the client's raw bytes (pipelined, or in pieces), the exact bytes
//! the node must see (or nothing), the exact answer the client must get,
//! and whether the connection stays open.
//!
//! Rows that fail because of a proxy bug are kept, unweakened, in
//! `#[ignore = "proxy bug: …"]` tests so that they can be run by name.
// Test helpers: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "conformance/client.rs"]
mod client;
mod common;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/node.rs"]
mod node;
#[path = "conformance/props.rs"]
mod props;
#[path = "conformance/special.rs"]
mod special;

use harness::{get, refused, run, send, to_node, Row, Step};
use node::Reply;

/// Runs rows concurrently (each on its own proxy and node) and fails with
/// every failing row named.
async fn run_all(rows: Vec<Row>) {
    let results = futures_util::future::join_all(rows.iter().map(|row| async move {
        run(row)
            .await
            .map_err(|e| format!("row {:?}: {e}", row.name))
    }))
    .await;
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Request-smuggling shapes and malformed heads: 400, then the close;
/// neither the request nor the one smuggled behind it reaches the node.
fn smuggling_rows() -> Vec<Row> {
    let post = "POST /a HTTP/1.1\r\nHost: h\r\n";
    let mut rows = vec![
        refused(
            "CL then TE",
            &format!("{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ),
        refused(
            "TE then CL",
            &format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        ),
        refused(
            "two different CLs",
            &format!("{post}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
        ),
        refused(
            "two equal CLs",
            &format!("{post}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
        ),
        refused(
            "CL list",
            &format!("{post}Content-Length: 5, 5\r\n\r\nhello"),
        ),
        refused(
            "CL not a number",
            &format!("{post}Content-Length: abc\r\n\r\n"),
        ),
        refused("CL negative", &format!("{post}Content-Length: -1\r\n\r\n")),
        refused(
            "CL with plus",
            &format!("{post}Content-Length: +5\r\n\r\nhello"),
        ),
        refused("CL hex", &format!("{post}Content-Length: 0x5\r\n\r\nhello")),
        refused(
            "CL overflowing u64",
            &format!("{post}Content-Length: 99999999999999999999999\r\n\r\n"),
        ),
        refused(
            "TE gzip, chunked",
            &format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ),
        refused(
            "TE chunked, identity",
            &format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
        ),
        refused(
            "TE identity",
            &format!("{post}Transfer-Encoding: identity\r\n\r\n"),
        ),
        refused(
            "TE gzip alone",
            &format!("{post}Transfer-Encoding: gzip\r\n\r\n"),
        ),
        refused(
            "TE xchunked",
            &format!("{post}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ),
        refused(
            "two TE lines",
            &format!(
                "{post}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
        ),
        refused(
            "TE on HTTP/1.0",
            "POST /a HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        refused(
            "obs-fold (SP)",
            "GET /a HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n",
        ),
        refused(
            "obs-fold (HTAB) of TE",
            &format!("{post}Transfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n"),
        ),
        refused(
            "SP before colon (TE)",
            &format!("{post}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ),
        refused(
            "HTAB before colon (CL)",
            &format!("{post}Content-Length\t: 5\r\n\r\nhello"),
        ),
        refused(
            "SP before colon (Host)",
            "GET /a HTTP/1.1\r\nHost : h\r\n\r\n",
        ),
        refused(
            "bare CR in a value",
            "GET /a HTTP/1.1\r\nHost: h\r\nX-A: b\rc\r\n\r\n",
        ),
        refused(
            "bare CR ending the request line",
            "GET /a HTTP/1.1\rHost: h\r\n\r\n",
        ),
        refused(
            "bare CR ending a field",
            "GET /a HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n",
        ),
        refused(
            "two Host fields",
            "GET /a HTTP/1.1\r\nHost: h\r\nHost: evil.example\r\n\r\n",
        ),
        refused("HTTP/1.1 without Host", "GET /a HTTP/1.1\r\nX-A: b\r\n\r\n"),
        refused(
            "invalid request line",
            "GET  /a HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
    ];
    let chunked = format!("{post}Transfer-Encoding: chunked\r\n\r\n");
    let ext = "x".repeat(1100);
    let trailer = "t".repeat(9000);
    rows.extend([
        refused(
            "chunk size not hex",
            &format!("{chunked}zz\r\nhello\r\n0\r\n\r\n"),
        ),
        refused(
            "chunk size negative",
            &format!("{chunked}-5\r\nhello\r\n0\r\n\r\n"),
        ),
        refused(
            "chunk size overflowing u64",
            &format!("{chunked}10000000000000005\r\nhello\r\n0\r\n\r\n"),
        ),
        refused(
            "chunk size empty",
            &format!("{chunked}\r\nhello\r\n0\r\n\r\n"),
        ),
        refused(
            "chunk data longer than its size",
            &format!("{chunked}5\r\nhelloXX\r\n0\r\n\r\n"),
        ),
        refused(
            "chunk extension over 1 KiB",
            &format!("{chunked}5;e={ext}\r\nhello\r\n0\r\n\r\n"),
        ),
        refused(
            "trailers over 8 KiB",
            &format!("{chunked}5\r\nhello\r\n0\r\nX-T: {trailer}\r\n\r\n"),
        ),
    ]);
    rows
}

/// Heads and bodies over the caps, answered by the proxy itself.
fn cap_rows() -> Vec<Row> {
    let big = "a".repeat(1100);
    let many: String = (0..6).map(|i| format!("X-{i}: v\r\n")).collect();
    let five: String = (0..4).map(|i| format!("X-{i}: v\r\n")).collect();
    let chunked = "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunked_at_node = to_node(
        "POST /b HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n",
        "h",
        "",
    );
    let first = "10\r\n0123456789abcdef\r\n";
    vec![
        Row::new("head over --max-head-size: 431")
            .flags(&["--max-head-size", "1024"])
            .step(send(format!(
                "GET /a HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n"
            )))
            .step(Step::Own(431, None))
            .closes(),
        Row::new("more headers than --max-headers: 431")
            .flags(&["--max-headers", "5"])
            .step(send(format!("GET /a HTTP/1.1\r\nHost: h\r\n{many}\r\n")))
            .step(Step::Own(431, None))
            .closes(),
        Row::new("as many headers as --max-headers: forwarded")
            .flags(&["--max-headers", "5"])
            .step(send(format!("GET /a HTTP/1.1\r\nHost: h\r\n{five}\r\n")))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n5"))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n5"))
            .node_gets(to_node(
                &format!("GET /a HTTP/1.1\r\nHost: h\r\n{five}"),
                "h",
                "",
            )),
        Row::new("Content-Length over --max-body-size: 413 before any node")
            .flags(&["--max-body-size", "16"])
            .step(send(
                "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n",
            ))
            .step(Step::Own(413, Some("payload_too_large")))
            .closes(),
        Row::new("Content-Length at --max-body-size: forwarded")
            .flags(&["--max-body-size", "16"])
            .step(send(
                "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
            ))
            .reply(node::send(
                "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            ))
            .step(get("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
            .node_gets(to_node(
                "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n",
                "h",
                "0123456789abcdef",
            )),
        Row::new("chunks over --max-body-size in the first read: 413, nothing forwarded")
            .flags(&["--max-body-size", "16"])
            .step(send(format!("{chunked}{first}1\r\nx\r\n0\r\n\r\n")))
            .step(Step::Own(413, Some("payload_too_large")))
            .closes(),
        Row::new("chunks over --max-body-size after the head was forwarded: 413")
            .flags(&["--max-body-size", "16"])
            .step(send(format!("{chunked}{first}")))
            .step(Step::NodeGot(chunked_at_node.len() + first.len()))
            .step(send("1\r\nx\r\n0\r\n\r\n"))
            .step(Step::Own(413, Some("payload_too_large")))
            .node_gets_part([chunked_at_node.clone(), first.as_bytes().to_vec()].concat())
            .closes(),
        Row::new("invalid chunk size after the head was forwarded: 400")
            .step(send(format!("{chunked}{first}")))
            .step(Step::NodeGot(chunked_at_node.len() + first.len()))
            .step(send("zz\r\nhello\r\n0\r\n\r\n"))
            .step(Step::Own(400, Some("bad_request")))
            .node_gets_part([chunked_at_node, first.as_bytes().to_vec()].concat())
            .closes(),
    ]
}

const OK2: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Valid requests and answers at the edges of HTTP/1.1 framing.
fn edge_rows() -> Vec<Row> {
    let chunks = "5;name=value\r\nhello\r\n006;a;b=\"q s\"\r\n world\r\nA\r\n0123456789\r\n0;last\r\nX-Trailer: t\r\n\r\n";
    let hop_request = "GET /hop HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Keep: yes\r\n\r\n";
    let hop_answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Node: n\r\n\r\nok";
    vec![
        Row::new("chunked body with extensions and a trailer: passed verbatim")
            .step(send(format!("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}")))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node(
                "POST /c HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n",
                "h",
                chunks,
            )),
        Row::new("Transfer-Encoding: Chunked (any case)")
            .step(send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node(
                "POST /c HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n",
                "h",
                "2\r\nhi\r\n0\r\n\r\n",
            )),
        Row::new("three pipelined requests in one write: answered in order")
            .step(send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree"))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwoHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree"))
            .node_gets(to_node("GET /1 HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .node_gets(to_node("POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n", "h", "abc"))
            .node_gets(to_node("GET /3 HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .one_upstream(),
        Row::new("Expect: 100-continue: 100 from the proxy, Expect not forwarded")
            .step(send("POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"))
            .step(get("HTTP/1.1 100 Continue\r\n\r\n"))
            .step(send("hello"))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n", "h", "hello")),
        Row::new("Expect: 100-continue with the body already sent: no 100")
            .step(send("POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n", "h", "hello")),
        Row::new("HEAD answer with Content-Length and no body")
            .step(send("HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n"))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n"))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n"))
            .node_gets(to_node("HEAD /h HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .one_upstream(),
        // The proxy frames the message itself: the node's (informative)
        // Transfer-Encoding is not said again on a HEAD answer, which RFC
        // 9112 §6.1 allows; what matters is that no chunk is waited for.
        Row::new("HEAD answer with Transfer-Encoding: chunked and no body")
            .step(send("HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n"))
            .reply(node::send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
            .step(get("HTTP/1.1 200 OK\r\n\r\n"))
            .node_gets(to_node("HEAD /h HTTP/1.1\r\nHost: h\r\n", "h", "")),
        Row::new("204 without a body")
            .step(send("DELETE /d HTTP/1.1\r\nHost: h\r\n\r\n"))
            .reply(node::send("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"))
            .step(get("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"))
            .node_gets(to_node("DELETE /d HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .one_upstream(),
        Row::new("304 without a body (its Content-Length is the entity's)")
            .step(send("GET /m HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n"))
            .reply(node::send("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n"))
            .step(get("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n"))
            .node_gets(to_node("GET /m HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n", "h", ""))
            .one_upstream(),
        Row::new("answer framed by close: the whole body, then the close")
            .step(send("GET /z HTTP/1.1\r\nHost: h\r\n\r\n"))
            .reply(Reply::SendClose(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world".to_vec()))
            .step(get("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nconnection: close\r\n\r\nhello world"))
            .node_gets(to_node("GET /z HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .closes(),
        Row::new("chunked answer: chunks passed verbatim")
            .step(send("GET /k HTTP/1.1\r\nHost: h\r\n\r\n"))
            .reply(node::send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"))
            .step(get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"))
            .node_gets(to_node("GET /k HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .one_upstream(),
        Row::new("early 413 from the node while the body is still coming")
            .step(send(format!("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n{}", "a".repeat(1000))))
            .reply(Reply::Early(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"error\":\"x\"}".to_vec()))
            .step(get("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 13\r\nconnection: close\r\n\r\n{\"error\":\"x\"}"))
            .node_gets_part(to_node("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n", "h", ""))
            .closes(),
        Row::new("hop-by-hop fields stripped both ways")
            .step(send(hop_request))
            .reply(node::send(hop_answer))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Node: n\r\n\r\nok"))
            .node_gets(to_node("GET /hop HTTP/1.1\r\nHost: h\r\nX-Keep: yes\r\n", "h", "")),
        Row::new("X-Forwarded-* of an untrusted client replaced")
            .step(send("GET /f HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\r\n"))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node("GET /f HTTP/1.1\r\nHost: h\r\n", "h", "")),
        Row::new("X-Forwarded-For of a trusted proxy extended")
            .flags(&["--trusted-proxies", "127.0.0.1"])
            .step(send("GET /f HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n"))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(b"GET /f HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 6.6.6.6, 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n".to_vec()),
        Row::new("absolute form: origin form and the target's authority as Host")
            .step(send("GET http://127.0.0.1:9/x?q=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n"))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node("GET /x?q=1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n", "127.0.0.1:9", "")),
        Row::new("HTTP/1.0 without keep-alive: closed after the answer")
            .step(send("GET /ten HTTP/1.0\r\nHost: h\r\n\r\n"))
            .reply(node::send(OK2))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: close\r\n\r\nok"))
            .node_gets(to_node("GET /ten HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .closes(),
        Row::new("Connection: close from the client: closed after the answer")
            .step(send("GET /bye HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
            .reply(node::send(OK2))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: close\r\n\r\nok"))
            .node_gets(to_node("GET /bye HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .closes(),
        Row::new("keep-alive: three requests in turn on one upstream connection")
            .step(send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"))
            .step(send("POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n22"))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"))
            .step(send("GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"))
            .step(get("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3"))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"))
            .reply(node::send("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3"))
            .node_gets(to_node("GET /1 HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .node_gets(to_node("POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n", "h", "22"))
            .node_gets(to_node("GET /3 HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .one_upstream(),
        Row::new("a request in pieces: split inside the head and the body")
            .step(send("POST /p HTTP/1.1\r\nHo"))
            .step(send("st: h\r\nContent-Length: 6\r"))
            .step(send("\n\r\nab"))
            .step(send("cdef"))
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n", "h", "abcdef")),
    ]
}

/// A node's answer the proxy cannot frame is not passed on: 502 in its
/// place (the node connection is dropped, not reused); and the client's own
/// end of the stream.
fn hostile_answer_rows() -> Vec<Row> {
    let request = "GET /r HTTP/1.1\r\nHost: h\r\n";
    let bad = |name: &'static str, answer: &str| {
        Row::new(name)
            .step(send(format!("{request}\r\n")))
            .reply(node::send(answer))
            .node_gets(to_node(request, "h", ""))
    };
    vec![
        // A head that parses but is framed ambiguously: 502 and the close
        // (the proxy cannot tell where the node's bytes end).
        bad(
            "answer with CL and TE",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .step(Step::Own(502, Some("bad_gateway")))
        .closes(),
        bad(
            "answer with two CLs",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        )
        .step(Step::Own(502, Some("bad_gateway")))
        .closes(),
        bad(
            "answer with a bad CL",
            "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
        )
        .step(Step::Own(502, Some("bad_gateway")))
        .closes(),
        bad(
            "answer with TE gzip",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
        )
        .step(Step::Own(502, Some("bad_gateway")))
        .closes(),
        // A head that does not parse: 502, the client's connection stays.
        bad(
            "answer with obs-fold",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n c\r\n\r\nok",
        )
        .step(Step::OwnAny(502, "bad_gateway")),
        bad("answer that is not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n")
            .step(Step::OwnAny(502, "bad_gateway")),
        Row::new("request sent whole, then the client's FIN: answered, then closed")
            .step(send("GET /fin HTTP/1.1\r\nHost: h\r\n\r\n"))
            .step(Step::Shutdown)
            .reply(node::send(OK2))
            .step(get(OK2))
            .node_gets(to_node("GET /fin HTTP/1.1\r\nHost: h\r\n", "h", ""))
            .closes(),
        Row::new("body cut by the client's FIN: the node's request is cut too")
            .step(send(
                "POST /cut HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
            ))
            .step(Step::NodeGot(
                to_node(
                    "POST /cut HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n",
                    "h",
                    "abc",
                )
                .len(),
            ))
            .step(Step::Shutdown)
            .node_gets_part(to_node(
                "POST /cut HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n",
                "h",
                "abc",
            ))
            .closes(),
    ]
}

#[tokio::test]
async fn hostile_answers_and_client_ends() {
    run_all(hostile_answer_rows()).await;
}

#[tokio::test]
async fn smuggling_shapes_are_refused_and_nothing_is_forwarded() {
    run_all(smuggling_rows()).await;
}

#[tokio::test]
async fn caps_are_answered_by_the_proxy() {
    run_all(cap_rows()).await;
}

#[tokio::test]
async fn valid_edge_cases_pass_through_exactly() {
    run_all(edge_rows()).await;
}
