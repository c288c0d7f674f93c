//! The CometD virtual user, over long-polling (POST batches through the
//! proxy), in one of three ways per round:
//!
//! - `cookie`: REST create (the customer's page), then handshake, agent join
//!   and connects all carrying the `gcbSessionServer` cookie of the create;
//! - `query`: the same with `?gcbSessionServer=<node>` in the URL (a browser
//!   that blocks third-party cookies and was told the node);
//! - `clientId`: the plain URL and no hint at all: the handshake is balanced,
//!   the session is created over CometD on that client, and every later
//!   message can only be routed by the node its `clientId` names.
//!
//! Then 3–6 `/meta/connect` cycles (each held up to the nodes'
//! `--cometd-timeout`), now and then a REST read of the session, and a
//! disconnect. A round that gets anything but a success is abandoned.

use std::time::Duration;

use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::http::{Reply, Req, User};
use super::record::{Kind, Route, SessionInfo};
use super::traffic;

const COMETD: &str = "/cobrowse/cometd";

#[derive(Debug, Clone, Copy)]
enum Mode {
    Cookie,
    Query,
    ClientId,
}

struct Client {
    id: String,
    issued: Duration,
    route: Route,
    session: String,
    next_id: u64,
}

impl Client {
    fn message_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }
}

/// Sends one Bayeux message; like the CometD JavaScript client, a meta
/// message's type is appended to the URL (`/cometd/connect`).
async fn bayeux(
    user: &mut User,
    kind: Kind,
    client: Option<&mut Client>,
    route: Route,
    session: &str,
    channel: &'static str,
    message: Value,
) -> Reply {
    let suffix = channel.strip_prefix("/meta").unwrap_or("");
    let mut req = Req::new(kind, route, Method::POST, format!("{COMETD}{suffix}"));
    req.session = (!session.is_empty()).then(|| session.to_owned());
    req.client = client.map(|c| (c.id.clone(), c.issued));
    req.channel = Some(channel);
    req.json = Some(json!([message]));
    user.send(req).await
}

async fn handshake(user: &mut User, route: Route, session: &str) -> Option<Client> {
    let message = json!({
        "channel": "/meta/handshake",
        "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "id": "1",
        "ext": { "agentToken": user.shared.agent_token },
    });
    let reply = bayeux(
        user,
        Kind::Handshake,
        None,
        route.clone(),
        session,
        "/meta/handshake",
        message,
    )
    .await;
    if !reply.ok() {
        return None;
    }
    let id = reply.bayeux()?.client_id.clone()?;
    let later = match route {
        Route::Unbound => Route::ClientId,
        bound => bound,
    };
    Some(Client {
        id,
        issued: user.shared.now(),
        route: later,
        session: session.to_owned(),
        next_id: 1,
    })
}

async fn service(
    user: &mut User,
    client: &mut Client,
    kind: Kind,
    channel: &'static str,
    data: Value,
) -> Reply {
    let message = json!({
        "channel": channel,
        "clientId": client.id,
        "id": client.message_id(),
        "data": data,
    });
    let (route, session) = (client.route.clone(), client.session.clone());
    bayeux(user, kind, Some(client), route, &session, channel, message).await
}

/// Creates a session over CometD on `client` (clientId mode); registers it.
async fn create_over_cometd(user: &mut User, client: &mut Client) -> Option<()> {
    let reply = service(
        user,
        client,
        Kind::CometCreate,
        "/service/session/create",
        json!({}),
    )
    .await;
    if !reply.ok() {
        return None;
    }
    let data = reply.bayeux()?.data.clone()?;
    let token = data["sessionToken"].as_str()?.to_owned();
    let owner = data["sessionServerName"].as_str()?.to_owned();
    integration::remember_created(&data);
    let created = user.shared.now();
    user.shared.add_session(
        &token,
        SessionInfo {
            owner,
            created,
            via: "cometd",
            stopped: None,
            stop_uncertain: false,
        },
    );
    client.session = token;
    Some(())
}

async fn round(user: &mut User, mode: Mode, stop: &watch::Receiver<bool>) -> Option<()> {
    let mut client = match mode {
        Mode::Cookie | Mode::Query => {
            let (token, owner) = traffic::create(user, "rest").await?;
            let route = match mode {
                Mode::Cookie => Route::Cookie(owner),
                _ => Route::Query(owner),
            };
            let mut client = handshake(user, route, &token).await?;
            let join = json!({ "sessionToken": token, "role": 2, "name": user.name });
            let joined = service(
                user,
                &mut client,
                Kind::CometJoin,
                "/service/session/join",
                join,
            );
            if !joined.await.ok() {
                return None;
            }
            client
        }
        Mode::ClientId => {
            let mut client = handshake(user, Route::Unbound, "").await?;
            create_over_cometd(user, &mut client).await?;
            let token = client.session.clone();
            let key = integration::customer_key(&token).unwrap_or_default();
            let join =
                json!({ "sessionToken": token, "role": 1, "name": user.name, "customerKey": key });
            let joined = service(
                user,
                &mut client,
                Kind::CometJoin,
                "/service/session/join",
                join,
            );
            if !joined.await.ok() {
                return None;
            }
            client
        }
    };
    let cycles = user.rng.random_range(3..=6);
    let read_at = user.rng.random_range(0..cycles);
    for cycle in 0..cycles {
        if *stop.borrow() {
            break;
        }
        let mut message = json!({
            "channel": "/meta/connect",
            "clientId": client.id,
            "connectionType": "long-polling",
            "id": client.message_id(),
        });
        if cycle == 0 {
            message["advice"] = json!({ "timeout": 0 });
        }
        let (route, session) = (client.route.clone(), client.session.clone());
        let connected = bayeux(
            user,
            Kind::Connect,
            Some(&mut client),
            route,
            &session,
            "/meta/connect",
            message,
        )
        .await;
        if !connected.ok() {
            return None;
        }
        if cycle == read_at {
            // The session is also read over REST, with no hint (a lookup).
            let mut req = Req::new(
                Kind::Get,
                Route::Lookup,
                Method::GET,
                format!("/cobrowse/rest/live/sessions/{session}"),
            );
            req.session = Some(session.clone());
            req.origin = true;
            if !user.send(req).await.ok() {
                return None;
            }
        }
    }
    let message = json!({
        "channel": "/meta/disconnect",
        "clientId": client.id,
        "id": client.message_id(),
    });
    let (route, session) = (client.route.clone(), client.session.clone());
    bayeux(
        user,
        Kind::Disconnect,
        Some(&mut client),
        route,
        &session,
        "/meta/disconnect",
        message,
    )
    .await;
    Some(())
}

pub async fn cometd_user(mut user: User, stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let mode = match user.rng.random_range(0..3) {
            0 => Mode::Cookie,
            1 => Mode::Query,
            _ => Mode::ClientId,
        };
        if round(&mut user, mode, &stop).await.is_none() {
            user.think(100, 300).await;
        } else {
            user.think(10, 50).await;
        }
    }
}
