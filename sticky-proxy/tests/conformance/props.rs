//! Property: a valid pipelined sequence of requests, written in pieces cut
//! at arbitrary points, reaches the node byte for byte and every request is
//! answered, in order, on one upstream connection.

use proptest::prelude::*;
use proptest::sample::Index;

use crate::harness::{get, run, send, to_node, Row};
use crate::node;

#[derive(Debug, Clone)]
enum Req {
    Get,
    Length(String),
    Chunked(Vec<String>),
}

fn request() -> impl Strategy<Value = Req> {
    prop_oneof![
        Just(Req::Get),
        "[a-z]{0,40}".prop_map(Req::Length),
        prop::collection::vec("[a-z0-9]{1,20}", 0..4).prop_map(Req::Chunked),
    ]
}

/// What the client sends for request `i`, and what the node must get.
fn wire(i: usize, req: &Req) -> (String, Vec<u8>) {
    match req {
        Req::Get => {
            let lines = format!("GET /g{i}?x=1 HTTP/1.1\r\nHost: h\r\n");
            (format!("{lines}\r\n"), to_node(&lines, "h", ""))
        }
        Req::Length(body) => {
            let lines = format!(
                "POST /l{i} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n",
                body.len()
            );
            (format!("{lines}\r\n{body}"), to_node(&lines, "h", body))
        }
        Req::Chunked(chunks) => {
            let mut body: String = chunks
                .iter()
                .map(|c| format!("{:x}\r\n{c}\r\n", c.len()))
                .collect();
            body.push_str("0\r\n\r\n");
            let sent = format!(
                "POST /c{i} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
            );
            let lines = format!("POST /c{i} HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n");
            (sent, to_node(&lines, "h", &body))
        }
    }
}

fn row(reqs: &[Req], cuts: &[Index]) -> Row {
    let mut row = Row::new("pipelined requests cut at random points").one_upstream();
    let mut bytes = Vec::new();
    let mut answers = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        let (sent, at_node) = wire(i, req);
        bytes.extend_from_slice(sent.as_bytes());
        row = row.node_gets(at_node);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\nr{i}",
            1 + i.to_string().len()
        );
        answers.extend_from_slice(answer.as_bytes());
        row = row.reply(node::send(&answer));
    }
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    for piece in at.windows(2) {
        row = row.step(send(&bytes[piece[0]..piece[1]]));
    }
    row.step(get(answers))
}

/// 16 cases (a few seconds) unless `PROPTEST_CASES` asks for more (a
/// longer fuzzing run).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn pipelined_requests_in_arbitrary_pieces(
        reqs in prop::collection::vec(request(), 1..4),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let row = row(&reqs, &cuts);
        let result = runtime.block_on(run(&row));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
