//! Protocol tests of the Bayeux engine and both transports.

use std::time::Duration;

use serde_json::{json, Value};
use shared_types::bayeux::*;

use super::*;
use crate::sessions::SessionLimits;
use crate::test_support::{access_config, agent_credential, agent_jwt};

/// The address the test batches come from.
pub(super) const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

pub(super) fn engine() -> Bayeux {
    engine_with(BayeuxConfig::default())
}

pub(super) fn engine_with(config: BayeuxConfig) -> Bayeux {
    Bayeux::new(
        Arc::new(Sessions::new(SessionLimits::default(), &access_config())),
        Readiness::default(),
        "node-9".into(),
        config,
    )
}

pub(super) fn msg(value: Value) -> Message {
    serde_json::from_value(value).unwrap()
}

/// The answer to one message. A successful service call answers its result
/// and then a bare acknowledgement; this returns the result.
pub(super) fn one(bayeux: &Bayeux, value: Value) -> Message {
    let mut outcome = bayeux.handle(vec![msg(value)], Transport::LongPolling, PEER);
    assert!(outcome.connect.is_none());
    if outcome.replies.len() == 2 {
        let ack = outcome.replies.pop().unwrap();
        assert_eq!(ack.successful, Some(true));
        assert_eq!(
            (ack.id.clone(), ack.data.clone()),
            (outcome.replies[0].id.clone(), None)
        );
    }
    assert_eq!(outcome.replies.len(), 1);
    outcome.replies.remove(0)
}

pub(super) fn handshake(bayeux: &Bayeux) -> String {
    let reply = one(
        bayeux,
        json!({"channel": META_HANDSHAKE, "version": "1.0", "supportedConnectionTypes": ["long-polling"], "id": "1"}),
    );
    assert_eq!(reply.successful, Some(true), "{reply:?}");
    reply.client_id.unwrap()
}

/// A service call; an agent-side join carries an agent credential unless
/// the test gave one (or `null`).
pub(super) fn service(bayeux: &Bayeux, client: &str, channel: &str, mut data: Value) -> Message {
    let agent_side = data["role"] == 2 || data["role"] == 3;
    if channel == SERVICE_JOIN && agent_side && data.get("agentToken").is_none() {
        data["agentToken"] = json!(agent_jwt("ann", None, None));
    }
    one(
        bayeux,
        json!({"channel": channel, "clientId": client, "data": data, "id": "s"}),
    )
}

/// Creates a session and joins `roles` to it, each as its own client, all
/// subscribed to the data channel. Returns the token and (client, userToken)s.
pub(super) fn session_with(bayeux: &Bayeux, roles: &[u8]) -> (String, Vec<(String, String)>) {
    let creator = handshake(bayeux);
    let created = service(bayeux, &creator, SERVICE_CREATE, json!({}))
        .data
        .unwrap();
    let token = created["sessionToken"].as_str().unwrap().to_owned();
    let mut users = Vec::new();
    for role in roles {
        let client = handshake(bayeux);
        let joined = service(
            bayeux,
            &client,
            SERVICE_JOIN,
            json!({"sessionToken": token, "role": role, "customerKey": created["customerKey"]}),
        );
        assert_eq!(joined.successful, Some(true), "{joined:?}");
        let user_token = joined.data.unwrap()["userToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let sub = one(
            bayeux,
            json!({"channel": META_SUBSCRIBE, "clientId": client, "subscription": session_data_channel(&token)}),
        );
        assert_eq!(sub.successful, Some(true), "{sub:?}");
        users.push((client, user_token));
    }
    (token, users)
}

pub(super) fn deliver_events(
    bayeux: &Bayeux,
    events: &mut tokio::sync::broadcast::Receiver<SessionEvent>,
) {
    while let Ok(event) = events.try_recv() {
        bayeux.on_event(&event);
    }
}

#[test]
fn handshake_answers_client_id_advice_and_node() {
    let bayeux = engine();
    let reply = one(
        &bayeux,
        json!({"channel": META_HANDSHAKE, "version": "1.0", "supportedConnectionTypes": ["websocket", "long-polling"], "id": "1"}),
    );
    assert_eq!(reply.successful, Some(true));
    assert_eq!(reply.id, Some(json!("1")));
    let id = reply.client_id.as_deref().unwrap();
    assert_eq!(bayeux::node_of_client_id(id), Some("node-9"), "{id}");
    assert_eq!(reply.version.as_deref(), Some("1.0"));
    assert_eq!(reply.advice.as_ref().unwrap()["reconnect"], "retry");
    assert_eq!(reply.advice.as_ref().unwrap()["timeout"], 30_000);
    assert_eq!(reply.ext.unwrap()["gcbSessionServer"], "node-9");
    assert_eq!(bayeux.client_count(), 1);
}

#[test]
fn handshake_without_a_known_transport_fails() {
    let bayeux = engine();
    let reply = one(
        &bayeux,
        json!({"channel": META_HANDSHAKE, "version": "1.0", "supportedConnectionTypes": ["carrier-pigeon"]}),
    );
    assert_eq!(reply.successful, Some(false));
    assert!(reply.error.unwrap().starts_with("400::"));
    assert!(reply
        .supported_connection_types
        .unwrap()
        .contains(&"websocket".to_owned()));
}

#[test]
fn unknown_clients_are_told_to_handshake() {
    let bayeux = engine();
    for channel in [
        META_CONNECT,
        META_SUBSCRIBE,
        META_UNSUBSCRIBE,
        META_DISCONNECT,
        SERVICE_CREATE,
        "/session/123456789/data",
    ] {
        let mut outcome = bayeux.handle(
            vec![msg(json!({"channel": channel, "clientId": "nope", "subscription": "/x", "connectionType": "long-polling"}))],
            Transport::LongPolling,
            PEER,
        );
        let reply = outcome.replies.pop().unwrap();
        assert_eq!(reply.successful, Some(false), "{channel}");
        assert_eq!(
            reply.error.as_deref(),
            Some("402::Unknown client"),
            "{channel}"
        );
        assert_eq!(reply.advice.unwrap()["reconnect"], "handshake", "{channel}");
    }
}

#[test]
fn malformed_messages_get_400s() {
    let bayeux = engine();
    let client = handshake(&bayeux);
    for (message, prefix) in [
        (json!({"clientId": client}), "400::channel missing"),
        (
            json!({"channel": "/meta/bogus", "clientId": client}),
            "400::unknown meta channel",
        ),
        (
            json!({"channel": META_SUBSCRIBE, "clientId": client}),
            "400::subscription missing",
        ),
        (
            json!({"channel": SERVICE_JOIN, "clientId": client, "data": {"role": 1}}),
            "400::",
        ),
        (
            json!({"channel": SERVICE_JOIN, "clientId": client, "data": {"sessionToken": "1", "role": 7}}),
            "400::",
        ),
        (
            json!({"channel": "/service/nope", "clientId": client}),
            "404::",
        ),
    ] {
        let reply = one(&bayeux, message.clone());
        assert_eq!(reply.successful, Some(false), "{message}");
        assert!(
            reply.error.as_deref().unwrap().starts_with(prefix),
            "{message}: {reply:?}"
        );
    }
}

#[test]
fn services_share_the_session_rules() {
    let bayeux = engine();
    let (token, users) = session_with(&bayeux, &[1, 3]);
    let (_, customer_token) = &users[0];
    let (controller, controller_token) = &users[1];
    assert_eq!(bayeux.sessions.live_count(), 1);

    let refused = service(
        &bayeux,
        controller,
        SERVICE_STOP,
        json!({"userToken": customer_token}),
    );
    assert_eq!(
        refused.error.as_deref(),
        Some("403::only the controller may stop the session")
    );
    let stopped = service(
        &bayeux,
        controller,
        SERVICE_STOP,
        json!({"userToken": controller_token}),
    );
    assert_eq!(stopped.successful, Some(true));
    assert!(stopped.data.unwrap()["deactivationTime"].is_u64());
    let late = service(
        &bayeux,
        controller,
        SERVICE_JOIN,
        json!({"sessionToken": token, "role": 2}),
    );
    assert_eq!(late.error.as_deref(), Some("410::session ended"));
    let unknown = service(
        &bayeux,
        controller,
        SERVICE_JOIN,
        json!({"sessionToken": "000000000", "role": 2}),
    );
    assert_eq!(unknown.error.as_deref(), Some(services::SESSION_NOT_FOUND));
}

#[test]
fn exit_ends_the_session() {
    let bayeux = engine();
    let (_, users) = session_with(&bayeux, &[1, 2]);
    let exited = service(
        &bayeux,
        &users[1].0,
        SERVICE_EXIT,
        json!({"userToken": users[1].1}),
    );
    assert_eq!(exited.successful, Some(true));
    assert_eq!(bayeux.sessions.live_count(), 0);
}

#[test]
fn draining_nodes_refuse_create() {
    let bayeux = engine();
    bayeux.readiness.start_draining();
    let client = handshake(&bayeux);
    let reply = service(&bayeux, &client, SERVICE_CREATE, json!({}));
    assert_eq!(reply.error.as_deref(), Some("503::node draining"));
}

#[test]
fn only_participants_subscribe_or_publish_to_a_session() {
    let bayeux = engine();
    let (token, _users) = session_with(&bayeux, &[1, 2]);
    let (other_token, _) = session_with(&bayeux, &[1]);
    let outsider = handshake(&bayeux);
    let channel = session_data_channel(&token);
    let denied = one(
        &bayeux,
        json!({"channel": META_SUBSCRIBE, "clientId": outsider, "subscription": channel}),
    );
    assert!(denied.error.unwrap().starts_with("403::"));
    let denied = one(
        &bayeux,
        json!({"channel": channel, "clientId": outsider, "data": {"x": 1}}),
    );
    assert!(denied.error.unwrap().starts_with("403::"));
    let elsewhere = one(
        &bayeux,
        json!({"channel": "/chat/lobby", "clientId": outsider, "data": {}}),
    );
    assert!(elsewhere.error.unwrap().starts_with("403::"));
    let wildcard = one(
        &bayeux,
        json!({"channel": META_SUBSCRIBE, "clientId": outsider, "subscription": "/session/**"}),
    );
    assert!(wildcard.error.unwrap().starts_with("403::"));
    // Joined to another session does not open this one.
    let (other_client, _) = {
        let c = handshake(&bayeux);
        service(
            &bayeux,
            &c,
            SERVICE_JOIN,
            json!({"sessionToken": other_token, "role": 2}),
        );
        (c, ())
    };
    let denied = one(
        &bayeux,
        json!({"channel": META_SUBSCRIBE, "clientId": other_client, "subscription": channel}),
    );
    assert!(denied.error.unwrap().starts_with("403::"));
    // Service channels need no subscription and are accepted.
    let ok = one(
        &bayeux,
        json!({"channel": META_SUBSCRIBE, "clientId": outsider, "subscription": SERVICE_JOINED}),
    );
    assert_eq!(ok.successful, Some(true));
}

#[test]
fn data_reaches_every_other_participant_in_order() {
    let bayeux = engine();
    let (token, users) = session_with(&bayeux, &[1, 2, 3]);
    let channel = session_data_channel(&token);
    for i in 0..5 {
        let reply = one(
            &bayeux,
            json!({"channel": channel, "clientId": users[0].0, "data": {"seq": i}}),
        );
        assert_eq!(reply.successful, Some(true));
    }
    assert!(
        bayeux
            .drain_queue(&users[0].0)
            .iter()
            .all(|m| m.channel != channel),
        "not echoed"
    );
    for (client, _) in &users[1..] {
        let got: Vec<i64> = bayeux
            .drain_queue(client)
            .into_iter()
            .filter(|m| m.channel == channel)
            .map(|m| m.data.unwrap()["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }
    let unsub = one(
        &bayeux,
        json!({"channel": META_UNSUBSCRIBE, "clientId": users[1].0, "subscription": channel}),
    );
    assert_eq!(unsub.successful, Some(true));
    one(
        &bayeux,
        json!({"channel": channel, "clientId": users[0].0, "data": {"seq": 5}}),
    );
    assert!(bayeux.drain_queue(&users[1].0).is_empty());
    assert_eq!(bayeux.drain_queue(&users[2].0).len(), 1);
}

#[test]
fn events_reach_participants_whatever_caused_them() {
    let bayeux = engine();
    let mut events = bayeux.sessions.subscribe_events();
    let (token, users) = session_with(&bayeux, &[1]);
    deliver_events(&bayeux, &mut events);
    assert!(
        bayeux.drain_queue(&users[0].0).is_empty(),
        "no news of oneself"
    );

    // An agent joins over REST (the session core directly): the customer hears.
    let rest = bayeux
        .sessions
        .caller(PEER, Some(&agent_credential("ann", None, None)));
    let agent = bayeux
        .sessions
        .join(
            &rest,
            &token,
            shared_types::api::JoinRequest {
                role: Role::Controller,
                name: Some("Ann".into()),
                customer_key: None,
            },
        )
        .unwrap();
    deliver_events(&bayeux, &mut events);
    let got = bayeux.drain_queue(&users[0].0);
    assert_eq!(got[0].channel, SERVICE_JOINED);
    assert_eq!(got[0].data.as_ref().unwrap()["name"], "Ann");
    assert_eq!(got[1].channel, SERVICE_ACTIVATED);
    assert!(got[1].data.as_ref().unwrap()["activationTime"].is_u64());

    // A late CometD joiner of the active session is told it is active.
    let late = handshake(&bayeux);
    service(
        &bayeux,
        &late,
        SERVICE_JOIN,
        json!({"sessionToken": token, "role": 2}),
    );
    deliver_events(&bayeux, &mut events);
    let got = bayeux.drain_queue(&late);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].channel, SERVICE_ACTIVATED);
    bayeux.drain_queue(&users[0].0);

    // A REST stop deactivates the CometD participants too.
    bayeux.sessions.stop(&rest, &agent.user_token).unwrap();
    deliver_events(&bayeux, &mut events);
    let got = bayeux.drain_queue(&users[0].0);
    assert_eq!(got[0].channel, SERVICE_DEACTIVATED);
    assert!(got[0].data.as_ref().unwrap()["deactivationTime"].is_u64());
}

use shared_types::api::Role;

#[tokio::test(start_paused = true)]
async fn connect_is_held_until_a_message_or_the_timeout() {
    let bayeux = Arc::new(engine());
    let (token, users) = session_with(&bayeux, &[1, 2]);
    let agent = users[1].0.clone();

    // First connect (advice timeout 0) answers at once.
    let outcome = bayeux.handle(
        vec![msg(json!({"channel": META_CONNECT, "clientId": agent, "connectionType": "long-polling", "advice": {"timeout": 0}, "id": "c1"}))],
        Transport::LongPolling,
        PEER,
    );
    let answer = bayeux.hold(outcome.connect.unwrap()).await;
    assert_eq!(answer.last().unwrap().channel, META_CONNECT);

    // Next connect waits; a publish wakes it with the message first.
    let outcome = bayeux.handle(
        vec![msg(json!({"channel": META_CONNECT, "clientId": agent, "connectionType": "long-polling", "id": "c2"}))],
        Transport::LongPolling,
        PEER,
    );
    let waiter = tokio::spawn({
        let bayeux = Arc::clone(&bayeux);
        let held = outcome.connect.unwrap();
        async move { bayeux.hold(held).await }
    });
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(!waiter.is_finished());
    one(
        &bayeux,
        json!({"channel": session_data_channel(&token), "clientId": users[0].0, "data": "hi"}),
    );
    let answer = waiter.await.unwrap();
    assert_eq!(answer[0].data, Some(json!("hi")));
    assert_eq!(answer[1].channel, META_CONNECT);
    assert_eq!(answer[1].successful, Some(true));

    // With nothing to deliver, the connect answers at the advised timeout.
    let outcome = bayeux.handle(
        vec![msg(json!({"channel": META_CONNECT, "clientId": agent, "connectionType": "long-polling", "id": "c3"}))],
        Transport::LongPolling,
        PEER,
    );
    let started = tokio::time::Instant::now();
    let answer = bayeux.hold(outcome.connect.unwrap()).await;
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(answer.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_newer_connect_releases_the_older_one() {
    let bayeux = Arc::new(engine());
    let client = handshake(&bayeux);
    let connect = |id: &str| {
        bayeux
            .handle(
                vec![msg(json!({"channel": META_CONNECT, "clientId": client, "connectionType": "long-polling", "id": id}))],
                Transport::LongPolling,
                PEER,
            )
            .connect
            .unwrap()
    };
    let first = connect("1");
    let waiter = tokio::spawn({
        let bayeux = Arc::clone(&bayeux);
        async move { bayeux.hold(first).await }
    });
    tokio::task::yield_now().await;
    let _second = connect("2");
    let answer = waiter.await.unwrap();
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].id, Some(json!("1")));
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_long_poll_does_not_keep_its_client_alive() {
    let bayeux = Arc::new(engine());
    let client = handshake(&bayeux);
    let held = bayeux
        .handle(
            vec![msg(json!({"channel": META_CONNECT, "clientId": client, "connectionType": "long-polling"}))],
            Transport::LongPolling,
            PEER,
        )
        .connect
        .unwrap();
    let waiter = tokio::spawn({
        let bayeux = Arc::clone(&bayeux);
        async move { bayeux.hold(held).await }
    });
    tokio::task::yield_now().await;
    // The browser tab closes: the request, and the hold with it, is dropped.
    waiter.abort();
    let _ = waiter.await;
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(bayeux.sweep(), 1);
}

#[test]
fn the_wrong_connection_type_is_refused() {
    let bayeux = engine();
    let client = handshake(&bayeux);
    let outcome = bayeux.handle(
        vec![msg(
            json!({"channel": META_CONNECT, "clientId": client, "connectionType": "websocket"}),
        )],
        Transport::LongPolling,
        PEER,
    );
    assert!(outcome.replies[0]
        .error
        .as_deref()
        .unwrap()
        .starts_with("400::"));
}

#[tokio::test(start_paused = true)]
async fn silent_clients_are_swept_and_disconnect_forgets() {
    let bayeux = engine();
    let silent = handshake(&bayeux);
    let leaving = handshake(&bayeux);
    let reply = one(
        &bayeux,
        json!({"channel": META_DISCONNECT, "clientId": leaving}),
    );
    assert_eq!(reply.successful, Some(true));
    assert_eq!(bayeux.client_count(), 1);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(bayeux.sweep(), 0);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(bayeux.sweep(), 1);
    let reply = one(
        &bayeux,
        json!({"channel": META_SUBSCRIBE, "clientId": silent, "subscription": "/x"}),
    );
    assert_eq!(reply.error.as_deref(), Some("402::Unknown client"));
}

#[test]
fn joins_over_cometd_follow_the_same_access_rules() {
    let bayeux = engine();
    let creator = handshake(&bayeux);
    let created = service(&bayeux, &creator, SERVICE_CREATE, json!({}))
        .data
        .unwrap();
    let token = created["sessionToken"].as_str().unwrap();
    assert_eq!(created["customerKey"].as_str().unwrap().len(), 32);
    let cases = [
        (
            json!({"sessionToken": token, "role": 2, "agentToken": null}),
            "401::agent_auth_required",
        ),
        (
            json!({"sessionToken": token, "role": 3, "agentToken": "forged"}),
            "401::agent_auth_invalid",
        ),
        (
            json!({"sessionToken": token, "role": 2, "agentToken": agent_jwt("ann", Some("000000000"), None)}),
            "401::agent_auth_invalid",
        ),
        (
            json!({"sessionToken": token, "role": 1}),
            "403::customer_key_invalid",
        ),
    ];
    for (data, want) in cases {
        let client = handshake(&bayeux);
        let reply = service(&bayeux, &client, SERVICE_JOIN, data.clone());
        assert_eq!(reply.error.as_deref(), Some(want), "{data}");
    }
    // The credential may come with the handshake instead.
    let hs = one(
        &bayeux,
        json!({"channel": META_HANDSHAKE, "version": "1.0", "supportedConnectionTypes": ["long-polling"],
               "ext": {"agentToken": agent_jwt("bob", Some(token), Some(vec![3]))}}),
    );
    let controller = hs.client_id.unwrap();
    let joined = one(
        &bayeux,
        json!({"channel": SERVICE_JOIN, "clientId": controller, "data": {"sessionToken": token, "role": 3}, "id": "j"}),
    );
    assert_eq!(joined.successful, Some(true), "{joined:?}");
    assert_eq!(joined.data.unwrap()["users"][0]["agentId"], "bob");
}

#[tokio::test(start_paused = true)]
async fn the_first_connect_is_answered_at_once_without_advice() {
    let bayeux = engine();
    let client = handshake(&bayeux);
    let connect = || {
        msg(json!({"channel": META_CONNECT, "clientId": client, "connectionType": "long-polling"}))
    };
    let held = bayeux
        .handle(vec![connect()], Transport::LongPolling, PEER)
        .connect
        .unwrap();
    let started = tokio::time::Instant::now();
    let answer = bayeux.hold(held).await;
    assert_eq!(started.elapsed(), Duration::ZERO, "not held: {answer:?}");
    assert_eq!(answer[0].successful, Some(true));
    // The next one is held for the timeout.
    let held = bayeux
        .handle(vec![connect()], Transport::LongPolling, PEER)
        .connect
        .unwrap();
    bayeux.hold(held).await;
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[test]
fn clients_that_keep_getting_402_are_told_to_back_off() {
    let bayeux = engine();
    let stale = || {
        let reply = one(
            &bayeux,
            json!({"channel": META_CONNECT, "clientId": "node-9.00000000000000000000000000000000", "connectionType": "long-polling"}),
        );
        assert_eq!(reply.error.as_deref(), Some("402::Unknown client"));
        let advice = reply.advice.unwrap();
        assert_eq!(advice["reconnect"], "handshake");
        advice["interval"].as_u64().unwrap()
    };
    let intervals: Vec<u64> = (0..10).map(|_| stale()).collect();
    assert_eq!(intervals[..5], [0, 500, 1000, 2000, 4000]);
    assert_eq!(intervals[9], 30_000, "capped: {intervals:?}");
    // A successful connect from the address ends the streak.
    let client = handshake(&bayeux);
    let outcome = bayeux.handle(
        vec![msg(
            json!({"channel": META_CONNECT, "clientId": client, "connectionType": "long-polling"}),
        )],
        Transport::LongPolling,
        PEER,
    );
    assert!(outcome.connect.is_some());
    assert_eq!(stale(), 0);
}
