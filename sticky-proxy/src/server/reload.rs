//! Reloading the membership (SIGHUP) and retiring the nodes it removes
//! ([`crate::retire`] says what retiring means); reloading the TLS
//! certificate on the same signal ([`crate::tls`]).

use std::sync::{Arc, PoisonError, Weak};

use super::ReloadSummary;
use crate::config::ConfigError;
use crate::context::{Member, Shared};
use crate::nodes::{Node, NodeSet};
use crate::retire::{spawn_retire, RetireEnd};

/// Gone nodes remembered at most (their names still answer 503); the
/// oldest are forgotten first.
pub const GONE_REMEMBERED: usize = 64;

/// Re-reads the config file and applies its nodes (merged with the
/// `--node` flags). Kept nodes keep their state, health loop and
/// connections; added nodes start down and are probed at once; a retiring
/// node configured again is normal again; removed nodes start retiring; a
/// node whose name now has another URL is replaced at once. On error
/// nothing changes.
pub(super) fn reload(shared: &Arc<Shared>) -> Result<ReloadSummary, ConfigError> {
    let specs = shared.config.reload_nodes()?;
    let mut members = shared
        .members
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let current = shared.membership.load_full();
    let mut summary = ReloadSummary::default();
    let mut active: Vec<Arc<Node>> = Vec::with_capacity(specs.len());
    for spec in &specs {
        let existing = current
            .iter()
            .find(|node| node.matches(spec) && !node.is_gone())
            .cloned();
        match existing {
            Some(node) if node.is_retiring() => {
                node.cancel_retire();
                if let Some(member) = members.iter_mut().find(|m| Arc::ptr_eq(&m.node, &node)) {
                    member.retire = None;
                }
                tracing::info!(node = node.name(), "retiring node configured again");
                summary.restored.push(spec.name.clone());
                active.push(node);
            }
            Some(node) => {
                summary.kept += 1;
                active.push(node);
            }
            None => {
                let node = Arc::new(Node::with_limits(spec, shared.pool_limits()));
                let health = shared.spawn_health(&node);
                members.push(Member {
                    node: node.clone(),
                    _health: health,
                    retire: None,
                });
                summary.added.push(spec.name.clone());
                active.push(node);
            }
        }
    }
    let is_active = |node: &Arc<Node>| active.iter().any(|a| Arc::ptr_eq(a, node));
    let mut retiring = Vec::new();
    let mut gone = Vec::new();
    for node in current.iter().filter(|node| !is_active(node)) {
        if active.iter().any(|a| a.name() == node.name()) {
            // The name is configured again (a gone node) or now means another
            // URL: this node object is replaced, and nothing may still route
            // to it.
            if !node.is_gone() {
                tracing::warn!(
                    node = node.name(),
                    url = node.url(),
                    "node replaced by a new URL of the same name; its sessions are given up"
                );
                finish(&mut members, node);
            }
            shared.lookup.forget_node(node);
            continue;
        }
        if node.is_gone() {
            gone.push(node.clone());
            continue;
        }
        if !node.is_retiring() {
            node.begin_retire();
            let task = spawn_retire(
                node.clone(),
                shared.config.retire_timeout,
                shared.config.health_interval,
                end_of_retirement(Arc::downgrade(shared)),
            );
            if let Some(member) = members.iter_mut().find(|m| Arc::ptr_eq(&m.node, node)) {
                member.retire = Some(task);
            }
            tracing::info!(
                node = node.name(),
                retire_timeout = ?shared.config.retire_timeout,
                "node removed: retiring (no new sessions; its bound requests still reach it)"
            );
            summary.removed.push(node.name().to_owned());
        }
        retiring.push(node.clone());
    }
    let forget = gone.len().saturating_sub(GONE_REMEMBERED);
    let mut next = active;
    next.extend(retiring);
    next.extend(gone.into_iter().skip(forget));
    shared.membership.store(Arc::new(NodeSet::new(next)));
    drop(members);
    tracing::info!(
        added = ?summary.added,
        removed = ?summary.removed,
        restored = ?summary.restored,
        kept = summary.kept,
        "configuration reloaded"
    );
    Ok(summary)
}

/// Re-reads the TLS certificate and key, independently of the nodes (a bad
/// certificate file does not hold back a membership change, nor the other
/// way round). Only new connections see the new certificate.
pub(super) fn reload_tls(shared: &Shared) -> Result<bool, crate::tls::TlsError> {
    let Some(tls) = &shared.tls else {
        return Ok(false);
    };
    tls.reload()?;
    tracing::info!(cert = %tls.cert_path().display(), "TLS certificate reloaded");
    Ok(true)
}

/// Makes a node gone: down for good, its tasks stopped. It stays in the set
/// (unless replaced) so that its name answers 503, and the owner cache keeps
/// its sessions (until their TTL) so that a lookup-routed request of one of
/// them gets the same 503 rather than a 404 from another node.
fn finish(members: &mut Vec<Member>, node: &Arc<Node>) {
    node.set_gone();
    members.retain(|member| !Arc::ptr_eq(&member.node, node));
}

/// What a retirement watcher calls at its end.
fn end_of_retirement(shared: Weak<Shared>) -> impl FnOnce(&Arc<Node>, RetireEnd) + Send + 'static {
    move |node, end| {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut members = shared
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A reload may have configured it again meanwhile.
        if !node.is_retiring() {
            return;
        }
        tracing::info!(
            node = node.name(),
            why = end.as_str(),
            live_sessions = ?node.live_sessions(),
            "retired node is gone: requests bound to it now get 503"
        );
        // Dropping the member drops this watcher's own handle: the abort
        // takes effect once this (synchronous) callback has returned.
        finish(&mut members, node);
    }
}
