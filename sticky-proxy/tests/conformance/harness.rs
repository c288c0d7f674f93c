//! One conformance row: a proxy in front of one [`RawNode`], a raw client
//! running the row's steps, then the exact bytes the node saw.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::client::RawClient;
use crate::common::TestProxy;
use crate::node::{RawNode, Reply, Seen, DEFAULT_REPLY};

/// What the proxy adds to every forwarded head (client on 127.0.0.1, plain
/// http), before `x-forwarded-host`.
pub const XF: &str = "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n";

/// The request sent after a row that must leave the connection open.
pub const NEXT: &str = "GET /next HTTP/1.1\r\nHost: n\r\n\r\n";

/// The exact request the node gets: `lines` (request line and the fields
/// it keeps, each with its CRLF), the proxy's `X-Forwarded-*`, the blank
/// line, then `body` as it was sent.
pub fn to_node(lines: &str, host: &str, body: &str) -> Vec<u8> {
    format!("{lines}{XF}x-forwarded-host: {host}\r\n\r\n{body}").into_bytes()
}

/// One step of the client.
#[derive(Debug, Clone)]
pub enum Step {
    Send(Vec<u8>),
    /// The client gets exactly these bytes next (a relayed answer, or
    /// `100 Continue`).
    Get(Vec<u8>),
    /// The client gets an answer of the proxy's own, with `Connection:
    /// close`: its status and, for a JSON error, its `error` code (`None`:
    /// a bare status, as 431).
    Own(u16, Option<&'static str>),
    /// An answer of the proxy's own, its `Connection` not checked.
    OwnAny(u16, &'static str),
    /// The client closes its write side (it has sent everything).
    Shutdown,
    /// Waits (bounded) until the node has received this many bytes in all:
    /// the part sent so far has been forwarded.
    NodeGot(usize),
}

pub fn send(bytes: impl AsRef<[u8]>) -> Step {
    Step::Send(bytes.as_ref().to_vec())
}

pub fn get(bytes: impl AsRef<[u8]>) -> Step {
    Step::Get(bytes.as_ref().to_vec())
}

/// What the connection does after the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The proxy closes it, with nothing more said.
    Close,
    /// It stays usable: [`NEXT`] gets [`DEFAULT_REPLY`] (and reaches the
    /// node after the row's own requests).
    Open,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    pub flags: Vec<&'static str>,
    pub replies: Vec<Reply>,
    pub steps: Vec<Step>,
    /// The exact bytes of each request the node gets, in order, and whether
    /// it got each one whole. Empty: nothing reaches the node.
    pub node: Vec<(Vec<u8>, bool)>,
    pub after: After,
    /// Every request reaches the node on one (reused) connection.
    pub one_upstream: bool,
}

impl Row {
    pub fn new(name: &'static str) -> Row {
        Row {
            name,
            flags: Vec::new(),
            replies: Vec::new(),
            steps: Vec::new(),
            node: Vec::new(),
            after: After::Open,
            one_upstream: false,
        }
    }

    pub fn flags(mut self, flags: &[&'static str]) -> Row {
        self.flags.extend_from_slice(flags);
        self
    }

    pub fn reply(mut self, reply: Reply) -> Row {
        self.replies.push(reply);
        self
    }

    pub fn step(mut self, step: Step) -> Row {
        self.steps.push(step);
        self
    }

    /// The node gets this request whole.
    pub fn node_gets(mut self, bytes: Vec<u8>) -> Row {
        self.node.push((bytes, true));
        self
    }

    /// The node gets this much of a request, then it is cut.
    pub fn node_gets_part(mut self, bytes: Vec<u8>) -> Row {
        self.node.push((bytes, false));
        self
    }

    pub fn closes(mut self) -> Row {
        self.after = After::Close;
        self
    }

    pub fn one_upstream(mut self) -> Row {
        self.one_upstream = true;
        self
    }
}

/// A refused request: one write (with a smuggled request behind it), the
/// proxy's own 400, the close, and nothing reaching the node.
pub fn refused(name: &'static str, raw: &str) -> Row {
    let smuggled = format!("{raw}GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
    Row::new(name)
        .step(send(smuggled))
        .step(Step::Own(400, Some("bad_request")))
        .closes()
}

static NEXT_NODE: AtomicUsize = AtomicUsize::new(0);

/// A node name unique in the test process (metrics are process-wide).
pub fn node_name(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT_NODE.fetch_add(1, Ordering::Relaxed))
}

/// Runs one row against a fresh proxy and node.
pub async fn run(row: &Row) -> Result<(), String> {
    let node = RawNode::start(&node_name("cf"), row.replies.clone()).await;
    let flag = node.flag();
    let mut args = vec!["--node", flag.as_str()];
    args.extend_from_slice(&row.flags);
    let proxy = TestProxy::start(&args).await;
    let mut client = RawClient::connect(proxy.addr).await;
    run_steps(&mut client, &node, &row.steps).await?;
    match row.after {
        After::Close => client.expect_closed().await?,
        After::Open => {
            client.send(NEXT.as_bytes()).await?;
            client
                .expect_exact(DEFAULT_REPLY)
                .await
                .map_err(|e| format!("the connection is not usable after the row: {e}"))?;
        }
    }
    let mut want = row.node.clone();
    if row.after == After::Open {
        want.push((to_node("GET /next HTTP/1.1\r\nHost: n\r\n", "n", ""), true));
    }
    check_node(&node.seen(), &want, row.one_upstream)
}

pub async fn run_steps(
    client: &mut RawClient,
    node: &RawNode,
    steps: &[Step],
) -> Result<(), String> {
    for step in steps {
        match step {
            Step::Send(bytes) => client.send(bytes).await?,
            Step::Get(bytes) => client.expect_exact(bytes).await?,
            Step::Own(status, code) => check_own(client, *status, *code, true).await?,
            Step::OwnAny(status, code) => check_own(client, *status, Some(code), false).await?,
            Step::Shutdown => client.shutdown().await?,
            Step::NodeGot(n) => node.wait_bytes(*n).await?,
        }
    }
    Ok(())
}

pub async fn check_own(
    client: &mut RawClient,
    status: u16,
    code: Option<&str>,
    close: bool,
) -> Result<(), String> {
    let got = client.read_own().await?;
    let wrong = |what: &str| Err(format!("{what}: {got:?}"));
    if !got.status_line.starts_with(&format!("HTTP/1.1 {status} ")) {
        return wrong(&format!("not a {status}"));
    }
    if close && got.header("connection") != Some("close") {
        return wrong("no `connection: close`");
    }
    match code {
        None if !got.body.is_empty() => return wrong("a body on a bare answer"),
        None => {}
        Some(code) => {
            if got.header("content-type") != Some("application/json") {
                return wrong("not JSON");
            }
            let body: serde_json::Value = serde_json::from_slice(&got.body)
                .map_err(|e| format!("not a JSON body ({e}): {got:?}"))?;
            if body["error"] != code {
                return wrong(&format!("error code is not {code:?}"));
            }
        }
    }
    Ok(())
}

pub fn check_node(
    seen: &[Seen],
    want: &[(Vec<u8>, bool)],
    one_upstream: bool,
) -> Result<(), String> {
    let got: Vec<(String, bool)> = seen
        .iter()
        .map(|s| (String::from_utf8_lossy(&s.bytes).into_owned(), s.complete))
        .collect();
    let wanted: Vec<(String, bool)> = want
        .iter()
        .map(|(b, c)| (String::from_utf8_lossy(b).into_owned(), *c))
        .collect();
    if got != wanted {
        return Err(format!(
            "the node saw (bytes, whole):\n      {got:?}\n    wanted\n      {wanted:?}"
        ));
    }
    if one_upstream && seen.windows(2).any(|w| w[0].conn != w[1].conn) {
        let conns: Vec<usize> = seen.iter().map(|s| s.conn).collect();
        return Err(format!(
            "the requests came on several node connections: {conns:?}"
        ));
    }
    Ok(())
}
