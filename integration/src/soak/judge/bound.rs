//! The rules for a request bound to a node (a session's owner, a Bayeux
//! client's issuer): what a 200, a 404, a 410, a 503, a 502 and a Bayeux
//! error mean given what happened to that node.

use super::{
    explained, fail, mentioned, ok, FailKind, Http, Target, Verdict, H_CLIENTID, H_NAMES,
    H_PASSIVE, H_READD, H_RESEND, H_RETIRE,
};
use crate::soak::record::{Bayeux, Kind, Record, Route};
use crate::soak::timeline::{secs, Facts, TOL_HEALTH, TOL_RELOAD};

pub(super) fn bound(r: &Record, facts: &Facts, a: &Http, t: &Target) -> Verdict {
    let (sent, answered) = (r.sent, r.answered);
    let stopped_before = t.session.and_then(|s| s.stopped).is_some_and(|s| s <= sent);
    if a.status == 200 {
        if let Some(b) = a.bayeux {
            return bayeux(r, facts, a, b, t);
        }
        if let Some(d) = a.disagreement {
            return fail(
                FailKind::Misroute,
                "answer names several nodes",
                d.to_owned(),
            );
        }
        if let Some(dead) = t.dead_by(sent) {
            return fail(
                FailKind::Resurrected,
                "200 for a session whose process had died",
                format!("{}: {dead}", t.what),
            );
        }
        if r.kind == Kind::Stop {
            return ok(served_label(r, facts, t, "owner answered the stop"));
        }
        let Some(x) = a.node else {
            return fail(
                FailKind::UnexpectedAnswer,
                "200 naming no node",
                String::new(),
            );
        };
        if x != t.node {
            return fail(
                FailKind::Misroute,
                "answered by another node",
                format!("{x} answered for {}, which lives on {}", t.what, t.state()),
            );
        }
        if stopped_before {
            return fail(
                FailKind::UnexpectedAnswer,
                "200 for a stopped session",
                t.what.clone(),
            );
        }
        return ok(served_label(r, facts, t, "owner answered"));
    }
    match (a.status, a.code) {
        (404, "session_not_found" | "user_not_found") => lost(r, facts, t),
        (410, "session_ended") => ended(t, stopped_before),
        (503, "session_server_unavailable") => unavailable(r, facts, a, t),
        (503, "no_server_available") => {
            if t.dead_by(answered).is_some()
                && facts.none_eligible_during(sent.saturating_sub(TOL_HEALTH), answered)
            {
                explained("503 no_server_available: owner lost, none ready", t.state())
            } else {
                fail(
                    FailKind::Unexplained503,
                    "503 no_server_available",
                    t.state(),
                )
            }
        }
        (502, _) => {
            let named = mentioned(a.message, facts.nodes());
            let under = t
                .life
                .and_then(|l| l.death)
                .is_some_and(|(at, _)| at >= sent && at <= answered);
            if under && r.kind.is_unrepeatable_post() && named.contains(&t.node) {
                explained("502: owner died under a POST", t.state())
            } else {
                fail(
                    FailKind::Unexplained5xx,
                    "502",
                    format!("owner {}; named {named:?}", t.state()),
                )
                .hint(H_RESEND)
            }
        }
        (409, "session_ambiguous") => {
            fail(FailKind::Misroute, "409 session_ambiguous", t.what.clone())
        }
        (s, c) if s >= 500 => fail(
            FailKind::Unexplained5xx,
            &format!("{s} {c}"),
            format!("{}; owner {}", a.message, t.state()),
        ),
        (s, c) => fail(
            FailKind::UnexpectedAnswer,
            &format!("{s} {c}"),
            format!("{}; owner {}", a.message, t.state()),
        ),
    }
}

fn bayeux(r: &Record, facts: &Facts, a: &Http, b: &Bayeux, t: &Target) -> Verdict {
    if b.successful {
        if let Some(d) = a.disagreement {
            return fail(
                FailKind::Misroute,
                "answer names several nodes",
                d.to_owned(),
            );
        }
        if matches!(r.kind, Kind::Handshake | Kind::CometCreate) {
            return match a.node {
                Some(x) if x == t.node => ok("bound node answered"),
                other => removed(r, facts, t, "bound to a removed node, answered by another")
                    .unwrap_or_else(|| {
                        fail(
                            FailKind::Misroute,
                            "answered by another node",
                            format!("{other:?} answered, bound to {}", t.state()),
                        )
                    }),
            };
        }
        if let Some(dead) = t.dead_by(r.sent) {
            return fail(
                FailKind::Resurrected,
                "success for a client whose process had died",
                format!("{}: {dead}", t.what),
            );
        }
        return ok(served_label(r, facts, t, "issuing node answered"));
    }
    let error = b.error.as_deref().unwrap_or("");
    let code = error.split("::").next().unwrap_or("");
    match code {
        "402" => match t.dead_by(r.answered) {
            Some(dead) => explained("402 unknown client: its node died", dead),
            None => {
                if let Some(v) = removed(r, facts, t, "402 unknown client: issuing node removed") {
                    return v;
                }
                let v = fail(
                    FailKind::Misroute,
                    "402 unknown client: did not reach the issuing node",
                    format!("{}; issued by {} (configured, alive): the message went to another node (or the node forgot the client)", t.what, t.state()),
                );
                if r.route == Route::ClientId {
                    v.hint(H_CLIENTID)
                } else {
                    v
                }
            }
        },
        "404" => lost(r, facts, t),
        "410" => ended(
            t,
            t.session
                .and_then(|s| s.stopped)
                .is_some_and(|s| s <= r.sent),
        ),
        "503"
            if error.contains("draining")
                && t.life
                    .and_then(|l| l.drain)
                    .is_some_and(|d| d <= r.answered) =>
        {
            explained("cometd create refused by a draining node", t.state())
        }
        _ => fail(
            FailKind::UnexpectedAnswer,
            &format!("bayeux {error}"),
            t.state(),
        ),
    }
}

/// The label of a success, saying when it was one under a fault (the owner
/// removed and so retiring, or draining), so the summary shows those cases
/// were exercised.
fn served_label(r: &Record, facts: &Facts, t: &Target, label: &str) -> String {
    if facts.removed_since(&t.node, r.sent, TOL_RELOAD).is_some() {
        format!("{label} (owner removed: retiring)")
    } else if t.life.and_then(|l| l.drain).is_some_and(|d| d <= r.sent) {
        format!("{label} (owner draining)")
    } else {
        label.to_owned()
    }
}

/// The verdict on a failure while the owner, still running, was removed
/// from the config: it must be retired, still served (issue 9 §3), unless
/// the proxy that answered started after the removal and so never knew it.
fn removed(r: &Record, facts: &Facts, t: &Target, label: &str) -> Option<Verdict> {
    let (from, _) = facts.removed_during(&t.node, r.sent, r.answered)?;
    if let Some(started) = facts.proxy_started_in(from, r.sent) {
        return Some(explained(
            &format!("{label}, removed before the proxy restarted"),
            format!(
                "{}; owner {} removed at {}; the proxy that answered started at {} and never knew it",
                t.what,
                t.state(),
                secs(from),
                secs(started)
            ),
        ));
    }
    Some(
        fail(
            FailKind::RemovedNotServed,
            label,
            format!(
                "{}; owner {} removed from the config at {} but running",
                t.what,
                t.state(),
                secs(from)
            ),
        )
        .hint(H_RETIRE),
    )
}

/// A 404 about a session or client of `t`.
fn lost(r: &Record, facts: &Facts, t: &Target) -> Verdict {
    if let Some(dead) = t.dead_by(r.answered) {
        let how = t
            .life
            .and_then(|l| l.death)
            .map(|(_, h)| h.as_str())
            .unwrap_or("");
        return explained(&format!("404: lost with its node ({how})"), dead);
    }
    if let Some(v) = removed(r, facts, t, "404 for a session of a removed, running node") {
        return v;
    }
    fail(
        FailKind::LostSession,
        "404 for a live session",
        format!("{}; owner {} was running and configured: the request reached a node that does not hold it, or the owner lost it", t.what, t.state()),
    )
}

fn ended(t: &Target, stopped_before: bool) -> Verdict {
    if stopped_before {
        ok("410 after its stop")
    } else {
        fail(
            FailKind::LostSession,
            "410 for a session nobody stopped",
            format!("{}; owner {}", t.what, t.state()),
        )
    }
}

/// A 503 `session_server_unavailable` for a request bound to `t`.
fn unavailable(r: &Record, facts: &Facts, a: &Http, t: &Target) -> Verdict {
    let (sent, answered) = (r.sent, r.answered);
    let named = mentioned(a.message, facts.nodes());
    if let Some(dead) = t.dead_by(answered) {
        if named.is_empty() || named.contains(&t.node) {
            let how = t
                .life
                .and_then(|l| l.death)
                .map(|(_, h)| h.as_str())
                .unwrap_or("");
            return explained(&format!("503: owner down ({how})"), dead);
        }
        let all_down: Option<Vec<String>> = named
            .iter()
            .map(|m| facts.unavailable_during(m, sent.saturating_sub(TOL_HEALTH), answered))
            .collect();
        return match all_down {
            Some(why) => explained(
                "503 names another down node (owner lost)",
                format!("{dead}; named: {}", why.join("; ")),
            ),
            None => fail(
                FailKind::Unexplained503,
                "503 names a node that was up",
                format!("named {named:?}; {dead}"),
            )
            .hint(H_NAMES),
        };
    }
    if let Some(v) = removed(r, facts, t, "503 for a session of a removed, running node") {
        return v.why_also(&format!("named {named:?}"));
    }
    if let Some(at) = facts.readded_just_before(&t.node, sent, TOL_HEALTH) {
        return fail(
            FailKind::Unexplained503,
            "503 for a live session of a just re-added node",
            format!("{}; owner {} re-added at {}", t.what, t.state(), secs(at)),
        )
        .hint(H_READD);
    }
    if named.contains(&t.node) || named.is_empty() {
        fail(
            FailKind::Unexplained503,
            "503 for a live owner",
            format!("{}; owner {} was running and configured", t.what, t.state()),
        )
        .hint(H_PASSIVE)
    } else {
        fail(
            FailKind::Unexplained503,
            "503 names another node, owner live",
            format!("{}; named {named:?}; owner {}", t.what, t.state()),
        )
    }
}
