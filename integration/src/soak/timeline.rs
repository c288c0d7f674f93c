//! What happened, and when: the events the chaos driver caused or saw, and
//! the facts the judge derives from them (each node process's life, the
//! removal windows, the proxy's restarts).
//!
//! Every time is a `Duration` since the soak started. A cause is recorded
//! *before* it is applied (the kill time is taken before `SIGKILL` is sent),
//! so no consequence can precede its recorded cause.

use std::collections::HashMap;
use std::time::Duration;

/// How long after a change of a node the proxy may still act on its old
/// view: health checks every 200 ms, `--rise`/`--fall` 2, plus scheduling on
/// a loaded 2-core machine with debug builds.
pub const TOL_HEALTH: Duration = Duration::from_millis(1500);
/// How long a SIGHUP reload may take to apply.
pub const TOL_RELOAD: Duration = Duration::from_millis(300);
/// How long a node may take to act on SIGTERM (stop accepting creates).
pub const TOL_SIGNAL: Duration = Duration::from_millis(300);
/// After a restarted proxy logged `listening on`, connection errors are
/// still blamed on the restart for this long.
pub const TOL_PROXY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub enum What {
    NodeSpawned {
        node: String,
        inc: u32,
    },
    NodeListening {
        node: String,
        inc: u32,
        pid: u32,
    },
    NodeKilled {
        node: String,
        inc: u32,
    },
    NodeDrainSignalled {
        node: String,
        inc: u32,
    },
    /// The node logged that its drain ended (no live session left, or the
    /// drain timeout): from here it closes its listener and exits.
    NodeDrainClosed {
        node: String,
        inc: u32,
        line: String,
    },
    NodeExited {
        node: String,
        inc: u32,
        status: String,
    },
    NodeRemoved {
        node: String,
    },
    NodeReadded {
        node: String,
    },
    ProxyStopping {
        inc: u32,
    },
    ProxyExited {
        inc: u32,
        status: String,
    },
    ProxySpawned {
        inc: u32,
    },
    ProxyListening {
        inc: u32,
        pid: u32,
    },
    /// The proxy's `/nodes` view of a node changed (polled every 100 ms).
    ProxyView {
        node: String,
        state: String,
    },
    /// A panic, an unexpected exit, a failed restart: always a failure.
    Trouble {
        process: String,
        what: String,
    },
}

impl What {
    /// The node this event is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            What::NodeSpawned { node, .. }
            | What::NodeListening { node, .. }
            | What::NodeKilled { node, .. }
            | What::NodeDrainSignalled { node, .. }
            | What::NodeDrainClosed { node, .. }
            | What::NodeExited { node, .. }
            | What::NodeRemoved { node }
            | What::NodeReadded { node }
            | What::ProxyView { node, .. } => Some(node),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            What::NodeSpawned { node, inc } => format!("{node}#{inc} spawned"),
            What::NodeListening { node, inc, pid } => {
                format!("{node}#{inc} listening (pid {pid})")
            }
            What::NodeKilled { node, inc } => format!("{node}#{inc} SIGKILL"),
            What::NodeDrainSignalled { node, inc } => format!("{node}#{inc} SIGTERM (drain)"),
            What::NodeDrainClosed { node, inc, line } => {
                // The message, without the log line's time stamp and target.
                let message = line.find("drain").map_or(line.as_str(), |i| &line[i..]);
                format!("{node}#{inc} drain over, closing: {}", short(message, 90))
            }
            What::NodeExited { node, inc, status } => format!("{node}#{inc} exited ({status})"),
            What::NodeRemoved { node } => format!("{node} removed from the proxy config (SIGHUP)"),
            What::NodeReadded { node } => format!("{node} re-added to the proxy config (SIGHUP)"),
            What::ProxyStopping { inc } => format!("proxy#{inc} SIGTERM (restart)"),
            What::ProxyExited { inc, status } => format!("proxy#{inc} exited ({status})"),
            What::ProxySpawned { inc } => format!("proxy#{inc} spawned"),
            What::ProxyListening { inc, pid } => format!("proxy#{inc} listening (pid {pid})"),
            What::ProxyView { node, state } => format!("proxy sees {node} {state}"),
            What::Trouble { process, what } => format!("TROUBLE {process}: {what}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub at: Duration,
    pub what: What,
}

/// How a node process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    Killed,
    DrainedOut,
    Crashed,
}

impl Death {
    pub fn as_str(self) -> &'static str {
        match self {
            Death::Killed => "killed",
            Death::DrainedOut => "drained out",
            Death::Crashed => "crashed",
        }
    }
}

/// One process of a node (its incarnation `inc`).
#[derive(Debug, Clone)]
pub struct Life {
    pub inc: u32,
    pub spawned: Duration,
    pub listening: Option<Duration>,
    pub drain: Option<Duration>,
    pub death: Option<(Duration, Death)>,
}

impl Life {
    pub fn dead_by(&self, t: Duration) -> Option<(Duration, Death)> {
        self.death.filter(|(d, _)| *d <= t)
    }
}

/// Intervals `[from, until)`; `until` is `None` while still open.
type Windows = Vec<(Duration, Option<Duration>)>;

fn overlaps(w: &(Duration, Option<Duration>), a: Duration, b: Duration) -> bool {
    w.0 <= b && w.1.is_none_or(|until| until >= a)
}

#[derive(Debug, Default)]
pub struct Facts {
    pub events: Vec<Event>,
    lives: HashMap<String, Vec<Life>>,
    removed: HashMap<String, Windows>,
    readded: HashMap<String, Vec<Duration>>,
    proxy_down: Windows,
    nodes: Vec<String>,
}

impl Facts {
    pub fn new(nodes: &[String], mut events: Vec<Event>) -> Facts {
        events.sort_by_key(|e| e.at);
        let mut facts = Facts {
            nodes: nodes.to_vec(),
            ..Facts::default()
        };
        for e in &events {
            let at = e.at;
            match &e.what {
                What::NodeSpawned { node, inc } => {
                    facts.lives.entry(node.clone()).or_default().push(Life {
                        inc: *inc,
                        spawned: at,
                        listening: None,
                        drain: None,
                        death: None,
                    })
                }
                What::NodeListening { node, inc, .. } => {
                    facts.with_life(node, *inc, |l| l.listening = Some(at))
                }
                What::NodeKilled { node, inc } => facts.with_life(node, *inc, |l| {
                    l.death.get_or_insert((at, Death::Killed));
                }),
                What::NodeDrainSignalled { node, inc } => {
                    facts.with_life(node, *inc, |l| l.drain = Some(at))
                }
                What::NodeDrainClosed { node, inc, .. } => facts.with_life(node, *inc, |l| {
                    l.death.get_or_insert((at, Death::DrainedOut));
                }),
                What::NodeExited { node, inc, .. } => facts.with_life(node, *inc, |l| {
                    let how = if l.drain.is_some() {
                        Death::DrainedOut
                    } else {
                        Death::Crashed
                    };
                    l.death.get_or_insert((at, how));
                }),
                What::NodeRemoved { node } => facts
                    .removed
                    .entry(node.clone())
                    .or_default()
                    .push((at, None)),
                What::NodeReadded { node } => {
                    if let Some(w) = facts.removed.get_mut(node).and_then(|w| w.last_mut()) {
                        w.1.get_or_insert(at);
                    }
                    facts.readded.entry(node.clone()).or_default().push(at);
                }
                What::ProxyStopping { .. } => facts.proxy_down.push((at, None)),
                What::ProxyListening { .. } => {
                    if let Some(w) = facts.proxy_down.last_mut() {
                        w.1.get_or_insert(at + TOL_PROXY);
                    }
                }
                _ => {}
            }
        }
        facts.events = events;
        facts
    }

    fn with_life(&mut self, node: &str, inc: u32, f: impl FnOnce(&mut Life)) {
        if let Some(life) = self
            .lives
            .get_mut(node)
            .and_then(|lives| lives.iter_mut().find(|l| l.inc == inc))
        {
            f(life);
        }
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The process of `node` that was running at `t` (the latest spawned at
    /// or before it): the one that answered a request answered at `t`.
    pub fn life_at(&self, node: &str, t: Duration) -> Option<&Life> {
        self.lives.get(node)?.iter().rev().find(|l| l.spawned <= t)
    }

    pub fn lives(&self, node: &str) -> &[Life] {
        self.lives.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A removal of `node` that overlaps `[a, b]`.
    pub fn removed_during(
        &self,
        node: &str,
        a: Duration,
        b: Duration,
    ) -> Option<(Duration, Option<Duration>)> {
        self.removed
            .get(node)?
            .iter()
            .find(|w| overlaps(w, a, b))
            .copied()
    }

    /// The removal of `node` in force at `t` that began at least `tol` before.
    pub fn removed_since(&self, node: &str, t: Duration, tol: Duration) -> Option<Duration> {
        self.removed
            .get(node)?
            .iter()
            .find(|(from, until)| *from + tol <= t && until.is_none_or(|u| u > t))
            .map(|w| w.0)
    }

    /// A re-add of `node` in `[t - tol, t]`.
    pub fn readded_just_before(&self, node: &str, t: Duration, tol: Duration) -> Option<Duration> {
        self.readded
            .get(node)?
            .iter()
            .copied()
            .find(|r| *r <= t && *r + tol >= t)
    }

    /// Why `node` could not serve at some moment of `[a, b]`, if it could
    /// not: a process dead (until its successor is listening and checked),
    /// or the node removed from the config.
    pub fn unavailable_during(&self, node: &str, a: Duration, b: Duration) -> Option<String> {
        let lives = self.lives(node);
        for (i, life) in lives.iter().enumerate() {
            let Some((died, how)) = life.death else {
                continue;
            };
            let back = lives
                .get(i + 1)
                .and_then(|next| next.listening)
                .map(|t| t + TOL_HEALTH);
            if overlaps(&(died, back), a, b) {
                return Some(format!(
                    "{node}#{} {} at {}",
                    life.inc,
                    how.as_str(),
                    secs(died)
                ));
            }
        }
        self.removed_during(node, a, b)
            .map(|(from, _)| format!("{node} removed at {}", secs(from)))
    }

    /// A drain signal (to any node) at or before `b` and no more than `tol`
    /// before `a`: a create sent meanwhile may have reached the draining node
    /// before the proxy knew.
    pub fn drain_signal_near(&self, a: Duration, b: Duration, tol: Duration) -> Option<String> {
        self.lives.iter().find_map(|(node, lives)| {
            lives.iter().find_map(|l| {
                l.drain
                    .filter(|d| *d <= b && *d + tol >= a)
                    .map(|d| format!("{node}#{} SIGTERM at {}", l.inc, secs(d)))
            })
        })
    }

    /// Whether at some moment of `[a, b]` no node could take a new session
    /// (each one dead, draining, removed, or not yet checked after a start
    /// or a re-add).
    pub fn none_eligible_during(&self, a: Duration, b: Duration) -> bool {
        let mut moments = vec![a, b];
        moments.extend(
            self.events
                .iter()
                .map(|e| e.at)
                .filter(|t| *t >= a && *t <= b),
        );
        moments.iter().any(|t| {
            self.nodes.iter().all(|node| {
                let Some(life) = self.life_at(node, *t) else {
                    return true;
                };
                let checked = life.listening.is_some_and(|l| l + TOL_HEALTH <= *t);
                let dead = life.death.is_some_and(|(d, _)| d <= *t);
                let draining = life.drain.is_some_and(|d| d <= *t);
                let removed = self.removed_during(node, *t, *t).is_some()
                    || self.readded_just_before(node, *t, TOL_HEALTH).is_some();
                !checked || dead || draining || removed
            })
        })
    }

    /// When a (restarted) proxy started listening within `[a, b]`.
    pub fn proxy_started_in(&self, a: Duration, b: Duration) -> Option<Duration> {
        self.events.iter().find_map(|e| match e.what {
            What::ProxyListening { .. } if e.at >= a && e.at <= b => Some(e.at),
            _ => None,
        })
    }

    /// A proxy restart window overlapping `[a, b]`.
    pub fn proxy_down_during(
        &self,
        a: Duration,
        b: Duration,
    ) -> Option<(Duration, Option<Duration>)> {
        self.proxy_down.iter().find(|w| overlaps(w, a, b)).copied()
    }

    /// The events about `nodes` (and the proxy's restarts and every trouble)
    /// in `[a, b]`.
    pub fn history(&self, nodes: &[&str], a: Duration, b: Duration) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.at >= a && e.at <= b)
            .filter(|e| e.what.node().is_none_or(|n| nodes.contains(&n)))
            .collect()
    }
}

/// `12.345s`
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

pub fn short(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}
