//! The verdict on every answer, against what happened (see the rules in
//! `src/bin/soak.rs`). Each verdict is `ok` (the owner answered, or the
//! answer the contract gives), `explained` (a failure the events account
//! for), or a failure of one kind; its `why` names the facts it used.

use std::collections::HashMap;

use shared_types::bayeux::node_of_client_id;

use super::record::{Answer, Bayeux, Kind, Record, Route, SessionInfo};
use super::timeline::{secs, Facts, Life, TOL_HEALTH, TOL_RELOAD, TOL_SIGNAL};

mod bound;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailKind {
    Misroute,
    LostSession,
    RemovedNotServed,
    Unexplained503,
    Unexplained5xx,
    ConnectionError,
    BudgetTripped,
    UnexpectedAnswer,
    Resurrected,
}

impl FailKind {
    pub fn title(self) -> &'static str {
        match self {
            FailKind::Misroute => "MISROUTE",
            FailKind::LostSession => "LOST SESSION",
            FailKind::RemovedNotServed => "REMOVED NODE'S SESSION NOT SERVED",
            FailKind::Unexplained503 => "UNEXPLAINED 503",
            FailKind::Unexplained5xx => "UNEXPLAINED 5xx",
            FailKind::ConnectionError => "UNEXPLAINED CONNECTION ERROR",
            FailKind::BudgetTripped => "BUDGET TRIPPED (429)",
            FailKind::UnexpectedAnswer => "UNEXPECTED ANSWER",
            FailKind::Resurrected => "ANSWER FROM A DEAD PROCESS'S SESSION",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ok,
    Explained,
    Fail(FailKind),
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub class: Class,
    /// Short and without times, so that equal outcomes count together.
    pub label: String,
    pub why: String,
    pub hint: Option<&'static str>,
}

fn ok(label: impl Into<String>) -> Verdict {
    Verdict {
        class: Class::Ok,
        label: label.into(),
        why: String::new(),
        hint: None,
    }
}

fn explained(label: &str, why: String) -> Verdict {
    Verdict {
        class: Class::Explained,
        label: label.to_owned(),
        why,
        hint: None,
    }
}

fn fail(kind: FailKind, label: &str, why: String) -> Verdict {
    Verdict {
        class: Class::Fail(kind),
        label: label.to_owned(),
        why,
        hint: None,
    }
}

impl Verdict {
    fn hint(mut self, hint: &'static str) -> Verdict {
        self.hint = Some(hint);
        self
    }

    fn why_also(mut self, more: &str) -> Verdict {
        self.why = format!("{}; {more}", self.why);
        self
    }
}

pub const H_CLIENTID: &str = "issue 9 §1: with no cookie, header or query parameter the proxy must route a CometD message by the node its clientId names";
pub const H_RETIRE: &str = "issue 9 §3: a node removed by reload must be retired: its sessions still served while it runs, never a 404 or a 503 naming another node";
pub const H_CLOSE: &str = "issue 9 §4: the previous answer to this client was the proxy's own early answer to a POST; without `Connection: close` the client reused a connection the proxy then closed";
pub const H_RESEND: &str = "issue 9 §5: a kept-alive upstream connection that breaks before any byte of the answer must be resent once to the same node (503 if refused), not answered 502";
pub const H_PASSIVE: &str = "issue 9 §6: the proxy took a live node for down (passive mark or failed health checks); see the proxy's view in the history";
pub const H_NAMES: &str =
    "issue 9 §7: a 503 about a lost session should name only what the proxy knows";
pub const H_READD: &str = "a node re-added by reload starts down in the proxy until its first health check, so its live sessions are refused meanwhile";

/// What a request was bound to: the node that must answer it, and which
/// process of that node made the session (or the Bayeux client).
struct Target<'a> {
    node: String,
    life: Option<&'a Life>,
    what: String,
    session: Option<&'a SessionInfo>,
}

impl Target<'_> {
    fn label(&self) -> String {
        match self.life {
            Some(l) => format!("{}#{}", self.node, l.inc),
            None => self.node.clone(),
        }
    }

    /// How the owning process ended, if it had by `t`.
    fn dead_by(&self, t: std::time::Duration) -> Option<String> {
        let (at, how) = self.life?.dead_by(t)?;
        Some(format!("{} {} at {}", self.label(), how.as_str(), secs(at)))
    }

    fn state(&self) -> String {
        match self.life {
            Some(l) => {
                let mut text = format!("{} (spawned {}", self.label(), secs(l.spawned));
                if let Some(d) = l.drain {
                    text.push_str(&format!(", SIGTERM at {}", secs(d)));
                }
                match l.death {
                    Some((at, how)) => {
                        text.push_str(&format!(", {} at {})", how.as_str(), secs(at)))
                    }
                    None => text.push_str(", never killed)"),
                }
                text
            }
            None => format!("{} (no process known)", self.node),
        }
    }
}

fn target<'a>(
    r: &Record,
    facts: &'a Facts,
    sessions: &'a HashMap<String, SessionInfo>,
) -> Result<Option<Target<'a>>, String> {
    let session = r.session.as_ref().and_then(|t| sessions.get(t));
    let by_client = matches!(
        r.kind,
        Kind::CometCreate | Kind::CometJoin | Kind::Connect | Kind::Disconnect
    );
    if r.kind == Kind::Create || (r.kind == Kind::Handshake && r.route == Route::Unbound) {
        return Ok(None);
    }
    if by_client {
        let (id, issued) = r.client.clone().ok_or("soak bug: no Bayeux client")?;
        let node = node_of_client_id(&id)
            .ok_or("clientId names no node")?
            .to_owned();
        let life = facts.life_at(&node, issued);
        let what = format!(
            "Bayeux client {id} (handshake answered at {})",
            secs(issued)
        );
        return Ok(Some(Target {
            node,
            life,
            what,
            session,
        }));
    }
    let token = r.session.as_ref().ok_or("soak bug: no session")?;
    let info = session.ok_or("soak bug: unknown session")?;
    let life = facts.life_at(&info.owner, info.created);
    let what = format!(
        "session {token} (created at {} via {})",
        secs(info.created),
        info.via
    );
    Ok(Some(Target {
        node: info.owner.clone(),
        life,
        what,
        session,
    }))
}

/// The configured node names a proxy message mentions.
fn mentioned(message: &str, nodes: &[String]) -> Vec<String> {
    message
        .split(|c: char| c.is_whitespace() || ",;:()\"'".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| nodes.iter().any(|n| n == w))
        .map(str::to_owned)
        .collect()
}

const PROXY_CODES: &[&str] = &[
    "session_server_unavailable",
    "no_server_available",
    "bad_gateway",
    "upstream_timeout",
    "too_many_attempts",
    "too_many_creates",
    "session_ambiguous",
];

pub fn judge(
    r: &Record,
    facts: &Facts,
    sessions: &HashMap<String, SessionInfo>,
    records: &[Record],
) -> Verdict {
    let Answer::Http {
        status,
        code,
        message,
        node,
        disagreement,
        bayeux,
        ..
    } = &r.answer
    else {
        return transport(r, facts, records);
    };
    let status = *status;
    if status == 429 {
        return fail(
            FailKind::BudgetTripped,
            "429",
            format!("code {code:?}: the soak's budgets must never be spent"),
        );
    }
    let a = Http {
        status,
        code: code.as_deref().unwrap_or(""),
        message: message.as_deref().unwrap_or(""),
        node: node.as_deref(),
        disagreement: disagreement.as_deref(),
        bayeux: bayeux.as_ref(),
    };
    match target(r, facts, sessions) {
        Err(why) => fail(FailKind::UnexpectedAnswer, "cannot judge", why),
        Ok(None) => unbound(r, facts, &a),
        Ok(Some(t)) => bound::bound(r, facts, &a, &t),
    }
}

struct Http<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
    node: Option<&'a str>,
    disagreement: Option<&'a str>,
    bayeux: Option<&'a Bayeux>,
}

fn transport(r: &Record, facts: &Facts, records: &[Record]) -> Verdict {
    let Answer::Transport { kind, .. } = &r.answer else {
        return ok("answer");
    };
    if let Some((from, until)) = facts.proxy_down_during(r.sent, r.answered) {
        let until = until.map_or("the end".to_owned(), secs);
        return explained(
            &format!("connection {kind} while the proxy restarted"),
            format!("the proxy was restarting from {} to {until}", secs(from)),
        );
    }
    let verdict = fail(
        FailKind::ConnectionError,
        &format!("connection {kind}"),
        "the proxy was up the whole time".to_owned(),
    );
    let prev = r.prev.and_then(|p| records.get(p));
    let early = prev.is_some_and(|p| {
        let own = matches!(&p.answer, Answer::Http { code: Some(c), .. } if PROXY_CODES.contains(&c.as_str()));
        p.method == "POST" && own
    });
    if early {
        verdict.hint(H_CLOSE)
    } else {
        verdict
    }
}

fn unbound(r: &Record, facts: &Facts, a: &Http) -> Verdict {
    let (sent, answered) = (r.sent, r.answered);
    match (a.status, a.code) {
        (200, _) => {
            if let Some(b) = a.bayeux.filter(|b| !b.successful) {
                return fail(
                    FailKind::UnexpectedAnswer,
                    "handshake refused",
                    format!("{:?}", b.error),
                );
            }
            let Some(x) = a.node else {
                return fail(
                    FailKind::UnexpectedAnswer,
                    "200 naming no node",
                    String::new(),
                );
            };
            if let Some(d) = a.disagreement {
                return fail(
                    FailKind::Misroute,
                    "answer names several nodes",
                    d.to_owned(),
                );
            }
            if let Some(from) = facts.removed_since(x, sent, TOL_RELOAD) {
                return fail(
                    FailKind::Misroute,
                    "new session on a removed node",
                    format!("{x} was removed from the config at {}", secs(from)),
                );
            }
            let drained = facts.life_at(x, answered).and_then(|l| l.drain);
            if r.kind == Kind::Create && drained.is_some_and(|d| d + TOL_SIGNAL <= sent) {
                let d = drained.map(secs).unwrap_or_default();
                return fail(
                    FailKind::UnexpectedAnswer,
                    "create accepted by a draining node",
                    format!("{x} got SIGTERM at {d}"),
                );
            }
            ok("new session/client")
        }
        (503, "draining") => match facts.drain_signal_near(sent, answered, TOL_HEALTH) {
            Some(why) => explained("503 draining: node had just got SIGTERM", why),
            None => fail(
                FailKind::Unexplained503,
                "503 draining long after any SIGTERM",
                format!("no drain signal within {TOL_HEALTH:?} before the request"),
            ),
        },
        (503, "no_server_available") => {
            if facts.none_eligible_during(sent.saturating_sub(TOL_HEALTH), answered) {
                explained(
                    "503 no_server_available: none ready",
                    "every node was dead, draining, removed or unchecked".into(),
                )
            } else {
                fail(
                    FailKind::Unexplained503,
                    "503 no_server_available",
                    "some node was up and ready throughout".into(),
                )
            }
        }
        (502, _) => {
            let named = mentioned(a.message, facts.nodes());
            let died = named.iter().find_map(|n| {
                let life = facts.life_at(n, sent)?;
                let (at, how) = life
                    .death
                    .filter(|(at, _)| *at >= sent && *at <= answered)?;
                Some(format!("{n}#{} {} at {}", life.inc, how.as_str(), secs(at)))
            });
            match died {
                Some(why) => explained("502: the node died under the request", why),
                None => fail(
                    FailKind::Unexplained5xx,
                    "502",
                    format!("names {named:?}, which did not die during the request"),
                )
                .hint(H_RESEND),
            }
        }
        (s, _) if s >= 500 => fail(
            FailKind::Unexplained5xx,
            &format!("{s} {}", a.code),
            a.message.to_owned(),
        ),
        (s, c) => fail(
            FailKind::UnexpectedAnswer,
            &format!("{s} {c}"),
            a.message.to_owned(),
        ),
    }
}
