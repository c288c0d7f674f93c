//! The summary: requests by kind and outcome, the events with their times,
//! what became of the sessions, and every failure with the request, the
//! answer, the rule that failed it and the event history around it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use shared_types::bayeux::node_of_client_id;

use super::judge::{Class, FailKind, Verdict};
use super::record::{Kind, Record, Route, SessionInfo};
use super::timeline::{secs, Death, Facts, What};

/// Failures shown in full per (kind, label); the rest are counted (all of
/// them go to `--report FILE`).
const SHOWN_PER_LABEL: usize = 2;

#[derive(Debug, Default)]
pub struct Report {
    pub text: String,
    pub full: String,
    pub failures: usize,
}

fn class_name(class: Class) -> String {
    match class {
        Class::Ok => "ok".into(),
        Class::Explained => "explained".into(),
        Class::Fail(kind) => format!("FAIL {}", kind.title()),
    }
}

pub fn build(
    header: &str,
    records: &[Record],
    verdicts: &[Verdict],
    facts: &Facts,
    sessions: &HashMap<String, SessionInfo>,
) -> Report {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");

    let mut by_kind: BTreeMap<Kind, BTreeMap<(u8, String), usize>> = BTreeMap::new();
    let (mut oks, mut explained, mut failed) = (0, 0, 0);
    for (r, v) in records.iter().zip(verdicts) {
        let rank = match v.class {
            Class::Ok => {
                oks += 1;
                0
            }
            Class::Explained => {
                explained += 1;
                1
            }
            Class::Fail(_) => {
                failed += 1;
                2
            }
        };
        let key = (rank, format!("{}: {}", class_name(v.class), v.label));
        *by_kind.entry(r.kind).or_default().entry(key).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "\nrequests: {} (ok {oks}, explained {explained}, failed {failed})",
        records.len()
    );
    for (kind, outcomes) in &by_kind {
        let total: usize = outcomes.values().sum();
        let mut ms: Vec<u128> = records
            .iter()
            .filter(|r| r.kind == *kind)
            .map(|r| r.answered.saturating_sub(r.sent).as_millis())
            .collect();
        ms.sort_unstable();
        let at = |q: f64| {
            ms.get(((ms.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        let _ = writeln!(
            out,
            "  {:<18} {total:>6}   (answered in p50 {} ms, p99 {} ms, max {} ms)",
            kind.as_str(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
        for ((_, label), n) in outcomes {
            let _ = writeln!(out, "      {n:>6}  {label}");
        }
    }

    let _ = writeln!(
        out,
        "\nevents (seconds since start; the proxy's view changes are in the failure histories):"
    );
    for e in facts
        .events
        .iter()
        .filter(|e| !matches!(e.what, What::ProxyView { .. }))
    {
        let _ = writeln!(out, "  {:>9}  {}", secs(e.at), e.what.describe());
    }

    sessions_summary(&mut out, records, verdicts, facts, sessions);

    let troubles: Vec<String> = facts
        .events
        .iter()
        .filter(|e| matches!(e.what, What::Trouble { .. }))
        .map(|e| format!("  {:>9}  {}", secs(e.at), e.what.describe()))
        .collect();

    let mut groups: BTreeMap<FailKind, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for (i, v) in verdicts.iter().enumerate() {
        if let Class::Fail(kind) = v.class {
            groups
                .entry(kind)
                .or_default()
                .entry(v.label.clone())
                .or_default()
                .push(i);
        }
    }
    let mut full = String::new();
    if !groups.is_empty() || !troubles.is_empty() {
        let _ = writeln!(out, "\nfailures by kind:");
        for (kind, labels) in &groups {
            let n: usize = labels.values().map(Vec::len).sum();
            let _ = writeln!(out, "  {n:>6}  {}", kind.title());
            for (label, ids) in labels {
                let _ = writeln!(out, "      {:>6}  {label}", ids.len());
            }
        }
        if !troubles.is_empty() {
            let _ = writeln!(
                out,
                "  {:>6}  PROCESS TROUBLE (panic, unexpected exit, failed start)",
                troubles.len()
            );
            for t in &troubles {
                let _ = writeln!(out, "    {t}");
            }
        }
        let _ = writeln!(
            out,
            "\nfailure details (first {SHOWN_PER_LABEL} of each; all with --report FILE):"
        );
        for labels in groups.values() {
            for ids in labels.values() {
                for (n, &i) in ids.iter().enumerate() {
                    let detail = detail(&records[i], &verdicts[i], records, facts, sessions);
                    if n < SHOWN_PER_LABEL {
                        out.push_str(&detail);
                    }
                    full.push_str(&detail);
                }
            }
        }
    }
    let failures = failed + troubles.len();
    if failures == 0 {
        let _ = writeln!(out, "\nverdict: PASS");
    } else {
        let _ = writeln!(
            out,
            "\nverdict: FAIL ({failed} failed requests, {} process troubles)",
            troubles.len()
        );
    }
    Report {
        full: format!("{out}\nall failures:\n{full}"),
        text: out,
        failures,
    }
}

fn sessions_summary(
    out: &mut String,
    records: &[Record],
    verdicts: &[Verdict],
    facts: &Facts,
    sessions: &HashMap<String, SessionInfo>,
) {
    let (mut stopped, mut uncertain, mut killed, mut drained, mut open) = (0, 0, 0, 0, 0);
    let rest = sessions.values().filter(|s| s.via == "rest").count();
    for s in sessions.values() {
        let death = facts.life_at(&s.owner, s.created).and_then(|l| l.death);
        match (s.stopped, death) {
            (Some(_), _) => stopped += 1,
            (None, Some((_, Death::Killed | Death::Crashed))) => killed += 1,
            (None, Some((_, Death::DrainedOut))) => drained += 1,
            (None, None) if s.stop_uncertain => uncertain += 1,
            (None, None) => open += 1,
        }
    }
    let verified = records
        .iter()
        .zip(verdicts)
        .filter(|(r, v)| r.kind == Kind::FinalGet && v.class == Class::Ok)
        .count();
    let _ = writeln!(
        out,
        "\nsessions: {} created ({rest} over REST, {} over CometD): {stopped} stopped by their controller, \
         {uncertain} with a stop that got no answer (not checked), {killed} lost with a killed node, \
         {drained} ended with a drained node (ended by event), {open} still live at the end, \
         of which {verified} verified on their owner by the final check",
        sessions.len(),
        sessions.len() - rest,
    );
}

fn detail(
    r: &Record,
    v: &Verdict,
    records: &[Record],
    facts: &Facts,
    sessions: &HashMap<String, SessionInfo>,
) -> String {
    let mut d = String::new();
    let title = match v.class {
        Class::Fail(kind) => kind.title(),
        _ => "",
    };
    let _ = writeln!(d, "\n  #{} {title}: {}", r.id, v.label);
    let _ = writeln!(
        d,
        "    {} {} {} [{}], route {}, sent {}, answered {} ({} ms)",
        r.user,
        r.kind.as_str(),
        r.method,
        r.path,
        r.route.describe(),
        secs(r.sent),
        secs(r.answered),
        (r.answered.saturating_sub(r.sent)).as_millis()
    );
    let _ = writeln!(d, "    answer: {}", r.answer.describe());
    if let Some(token) = &r.session {
        if let Some(s) = sessions.get(token) {
            let _ = writeln!(
                d,
                "    session {token}: owner {} (created at {} via {}{})",
                s.owner,
                secs(s.created),
                s.via,
                s.stopped
                    .map(|t| format!(", stopped at {}", secs(t)))
                    .unwrap_or_default()
            );
        }
    }
    if let Some((id, issued)) = &r.client {
        let _ = writeln!(
            d,
            "    Bayeux client {id}, handshake answered at {}",
            secs(*issued)
        );
    }
    if !v.why.is_empty() {
        let _ = writeln!(d, "    why: {}", v.why);
    }
    if let Some(hint) = v.hint {
        let _ = writeln!(d, "    likely: {hint}");
    }
    if let Some(p) = r.prev.and_then(|p| records.get(p)) {
        let _ = writeln!(
            d,
            "    previous request of {}: #{} {} {} [{}] at {} → {}",
            r.user,
            p.id,
            p.kind.as_str(),
            p.method,
            p.path,
            secs(p.answered),
            p.answer.describe()
        );
    }
    let nodes = involved(r, sessions, facts);
    let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let from = r.sent.saturating_sub(Duration::from_secs(8));
    let until = r.answered + Duration::from_secs(1);
    let history = facts.history(&names, from, until);
    let _ = writeln!(
        d,
        "    history of {} and the proxy, {} .. {}:",
        names.join(", "),
        secs(from),
        secs(until)
    );
    let skip = history.len().saturating_sub(30);
    for e in history.iter().skip(skip) {
        let mark = if e.at >= r.sent && e.at <= r.answered {
            "*"
        } else {
            " "
        };
        let _ = writeln!(d, "     {mark}{:>9}  {}", secs(e.at), e.what.describe());
    }
    d
}

/// The nodes a record is about: the owner, the route's, the answer's, and
/// any the answer's message names.
fn involved(r: &Record, sessions: &HashMap<String, SessionInfo>, facts: &Facts) -> Vec<String> {
    let mut nodes = Vec::new();
    if let Some(s) = r.session.as_ref().and_then(|t| sessions.get(t)) {
        nodes.push(s.owner.clone());
    }
    if let Some(n) = r.client.as_ref().and_then(|(id, _)| node_of_client_id(id)) {
        nodes.push(n.to_owned());
    }
    if let Route::Cookie(n) | Route::Header(n) | Route::Query(n) = &r.route {
        nodes.push(n.clone());
    }
    let text = r.answer.describe();
    for n in facts.nodes() {
        if text.contains(n.as_str()) {
            nodes.push(n.clone());
        }
    }
    nodes.sort();
    nodes.dedup();
    nodes
}
