//! `soak`: the chaos soak (`make soak`; CI runs `make soak SOAK_DURATION=45s`).
//!
//! It starts the real binaries (`--bin-dir`, default the directory this
//! binary is in: `target/debug`): `--nodes` session nodes (3) and one
//! sticky-proxy in front of them, every process on a port chosen up front so
//! that a restart keeps the address the proxy's TOML config (`--config`,
//! `[[node]]`, re-read on SIGHUP) names. The budgets of proxy and nodes are
//! sized for the soak (`--probe-budget 1000000/1m --create-budget
//! 1000000/1s`, no per-client connection cap): all its traffic comes from
//! 127.0.0.1, and a 429 would be the soak tripping a limit.
//!
//! For `--duration` (2m) it sends mixed traffic through the proxy while a
//! seeded driver (`--seed`) injects one fault every 2.5–4.5 s: SIGKILL a node
//! and restart it, SIGTERM-drain a node (it exits when it has no live session
//! or at its 6 s drain timeout) and restart it, remove a node from the config
//! and SIGHUP (re-added 3–8 s later), or restart the proxy (SIGTERM, start
//! again on the same port). Afterwards it undoes every fault, reads every
//! session that should still be live once more, and judges every answer.
//!
//! Traffic: REST users create a session (no cookie), join it as customer
//! (`customerKey`) and agent (bearer credential), read it 5–25 times with a
//! random affinity (cookie, `gcbSessionServer` header, query parameter, or
//! none: an owner lookup), and 40 % of the time join as controller and stop
//! it, then read it once more. CometD users do long-polling rounds bound by
//! cookie, by query parameter, or by nothing but the `clientId`
//! (handshake, create or join, 3–6 connects held up to 1 s, a REST read,
//! disconnect).
//!
//! # The rules
//!
//! Times are taken on one clock: a fault is recorded just before it is
//! applied, a request's window is [sent, answered]. The *owner* of a session
//! is the node that answered its create, and more precisely that node's
//! process (incarnation) running when the create was answered; the owner of
//! a Bayeux client is the process that issued its `clientId`. Tolerances:
//! 1.5 s for the proxy to notice a node's change (health checks every 200 ms,
//! rise/fall 2), 300 ms for a reload or a signal to apply, 500 ms after a
//! restarted proxy is listening.
//!
//! - **200** must come from the owner: `sessionServerName` (Get), the
//!   `gcbSessionServer` header (Join), the node of the `clientId`
//!   (handshake), `data.sessionServerName` (CometD create); a Stop, connect
//!   or join success proves itself (only the owner knows the user token or
//!   the client). Another node → MISROUTE; an answer naming two nodes →
//!   MISROUTE; a success for a session or client whose process had already
//!   died → ANSWER FROM A DEAD PROCESS'S SESSION; a 200 Get/Join of a
//!   stopped session → UNEXPECTED ANSWER.
//! - **Creates and plain handshakes** (unbound) may land on any node, but not
//!   on one removed from the config 300 ms or more before they were sent
//!   (MISROUTE); a create accepted by a node SIGTERMed 300 ms before is an
//!   UNEXPECTED ANSWER. 503 `draining` is explained within 1.5 s after a
//!   SIGTERM; 503 `no_server_available` only while no node was alive,
//!   checked, configured and not draining.
//! - **404** (`session_not_found`, `user_not_found`, Bayeux `404::`) is
//!   explained once the owner process was killed or had drained out (the
//!   restarted process does not know the session: "lost with its node" for a
//!   kill, "ended by event" for a drain). While the owner runs but is removed
//!   from the config: REMOVED NODE'S SESSION NOT SERVED (a removed node must
//!   be retired, issue 9 §3). Otherwise: LOST SESSION.
//! - **410** is right only after the soak's own stop; otherwise LOST SESSION.
//! - **503 `session_server_unavailable`** is honest when the owner process
//!   had died by the time of the answer and the message names the owner (or
//!   no node), or names only nodes that were themselves dead, unchecked
//!   since a restart, or removed around that time (noted, issue 9 §7). For a
//!   live owner it fails: REMOVED NODE'S SESSION NOT SERVED when the owner
//!   was removed, UNEXPLAINED 503 otherwise (just re-added, the proxy took a
//!   live node for down, or it named another node).
//! - **Bayeux `402::Unknown client`** is explained once the issuing process
//!   died; otherwise the message reached another node: MISROUTE.
//! - **502** is explained only for a POST that cannot be resent (create,
//!   join, handshake, CometD create/join) whose node died during it; for a
//!   GET, a connect, or a node that was not dying: UNEXPLAINED 5xx (issue 9
//!   §5). Any other 5xx (504, …) is UNEXPLAINED 5xx.
//! - **No answer** (refused, reset, closed, timeout after 10 s) is explained
//!   only if the request overlapped a proxy restart (SIGTERM to 500 ms after
//!   the new one listens); otherwise UNEXPLAINED CONNECTION ERROR, noted
//!   issue 9 §4 when the previous answer to the same client was the proxy's
//!   own error to a POST.
//! - **429** is BUDGET TRIPPED; 409 `session_ambiguous` is MISROUTE; any other
//!   answer is UNEXPECTED ANSWER.
//! - **Processes**: a panic in any log, an exit nobody caused, a drained node
//!   exiting non-zero, or a failed (re)start is PROCESS TROUBLE.
//! - **Final check**: every session not stopped whose owner process never
//!   died is read once more, bound by cookie to its owner, after the faults
//!   were undone (restarted, re-added): the same rules apply, so a session
//!   of a node that was never killed is verified to have survived.
//!
//! It prints requests by kind and outcome, the events with their times,
//! what became of the sessions, and every failure (the first two of each
//! kind in full: request, answer, rule, previous request of that user, and
//! the event history of the nodes involved; `--report FILE` for all), and
//! exits non-zero on any failure.

#[path = "../soak/mod.rs"]
mod soak;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let options = <soak::Options as clap::Parser>::parse();
    match soak::run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::from(2)
        }
    }
}
