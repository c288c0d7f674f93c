//! Rows that need more than the table: the node's counters on the admin
//! listener, the header timeout, and a target the proxy must not connect to.

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::net::TcpListener;

use crate::client::RawClient;
use crate::common::TestProxy;
use crate::harness::{check_node, node_name, run, run_steps, send, to_node, Row, Step};
use crate::node::{RawNode, DEFAULT_REPLY};

/// The value of `proxy_requests_total{node,status}` on the admin listener
/// (0 when the series does not exist).
async fn requests_total(admin: std::net::SocketAddr, node: &str, status: u16) -> u64 {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("proxy_requests_total{"))
        .filter(|l| l.contains(&format!("node=\"{node}\"")))
        .filter(|l| l.contains(&format!("status=\"{status}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn an_invalid_chunk_after_the_head_is_the_clients_400_not_the_nodes_502() {
    let name = node_name("chunk");
    let node = RawNode::start(&name, Vec::new()).await;
    let flag = node.flag();
    let proxy = TestProxy::start_with_admin(&["--node", &flag], true).await;
    let admin = proxy.handle.admin_addr().unwrap();

    let head = "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let at_node = to_node(
        "POST /b HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n",
        "h",
        "",
    );
    let first = "3\r\nabc\r\n";
    let own_400_before = requests_total(admin, "-", 400).await;
    let mut client = RawClient::connect(proxy.addr).await;
    let steps = [
        send(format!("{head}{first}")),
        Step::NodeGot(at_node.len() + first.len()),
        send("ffffffffffffffffffff\r\n"),
        Step::Own(400, Some("bad_request")),
    ];
    run_steps(&mut client, &node, &steps).await.unwrap();
    client.expect_closed().await.unwrap();

    // A good request after it, so that the node's counters are known to be
    // live (an absent 502 series then means "not counted").
    let mut next = RawClient::connect(proxy.addr).await;
    next.send(b"GET /alive HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    next.expect_exact(DEFAULT_REPLY).await.unwrap();
    check_node(
        &node.seen(),
        &[
            ([at_node, first.as_bytes().to_vec()].concat(), false),
            (to_node("GET /alive HTTP/1.1\r\nHost: h\r\n", "h", ""), true),
        ],
        false,
    )
    .unwrap();
    assert_eq!(requests_total(admin, &name, 200).await, 1, "counters live");
    assert_eq!(
        requests_total(admin, &name, 502).await,
        0,
        "the client's bad chunk counted as the node's 502"
    );
    assert_eq!(requests_total(admin, &name, 400).await, 0);
    assert!(
        requests_total(admin, "-", 400).await > own_400_before,
        "the 400 is counted as the proxy's own"
    );
}

#[tokio::test]
async fn a_slow_head_is_cut_after_the_header_timeout() {
    let node = RawNode::start(&node_name("slow"), Vec::new()).await;
    let flag = node.flag();
    let proxy = TestProxy::start(&["--node", &flag, "--header-timeout", "300ms"]).await;
    let mut client = RawClient::connect(proxy.addr).await;
    let start = Instant::now();
    client
        .send(b"GET /slow HTTP/1.1\r\nHost: h\r\n")
        .await
        .unwrap();
    // Closed without an answer (README: "closes the connection").
    client.expect_closed().await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250), "cut after {took:?}");
    assert!(node.seen().is_empty(), "{:?}", node.seen());
}

#[tokio::test]
async fn a_slow_second_head_is_cut_after_the_header_timeout() {
    let node = RawNode::start(&node_name("slow2"), Vec::new()).await;
    let flag = node.flag();
    let proxy = TestProxy::start(&["--node", &flag, "--header-timeout", "300ms"]).await;
    let mut client = RawClient::connect(proxy.addr).await;
    client
        .send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    client.expect_exact(DEFAULT_REPLY).await.unwrap();
    let start = Instant::now();
    client.send(b"GET /2 HTTP/1.1\r\nHo").await.unwrap();
    client.expect_closed().await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250), "cut after {took:?}");
    check_node(
        &node.seen(),
        &[(to_node("GET /1 HTTP/1.1\r\nHost: h\r\n", "h", ""), true)],
        false,
    )
    .unwrap();
}

#[tokio::test]
async fn a_silent_first_connection_is_cut_after_the_header_timeout() {
    // `--help`: "from the accept, for a connection's first request".
    let node = RawNode::start(&node_name("silent"), Vec::new()).await;
    let flag = node.flag();
    let proxy = TestProxy::start(&[
        "--node",
        &flag,
        "--header-timeout",
        "300ms",
        "--keep-alive-timeout",
        "60s",
    ])
    .await;
    let mut client = RawClient::connect(proxy.addr).await;
    let start = Instant::now();
    client.expect_closed().await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250), "cut after {took:?}");
}

#[tokio::test]
async fn an_absolute_form_target_is_never_connected_to() {
    let trap = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = trap.local_addr().unwrap().to_string();
    let raw = format!("GET http://{authority}/x HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    let at_node = to_node(
        &format!("GET /x HTTP/1.1\r\nhost: {authority}\r\n"),
        &authority,
        "",
    );
    let row = Row::new("absolute form to a listening address")
        .step(send(raw))
        .step(Step::Get(DEFAULT_REPLY.to_vec()))
        .node_gets(at_node);
    run(&row).await.unwrap();
    assert!(
        trap.accept().now_or_never().is_none(),
        "the proxy connected to the absolute-form target"
    );
}
