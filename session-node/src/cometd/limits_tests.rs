//! The engine's bounds: clients per address, handshakes never connected,
//! and queues by count and bytes — a flood is refused to its sender, and
//! never costs the receivers their messages or their clients.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::json;
use shared_types::bayeux::*;

use super::tests::{engine_with, handshake, one, session_with, PEER};
use super::*;

const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

fn handshake_from(bayeux: &Bayeux, peer: IpAddr) -> Message {
    let hs = json!({"channel": META_HANDSHAKE, "version": "1.0", "supportedConnectionTypes": ["long-polling"]});
    let mut outcome = bayeux.handle(
        vec![serde_json::from_value(hs).unwrap()],
        Transport::LongPolling,
        peer,
    );
    outcome.replies.remove(0)
}

#[test]
fn a_handshake_flood_from_one_address_leaves_others_working() {
    let bayeux = engine_with(BayeuxConfig {
        max_clients_per_address: 3,
        max_clients: 5,
        ..BayeuxConfig::default()
    });
    let ids: Vec<String> = (0..3)
        .map(|_| handshake_from(&bayeux, PEER).client_id.unwrap())
        .collect();
    let refused = handshake_from(&bayeux, PEER);
    assert_eq!(
        refused.error.as_deref(),
        Some("429::too many clients from this address")
    );
    assert_eq!(handshake_from(&bayeux, OTHER).successful, Some(true));
    assert_eq!(handshake_from(&bayeux, OTHER).successful, Some(true));
    assert_eq!(
        handshake_from(&bayeux, OTHER).error.as_deref(),
        Some("503::too many clients"),
        "the node-wide cap still holds"
    );
    // A disconnect frees the address's slot.
    let bye = one(
        &bayeux,
        json!({"channel": META_DISCONNECT, "clientId": ids[0]}),
    );
    assert_eq!(bye.successful, Some(true));
    assert_eq!(handshake_from(&bayeux, PEER).successful, Some(true));
}

#[tokio::test(start_paused = true)]
async fn handshakes_never_connected_are_swept_within_seconds() {
    let bayeux = engine_with(BayeuxConfig {
        max_clients_per_address: 2,
        handshake_timeout: Duration::from_secs(2),
        ..BayeuxConfig::default()
    });
    let idle = handshake(&bayeux);
    let connected = handshake(&bayeux);
    let outcome = bayeux.handle(
        vec![serde_json::from_value(json!({"channel": META_CONNECT, "clientId": connected, "connectionType": "long-polling", "advice": {"timeout": 0}})).unwrap()],
        Transport::LongPolling,
        PEER,
    );
    bayeux.hold(outcome.connect.unwrap()).await;
    assert!(
        handshake_from(&bayeux, PEER).successful == Some(false),
        "at the cap"
    );
    tokio::time::advance(Duration::from_millis(2100)).await;
    assert_eq!(bayeux.sweep(), 1, "only the one that never connected");
    assert_eq!(bayeux.client_count(), 1);
    let reply = one(
        &bayeux,
        json!({"channel": META_SUBSCRIBE, "clientId": idle, "subscription": "/x"}),
    );
    assert_eq!(reply.error.as_deref(), Some("402::Unknown client"));
    assert_eq!(
        handshake_from(&bayeux, PEER).successful,
        Some(true),
        "its slot is free again"
    );
}

/// A batch of `n` publishes of `data` to the session's channel.
fn flood(
    bayeux: &Bayeux,
    client: &str,
    token: &str,
    n: usize,
    data: serde_json::Value,
) -> Vec<Message> {
    let channel = session_data_channel(token);
    let batch = (0..n)
        .map(|i| {
            serde_json::from_value(
                json!({"channel": channel, "clientId": client, "data": data, "id": i.to_string()}),
            )
            .unwrap()
        })
        .collect();
    bayeux.handle(batch, Transport::LongPolling, PEER).replies
}

#[test]
fn a_flooding_sender_is_refused_and_the_receivers_keep_everything() {
    let bayeux = engine_with(BayeuxConfig {
        max_queue: 100,
        ..BayeuxConfig::default()
    });
    let (token, users) = session_with(&bayeux, &[1, 2, 2]);
    let customer = &users[0].0;
    for (agent, _) in &users[1..] {
        bayeux.drain_queue(agent);
    }
    let replies = flood(&bayeux, customer, &token, 110, json!({"n": 1}));
    let accepted = replies
        .iter()
        .filter(|r| r.successful == Some(true))
        .count();
    let refused: Vec<&Message> = replies
        .iter()
        .filter(|r| r.successful == Some(false))
        .collect();
    assert_eq!(accepted, 100);
    assert_eq!(refused.len(), 10);
    assert!(
        refused[0].error.as_deref().unwrap().starts_with("429::"),
        "{:?}",
        refused[0]
    );
    // The receivers are still there, with every accepted message.
    for (agent, _) in &users[1..] {
        assert_eq!(bayeux.drain_queue(agent).len(), 100);
        let reply = one(
            &bayeux,
            json!({"channel": META_UNSUBSCRIBE, "clientId": agent, "subscription": "/x"}),
        );
        assert_eq!(
            reply.successful,
            Some(true),
            "{reply:?}: still a known client"
        );
    }
    // Once they have taken their messages, the sender may go on.
    let replies = flood(&bayeux, customer, &token, 1, json!({"n": 2}));
    assert_eq!(replies[0].successful, Some(true));
}

#[test]
fn queues_are_bounded_by_bytes_too() {
    let bayeux = engine_with(BayeuxConfig {
        max_queue_bytes: 64 * 1024,
        ..BayeuxConfig::default()
    });
    let (token, users) = session_with(&bayeux, &[1, 2]);
    bayeux.drain_queue(&users[1].0);
    let page = json!("x".repeat(10 * 1024));
    let replies = flood(&bayeux, &users[0].0, &token, 10, page);
    let accepted = replies
        .iter()
        .filter(|r| r.successful == Some(true))
        .count();
    assert_eq!(accepted, 6, "six 10 KiB messages fit in 64 KiB");
    let queued = bayeux.drain_queue(&users[1].0);
    assert_eq!(queued.len(), 6);
}

#[test]
fn one_handshake_per_batch() {
    let bayeux = engine_with(BayeuxConfig::default());
    let hs = json!({"channel": META_HANDSHAKE, "version": "1.0", "supportedConnectionTypes": ["long-polling"]});
    let batch = (0..3)
        .map(|_| serde_json::from_value(hs.clone()).unwrap())
        .collect();
    let outcome = bayeux.handle(batch, Transport::LongPolling, PEER);
    assert_eq!(outcome.replies[0].successful, Some(true));
    assert_eq!(
        outcome.replies[1].error.as_deref(),
        Some("400::one handshake per batch")
    );
    assert_eq!(
        outcome.replies[2].error.as_deref(),
        Some("400::one handshake per batch")
    );
    assert_eq!(bayeux.client_count(), 1);
}
