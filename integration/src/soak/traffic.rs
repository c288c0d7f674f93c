//! The REST virtual user: create a session through the proxy (no cookie),
//! join it as the customer (with its `customerKey`) and as an agent (with a
//! bearer credential), read it many times with every kind of affinity, and
//! now and then stop it as the controller. Now and then it also comes back
//! to one of its earlier sessions, as an old browser tab would: an agent
//! join bound by the cookie it still has (the owner may be long dead, the
//! session stopped or alive). A session whose answer is not a
//! 200 is abandoned, as a real client would (a 503 says "start a new
//! session"); a request with no answer at all (the proxy restarting) is
//! followed by the next step of the same session.

use rand::Rng;
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;

use super::http::{Reply, Req, User};
use super::record::{Kind, Route, SessionInfo};

const SESSIONS: &str = "/cobrowse/rest/live/sessions";

/// What to do after an answer.
enum Flow {
    Go,
    Abandon,
}

fn flow(reply: &Reply) -> Flow {
    if reply.ok() || reply.is_transport_error() {
        Flow::Go
    } else {
        Flow::Abandon
    }
}

/// A route for a follow-up request about a session owned by `owner`.
pub fn pick_route(user: &mut User, owner: &str) -> Route {
    match user.rng.random_range(0..8) {
        0..=2 => Route::Cookie(owner.to_owned()),
        3 | 4 => Route::Header(owner.to_owned()),
        5 => Route::Query(owner.to_owned()),
        _ => Route::Lookup,
    }
}

/// Creates a session (unbound); registers it. Returns (token, owner).
pub async fn create(user: &mut User, via: &'static str) -> Option<(String, String)> {
    let reply = user
        .send(Req::new(
            Kind::Create,
            Route::Unbound,
            Method::POST,
            SESSIONS,
        ))
        .await;
    if !reply.ok() {
        return None;
    }
    let token = reply.json["sessionToken"].as_str()?.to_owned();
    let owner = reply.json["sessionServerName"].as_str()?.to_owned();
    integration::remember_created(&reply.json);
    let created = user.shared.now();
    user.shared.add_session(
        &token,
        SessionInfo {
            owner: owner.clone(),
            created,
            via,
            stopped: None,
            stop_uncertain: false,
        },
    );
    Some((token, owner))
}

async fn join(user: &mut User, token: &str, owner: &str, role: u8) -> Reply {
    let kind = match role {
        1 => Kind::JoinCustomer,
        2 => Kind::JoinAgent,
        _ => Kind::JoinController,
    };
    let route = pick_route(user, owner);
    join_as(user, token, role, kind, route).await
}

async fn join_as(user: &mut User, token: &str, role: u8, kind: Kind, route: Route) -> Reply {
    let mut req = Req::new(
        kind,
        route,
        Method::POST,
        format!("{SESSIONS}/{token}/users"),
    );
    req.session = Some(token.to_owned());
    let mut body = json!({ "role": role, "name": format!("{} role {role}", user.name) });
    if role == 1 {
        body["customerKey"] = integration::customer_key(token).unwrap_or_default().into();
    } else {
        req.bearer = true;
    }
    req.json = Some(body);
    user.send(req).await
}

async fn get(user: &mut User, token: &str, owner: &str, kind: Kind) -> Reply {
    let route = pick_route(user, owner);
    let mut req = Req::new(kind, route, Method::GET, format!("{SESSIONS}/{token}"));
    req.session = Some(token.to_owned());
    req.origin = true;
    user.send(req).await
}

/// Sessions a user remembers for revisits.
const REMEMBERED: usize = 30;

/// One session's life, as one user drives it.
async fn session(user: &mut User, past: &mut Vec<(String, String)>) {
    if !past.is_empty() && user.rng.random_bool(0.15) {
        let (token, owner) = past[user.rng.random_range(0..past.len())].clone();
        join_as(user, &token, 2, Kind::Revisit, Route::Cookie(owner)).await;
        user.think(2, 15).await;
    }
    let Some((token, owner)) = create(user, "rest").await else {
        user.think(50, 200).await;
        return;
    };
    if past.len() >= REMEMBERED {
        past.remove(0);
    }
    past.push((token.clone(), owner.clone()));
    for role in [1, 2] {
        user.think(2, 15).await;
        if let Flow::Abandon = flow(&join(user, &token, &owner, role).await) {
            return;
        }
    }
    let reads = user.rng.random_range(5..=25);
    for _ in 0..reads {
        user.think(5, 30).await;
        if let Flow::Abandon = flow(&get(user, &token, &owner, Kind::Get).await) {
            return;
        }
    }
    if user.rng.random_bool(0.6) {
        // Left alive: the final check looks for it at the end.
        return;
    }
    let controller = join(user, &token, &owner, 3).await;
    let Some(user_token) = controller.json["userToken"].as_str().map(str::to_owned) else {
        return;
    };
    user.think(2, 15).await;
    let route = pick_route(user, &owner);
    let mut stop = Req::new(
        Kind::Stop,
        route,
        Method::GET,
        format!("/cobrowse/rest/live/users/{user_token}/session/stop"),
    );
    stop.session = Some(token.clone());
    let stopped = user.send(stop).await;
    let at = user.shared.now();
    if stopped.ok() {
        user.shared.update_session(&token, |s| s.stopped = Some(at));
    } else {
        if stopped.is_transport_error() {
            user.shared
                .update_session(&token, |s| s.stop_uncertain = true);
        }
        return;
    }
    user.think(2, 15).await;
    get(user, &token, &owner, Kind::GetAfterStop).await;
}

pub async fn rest_user(mut user: User, stop: watch::Receiver<bool>) {
    let mut past = Vec::new();
    while !*stop.borrow() {
        session(&mut user, &mut past).await;
    }
}
