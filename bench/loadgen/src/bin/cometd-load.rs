//! `cometd-load`: the realtime scale benchmark.
//!
//! For each of `--sessions` sessions: a customer WebSocket (balanced by the
//! front) handshakes, creates a session, joins it (role 1, with the
//! `customerKey` the create answered) and subscribes to its data channel; an
//! agent WebSocket to `?gcbSessionServer=<the session's node>` handshakes,
//! joins (role 2, with `agentToken` = `--agent-token` in the join's data) and
//! subscribes. Both keep a
//! `/meta/connect` outstanding. Setup runs `--setup-concurrency` sessions at a
//! time and is not measured; any failure stops the run with its reason.
//!
//! Then every customer publishes `{"seq":i,"sentUs":…}` on its session's data
//! channel `--rate` times a second for `--duration` (`rate × duration`
//! messages, rounded; the customers' tickers are offset evenly over one
//! period, so sends do not align). `sentUs` is microseconds since a start
//! instant the whole process shares, so agents compute the delivery latency
//! (`now - sentUs`, into an HDR histogram) and check that seqs arrive in
//! order with none missing. After the last send, agents get
//! `--drain` to receive what is in flight; then every client leaves (the
//! customer exits the session, so the nodes do not keep it), and one JSON line
//! goes to stdout:
//!
//! `{"sessions":N,"rate_per_session":R,"duration_s":D,"sent":…,"received":…,
//! "lost":…,"reordered":…,"p50_ms":…,"p99_ms":…,"p999_ms":…,"max_ms":…}`
//!
//! Exit status: 0 once the line is printed; 1 if setup failed (no line); 2
//! with `--strict` when a message was lost, reordered or duplicated.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use loadgen::bayeux::{self, Client};
use loadgen::latency::Latency;
use loadgen::run::{self, json_number, ErrorTally};
use loadgen::seq::SeqTracker;
use loadgen::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use shared_types::bayeux::{
    session_data_channel, Message, META_CONNECT, META_SUBSCRIBE, SERVICE_CREATE, SERVICE_EXIT,
    SERVICE_JOIN,
};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Read buffer of each socket (the default 128 KiB × thousands of sockets
/// would be the generator's main cost).
const READ_BUFFER: usize = 16 * 1024;
/// How long leaving (exit, disconnect, close) may take per client.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the clients get to report after the teardown.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Parser)]
#[command(
    name = "cometd-load",
    about = "CometD (Bayeux over WebSocket) sessions: customers publish at a fixed rate, agents measure delivery latency, loss and order",
    after_help = "Prints one JSON line on stdout, progress on stderr. Exit status: 0; 1 if setup failed (no JSON line); 2 with --strict when a message was lost, reordered or duplicated."
)]
struct Args {
    /// The front (proxy) or a node: `http://host:port` (or `ws://`).
    #[arg(long, visible_alias = "url", default_value = "http://127.0.0.1:8700")]
    base_url: String,
    /// Context path of the application.
    #[arg(long, default_value = "/cobrowse")]
    context_path: String,
    /// Sessions (each a customer and an agent connection).
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Messages per second each customer publishes.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long the customers publish (measured), e.g. `30s`, `2m`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// After the last publish, how long agents may still wait for deliveries.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Sessions being set up at the same time.
    #[arg(long, default_value_t = 50)]
    setup_concurrency: usize,
    /// Time each setup step (connect, handshake, create, join, …) may take.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    setup_timeout: Duration,
    /// Extra bytes of padding in each published message's data (`pad`).
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Exit with status 2 if any message was lost, reordered or duplicated.
    #[arg(long)]
    strict: bool,
    /// Agent credential (JWT, e.g. from `session-node agent-token`) the
    /// agents join with, as `agentToken` in the join's data. Without one
    /// they join without a credential, which only a node started with
    /// `--agent-auth none` accepts.
    #[arg(long, env = "LOADGEN_AGENT_TOKEN", hide_env_values = true)]
    agent_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    /// Publishing starts at this instant.
    Measure(Instant),
    /// Publishing is over and drained: leave.
    Teardown,
}

/// What every task of the run shares.
#[derive(Debug)]
struct Run {
    args: Args,
    /// Origin of `sentUs`.
    base: Instant,
    period: Duration,
    /// Messages each customer publishes: `rate × duration`, rounded.
    per_customer: u64,
    customer_url: String,
    padding: Option<String>,
    sent: AtomicU64,
    received: AtomicU64,
    ready: AtomicUsize,
    agents_done: AtomicUsize,
    agent_finished: Notify,
    latency: Mutex<Latency>,
    /// Largest delay between a publish's scheduled and actual send: how far
    /// the generator itself fell behind.
    max_send_lag_us: AtomicU64,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

/// A session as its two clients know it.
#[derive(Debug)]
struct Session {
    channel: String,
    customer_user_token: String,
    node: String,
}

#[derive(Debug, Default)]
struct CustomerStats {
    sent: u64,
    acked: u64,
    refused: u64,
    first_refusal: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct AgentStats {
    received: u64,
    tracker: SeqTracker,
    malformed: u64,
    error: Option<String>,
}

struct SessionTasks {
    /// The node that holds the session.
    node: String,
    customer: JoinHandle<CustomerStats>,
    agent: JoinHandle<AgentStats>,
}

#[derive(Debug, Serialize)]
struct Report {
    sessions: usize,
    rate_per_session: Value,
    duration_s: Value,
    sent: u64,
    received: u64,
    lost: u64,
    reordered: u64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = run::runtime(args.threads).and_then(|rt| rt.block_on(main_async(args)));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cometd-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async(args: Args) -> Result<ExitCode> {
    if args.sessions == 0 || args.setup_concurrency == 0 {
        return Err("--sessions and --setup-concurrency must be at least 1".into());
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err("--rate must be a positive number".into());
    }
    run::raise_open_files_limit(2 * args.sessions as u64);
    let customer_url = bayeux::websocket_url(&args.base_url, &args.context_path, None)?;
    let sessions = args.sessions;
    let run = Arc::new(Run {
        period: Duration::from_secs_f64(1.0 / args.rate),
        per_customer: (args.rate * args.duration.as_secs_f64()).round() as u64,
        padding: (args.payload_bytes > 0).then(|| "x".repeat(args.payload_bytes)),
        customer_url,
        base: Instant::now(),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        agents_done: AtomicUsize::new(0),
        agent_finished: Notify::new(),
        latency: Mutex::new(Latency::new()?),
        max_send_lag_us: AtomicU64::new(0),
        args,
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let progress = tokio::spawn(progress(Arc::clone(&run), phase_rx.clone()));

    // Setup, bounded; the first failure ends the run.
    eprintln!(
        "cometd-load: setting up {sessions} sessions via {} ({} at a time)",
        run.customer_url, run.args.setup_concurrency
    );
    let setup_started = Instant::now();
    let permits = Arc::new(Semaphore::new(run.args.setup_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<SessionTasks>>();
    for index in 0..sessions {
        let run = Arc::clone(&run);
        let permits = Arc::clone(&permits);
        let ready_tx = ready_tx.clone();
        let phase_rx = phase_rx.clone();
        tokio::spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let setup = setup(&run).await.context(format_args!("session {index}"));
            drop(permit);
            let _ = ready_tx.send(setup.map(|(customer, agent, session)| {
                run.ready.fetch_add(1, Ordering::Relaxed);
                start_session(index, customer, agent, session, &run, phase_rx)
            }));
        });
    }
    drop(ready_tx);
    let mut tasks = Vec::with_capacity(sessions);
    while let Some(ready) = ready_rx.recv().await {
        tasks.push(ready.context("setup failed")?);
    }
    if tasks.len() != sessions {
        return Err(format!(
            "setup failed: only {} of {sessions} sessions set up",
            tasks.len()
        )
        .into());
    }
    let mut per_node = BTreeMap::<&str, usize>::new();
    for session in &tasks {
        *per_node.entry(session.node.as_str()).or_default() += 1;
    }
    eprintln!(
        "cometd-load: {sessions} sessions ({} connections) set up in {:.1}s, per node {per_node:?}; \
         measuring for {} ({} messages per customer)",
        2 * sessions,
        setup_started.elapsed().as_secs_f64(),
        humantime::format_duration(run.args.duration),
        run.per_customer,
    );

    // Measure: let every client see the start before it comes.
    let t0 = Instant::now() + Duration::from_millis(200);
    phase_tx.send_replace(Phase::Measure(t0));
    tokio::time::sleep_until(t0 + run.args.duration).await;
    let drain_deadline = Instant::now() + run.args.drain;
    while run.agents_done.load(Ordering::Relaxed) < sessions {
        tokio::select! {
            () = run.agent_finished.notified() => {}
            () = tokio::time::sleep_until(drain_deadline) => break,
        }
    }
    let drained = run.agents_done.load(Ordering::Relaxed);
    if drained < sessions {
        eprintln!(
            "cometd-load: {} agents still missing messages after the {} drain",
            sessions - drained,
            humantime::format_duration(run.args.drain)
        );
    }
    phase_tx.send_replace(Phase::Teardown);
    progress.abort();

    // Collect.
    let collect_deadline = Instant::now() + COLLECT_TIMEOUT;
    let (mut sent, mut received, mut lost, mut reordered) = (0u64, 0u64, 0u64, 0u64);
    let (mut duplicates, mut acked, mut refused, mut malformed) = (0u64, 0u64, 0u64, 0u64);
    let mut errors = ErrorTally::default();
    let mut refusals = ErrorTally::default();
    for (index, session) in tasks.into_iter().enumerate() {
        let customer = tokio::time::timeout_at(collect_deadline, session.customer).await;
        let customer = match customer {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                errors.add(format_args!("customer task: {e}"));
                CustomerStats::default()
            }
            Err(_) => {
                errors.add("customer did not finish in time");
                CustomerStats::default()
            }
        };
        let agent = match tokio::time::timeout_at(collect_deadline, session.agent).await {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                errors.add(format_args!("agent task: {e}"));
                AgentStats::default()
            }
            Err(_) => {
                errors.add("agent did not finish in time");
                AgentStats::default()
            }
        };
        sent += customer.sent;
        acked += customer.acked;
        refused += customer.refused;
        if let Some(refusal) = customer.first_refusal {
            refusals.add(refusal);
        }
        if let Some(error) = customer.error {
            if errors.is_empty() {
                eprintln!("cometd-load: session {index}: customer: {error}");
            }
            errors.add(format_args!("customer: {error}"));
        }
        if let Some(error) = agent.error {
            if errors.is_empty() {
                eprintln!("cometd-load: session {index}: agent: {error}");
            }
            errors.add(format_args!("agent: {error}"));
        }
        received += agent.received;
        lost += agent.tracker.lost(customer.sent);
        reordered += agent.tracker.reordered();
        duplicates += agent.tracker.duplicates();
        malformed += agent.malformed + agent.tracker.unexpected();
    }

    let latency = match run.latency.lock() {
        Ok(latency) => latency.summary(),
        Err(poisoned) => poisoned.into_inner().summary(),
    };
    run::print_json_line(&Report {
        sessions,
        rate_per_session: json_number(run.args.rate),
        duration_s: json_number(run.args.duration.as_secs_f64()),
        sent,
        received,
        lost,
        reordered,
        p50_ms: latency.p50_ms,
        p99_ms: latency.p99_ms,
        p999_ms: latency.p999_ms,
        max_ms: latency.max_ms,
    })?;
    eprintln!(
        "cometd-load: publishes acknowledged {acked}, refused {refused}; duplicates {duplicates}; \
         malformed deliveries {malformed}; generator send lag max {:.1} ms",
        run.max_send_lag_us.load(Ordering::Relaxed) as f64 / 1000.0
    );
    refusals.report("cometd-load: publish refused");
    errors.report("cometd-load: error");
    let clean = lost == 0 && reordered == 0 && duplicates == 0;
    Ok(if run.args.strict && !clean {
        eprintln!(
            "cometd-load: --strict: {lost} lost, {reordered} reordered, {duplicates} duplicated"
        );
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Progress on stderr, once a second.
async fn progress(run: Arc<Run>, mut phase: watch::Receiver<Phase>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last_sent = 0;
    loop {
        tick.tick().await;
        let current = *phase.borrow_and_update();
        match current {
            Phase::Setup => eprintln!(
                "cometd-load: setup {}/{} sessions",
                run.ready.load(Ordering::Relaxed),
                run.args.sessions
            ),
            Phase::Measure(t0) => {
                let sent = run.sent.load(Ordering::Relaxed);
                eprintln!(
                    "cometd-load: t={:>4.0}s sent {sent} ({}/s) received {}",
                    Instant::now().saturating_duration_since(t0).as_secs_f64(),
                    sent - last_sent,
                    run.received.load(Ordering::Relaxed),
                );
                last_sent = sent;
            }
            Phase::Teardown => return,
        }
    }
}

fn string_field(data: Option<&Value>, name: &str) -> Result<String> {
    data.and_then(|d| d.get(name))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("answer without {name}").into())
}

/// Sets up one session: the customer creates and joins it, the agent joins
/// it on the session's node; both subscribe and connect.
async fn setup(run: &Run) -> Result<(Client, Client, Session)> {
    let timeout = run.args.setup_timeout;
    let config = bayeux::socket_config(READ_BUFFER);

    let socket = bayeux::open(&run.customer_url, config)
        .await
        .context("customer: connect")?;
    let mut customer = Client::handshake(socket, timeout)
        .await
        .context("customer: handshake")?;
    let create = Message {
        data: Some(json!({})),
        ..customer.message(SERVICE_CREATE)
    };
    let created = customer
        .call(create, timeout)
        .await
        .context("customer: create")?;
    let token = string_field(created.data.as_ref(), "sessionToken").context("customer: create")?;
    let node =
        string_field(created.data.as_ref(), "sessionServerName").context("customer: create")?;
    let customer_key =
        string_field(created.data.as_ref(), "customerKey").context("customer: create")?;
    let join = Message {
        data: Some(json!({"sessionToken": token, "role": 1, "customerKey": customer_key})),
        ..customer.message(SERVICE_JOIN)
    };
    let joined = customer
        .call(join, timeout)
        .await
        .context("customer: join")?;
    let customer_user_token =
        string_field(joined.data.as_ref(), "userToken").context("customer: join")?;
    let channel = session_data_channel(&token);
    let subscribe = Message {
        subscription: Some(json!(channel)),
        ..customer.message(META_SUBSCRIBE)
    };
    customer
        .call(subscribe, timeout)
        .await
        .context("customer: subscribe")?;

    let agent_url = bayeux::websocket_url(&run.args.base_url, &run.args.context_path, Some(&node))?;
    let socket = bayeux::open(&agent_url, config)
        .await
        .context("agent: connect")?;
    let mut agent = Client::handshake(socket, timeout)
        .await
        .context("agent: handshake")?;
    if agent.node.as_deref() != Some(node.as_str()) {
        return Err(format!(
            "agent: reached node {:?}, not the session's node {node:?}: the front did not route on the gcbSessionServer query parameter",
            agent.node.as_deref().unwrap_or("(unnamed)")
        )
        .into());
    }
    let mut data = json!({"sessionToken": token, "role": 2});
    if let (Some(credential), Some(map)) = (&run.args.agent_token, data.as_object_mut()) {
        map.insert("agentToken".into(), Value::from(credential.as_str()));
    }
    let join = Message {
        data: Some(data),
        ..agent.message(SERVICE_JOIN)
    };
    agent.call(join, timeout).await.context("agent: join")?;
    let subscribe = Message {
        subscription: Some(json!(channel)),
        ..agent.message(META_SUBSCRIBE)
    };
    agent
        .call(subscribe, timeout)
        .await
        .context("agent: subscribe")?;

    for (who, client) in [("customer", &mut customer), ("agent", &mut agent)] {
        client
            .first_connect(timeout)
            .await
            .context(format_args!("{who}: first connect"))?;
        client
            .send_connect()
            .await
            .context(format_args!("{who}: connect"))?;
    }
    Ok((
        customer,
        agent,
        Session {
            channel,
            customer_user_token,
            node,
        },
    ))
}

fn start_session(
    index: usize,
    customer: Client,
    agent: Client,
    session: Session,
    run: &Arc<Run>,
    phase: watch::Receiver<Phase>,
) -> SessionTasks {
    let node = session.node.clone();
    let session = Arc::new(session);
    let (sent_tx, sent_rx) = watch::channel(None);
    SessionTasks {
        node,
        customer: tokio::spawn(run_customer(
            index,
            customer,
            Arc::clone(&session),
            Arc::clone(run),
            phase.clone(),
            sent_tx,
        )),
        agent: tokio::spawn(run_agent(agent, session, Arc::clone(run), phase, sent_rx)),
    }
}

/// Whether `batch` answers this client's held `/meta/connect`, so a new one
/// is due. A refused connect (the node forgot the client) is an error.
fn connect_answered(batch: &[Message]) -> Result<bool> {
    let mut due = false;
    for m in batch.iter().filter(|m| m.channel == META_CONNECT) {
        if m.successful == Some(true) {
            due = true;
        } else {
            return Err(format!(
                "/meta/connect refused: {}",
                m.error.as_deref().unwrap_or("(no error given)")
            )
            .into());
        }
    }
    Ok(due)
}

async fn run_customer(
    index: usize,
    mut client: Client,
    session: Arc<Session>,
    run: Arc<Run>,
    mut phase: watch::Receiver<Phase>,
    sent_tx: watch::Sender<Option<u64>>,
) -> CustomerStats {
    let mut stats = CustomerStats::default();
    let mut outcome = publish(index, &mut client, &session, &run, &mut phase, &mut stats).await;
    // Tell the agent how many to expect, whatever happened.
    sent_tx.send_replace(Some(stats.sent));
    if outcome.is_ok() {
        outcome = async {
            while *phase.borrow_and_update() != Phase::Teardown {
                tokio::select! {
                    changed = phase.changed() => if changed.is_err() { break },
                    batch = client.receive() => on_customer_batch(&mut client, batch?, &session, &mut stats).await?,
                }
            }
            Ok(())
        }
        .await;
    }
    if let Err(e) = outcome {
        stats.error = Some(e.to_string());
    }
    let exit = Message {
        data: Some(json!({"userToken": session.customer_user_token})),
        ..client.message(SERVICE_EXIT)
    };
    client.leave(vec![exit], LEAVE_TIMEOUT).await;
    stats
}

/// Waits for the start, then publishes at the rate until the end of the
/// measurement.
async fn publish(
    index: usize,
    client: &mut Client,
    session: &Session,
    run: &Run,
    phase: &mut watch::Receiver<Phase>,
    stats: &mut CustomerStats,
) -> Result<()> {
    let t0 = loop {
        let current = *phase.borrow_and_update();
        match current {
            Phase::Measure(t0) => break t0,
            Phase::Teardown => return Ok(()),
            Phase::Setup => {}
        }
        tokio::select! {
            changed = phase.changed() => if changed.is_err() { return Ok(()) },
            batch = client.receive() => on_customer_batch(client, batch?, session, stats).await?,
        }
    };
    // Offsets spread evenly over one period.
    let offset = run.period.mul_f64(index as f64 / run.args.sessions as f64);
    let mut ticker = tokio::time::interval_at(t0 + offset, run.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            at = ticker.tick() => {
                if stats.sent >= run.per_customer {
                    return Ok(());
                }
                let lag = Instant::now().saturating_duration_since(at).as_micros() as u64;
                run.max_send_lag_us.fetch_max(lag, Ordering::Relaxed);
                let mut data = json!({"seq": stats.sent, "sentUs": run.now_us()});
                if let (Some(pad), Some(map)) = (&run.padding, data.as_object_mut()) {
                    map.insert("pad".into(), Value::from(pad.as_str()));
                }
                let publish = Message { data: Some(data), ..client.message(&session.channel) };
                client.send(&[publish]).await.context("publishing")?;
                stats.sent += 1;
                run.sent.fetch_add(1, Ordering::Relaxed);
            }
            batch = client.receive() => on_customer_batch(client, batch?, session, stats).await?,
        }
    }
}

/// The customer's view of a batch: publish acknowledgements and connect
/// replies (events such as joined/activated are ignored).
async fn on_customer_batch(
    client: &mut Client,
    batch: Option<Vec<Message>>,
    session: &Session,
    stats: &mut CustomerStats,
) -> Result<()> {
    let Some(batch) = batch else {
        return Err("the server closed the socket".into());
    };
    for m in batch.iter().filter(|m| m.channel == session.channel) {
        match m.successful {
            Some(true) => stats.acked += 1,
            Some(false) => {
                stats.refused += 1;
                stats
                    .first_refusal
                    .get_or_insert_with(|| m.error.clone().unwrap_or_default());
            }
            None => {}
        }
    }
    if connect_answered(&batch)? {
        client.send_connect().await.context("connect")?;
    }
    Ok(())
}

async fn run_agent(
    mut client: Client,
    session: Arc<Session>,
    run: Arc<Run>,
    mut phase: watch::Receiver<Phase>,
    mut sent_rx: watch::Receiver<Option<u64>>,
) -> AgentStats {
    let mut stats = AgentStats::default();
    if let Err(e) = receive(
        &mut client,
        &session,
        &run,
        &mut phase,
        &mut sent_rx,
        &mut stats,
    )
    .await
    {
        stats.error = Some(e.to_string());
    }
    run.agents_done.fetch_add(1, Ordering::Relaxed);
    run.agent_finished.notify_one();
    client.leave(Vec::new(), LEAVE_TIMEOUT).await;
    stats
}

/// Receives deliveries until all that was sent arrived or the teardown.
async fn receive(
    client: &mut Client,
    session: &Session,
    run: &Run,
    phase: &mut watch::Receiver<Phase>,
    sent_rx: &mut watch::Receiver<Option<u64>>,
    stats: &mut AgentStats,
) -> Result<()> {
    let mut sent_open = true;
    let mut latencies = Vec::new();
    loop {
        let sent = *sent_rx.borrow_and_update();
        if sent.is_some_and(|sent| stats.tracker.distinct() >= sent) {
            return Ok(());
        }
        if *phase.borrow_and_update() == Phase::Teardown {
            return Ok(());
        }
        tokio::select! {
            changed = sent_rx.changed(), if sent_open => if changed.is_err() { sent_open = false },
            changed = phase.changed() => if changed.is_err() { return Ok(()) },
            batch = client.receive() => {
                let Some(batch) = batch? else {
                    return Err("the server closed the socket".into());
                };
                let now = run.now_us();
                for m in batch.iter().filter(|m| m.channel == session.channel && m.successful.is_none()) {
                    let data = m.data.as_ref();
                    let seq = data.and_then(|d| d.get("seq")).and_then(Value::as_u64);
                    let sent_us = data.and_then(|d| d.get("sentUs")).and_then(Value::as_u64);
                    let (Some(seq), Some(sent_us)) = (seq, sent_us) else {
                        stats.malformed += 1;
                        continue;
                    };
                    stats.received += 1;
                    stats.tracker.record(seq);
                    latencies.push(now.saturating_sub(sent_us));
                }
                if !latencies.is_empty() {
                    run.received.fetch_add(latencies.len() as u64, Ordering::Relaxed);
                    let mut histogram = run.latency.lock().unwrap_or_else(|p| p.into_inner());
                    for us in latencies.drain(..) {
                        histogram.record_us(us);
                    }
                }
                if connect_answered(&batch)? {
                    client.send_connect().await.context("connect")?;
                }
            }
        }
    }
}
