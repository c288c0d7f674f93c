//! The chaos soak (see `src/bin/soak.rs` for what it does and the rules it
//! judges by).

mod cluster;
mod cometd;
mod driver;
mod http;
mod judge;
mod observe;
mod record;
mod report;
mod timeline;
mod traffic;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::Method;
use tokio::sync::watch;

use cluster::{free_ports, Cluster, StackConfig};
use driver::{Chaos, Driver};
use http::{Req, User};
use observe::watch_proxy_view;
use record::{Kind, Route, Shared};
use timeline::{Facts, What};

/// Mixed session traffic through sticky-proxy while nodes are killed,
/// drained, removed and re-added, and the proxy is restarted; every answer
/// is judged against what happened.
#[derive(Debug, clap::Parser)]
#[command(name = "soak")]
pub struct Options {
    /// How long the traffic and the faults run (then the faults are undone
    /// and every live session is checked once more).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Seed of every random choice (faults, timings, routes); printed, so a
    /// run's schedule can be replayed (the interleaving cannot).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Session nodes behind the proxy.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Where `session-node` and `sticky-proxy` are [default: the directory of
    /// this binary, i.e. target/debug].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// REST virtual users.
    #[arg(long, default_value_t = 6)]
    pub users: usize,
    /// CometD long-polling virtual users.
    #[arg(long, default_value_t = 3)]
    pub cometd_users: usize,
    /// Fault kinds: a comma-separated subset of kill,drain,remove,proxy, or none.
    #[arg(long, default_value = "kill,drain,remove,proxy")]
    pub events: String,
    /// Also write the summary with every failure in full to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// How long a drained node may keep its live sessions.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(6);
/// The proxy's `--shutdown-timeout`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);
/// Traffic runs this long before the first fault.
const WARM_UP: Duration = Duration::from_secs(3);

/// Runs the soak; `Ok(true)` when nothing failed.
pub async fn run(options: Options) -> Result<bool, String> {
    let kinds = Chaos::parse(&options.events)?;
    if options.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let seed = options.seed.unwrap_or_else(rand::random);
    let bin_dir = match &options.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .ok_or("cannot tell where this binary is; pass --bin-dir")?,
    };
    let node_bin = integration::binary_in(&bin_dir, "session-node")?;
    let proxy_bin = integration::binary_in(&bin_dir, "sticky-proxy")?;
    let ports = free_ports(options.nodes + 1)?;
    let proxy_url = format!("http://127.0.0.1:{}", ports[options.nodes]);
    let names: Vec<String> = (1..=options.nodes).map(|i| format!("node-{i}")).collect();
    let agent_token = integration::agent_token_with(&node_bin, "soak-agent", &["--ttl", "2h"])?;
    let shared = Shared::new(proxy_url, names.clone(), agent_token);
    let dir = std::env::temp_dir().join(format!("cobrowse-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = StackConfig {
        node_bin,
        proxy_bin,
        node_count: options.nodes,
        node_ports: ports[..options.nodes].to_vec(),
        proxy_port: ports[options.nodes],
        dir: dir.clone(),
        drain_timeout: DRAIN_TIMEOUT,
        shutdown_timeout: SHUTDOWN_TIMEOUT,
    };
    let header = format!(
        "chaos soak: seed {seed}, {} of traffic, {} nodes, {} REST + {} CometD users, faults {:?}\n\
         replay the schedule: soak --seed {seed} --duration {} --nodes {} --events {}",
        humantime::format_duration(options.duration),
        options.nodes,
        options.users,
        options.cometd_users,
        kinds,
        humantime::format_duration(options.duration),
        options.nodes,
        options.events,
    );
    eprintln!("{header}");

    let mut cluster = Cluster::new(shared.clone(), config);
    for i in 0..options.nodes {
        cluster.spawn_node(i).await?;
    }
    cluster.write_config()?;
    cluster.spawn_proxy().await?;
    if !cluster.wait_all_up(Duration::from_secs(20)).await {
        return Err("the proxy did not see every node up".into());
    }

    let (view_stop, view_rx) = watch::channel(false);
    let viewer = tokio::spawn(watch_proxy_view(shared.clone(), view_rx));
    let (users_stop, users_rx) = watch::channel(false);
    let mut users = Vec::new();
    for i in 0..options.users + options.cometd_users {
        let rng = StdRng::seed_from_u64(seed ^ (0x5eed_0000 + i as u64));
        let rest = i < options.users;
        let name = if rest {
            format!("rest-{}", i + 1)
        } else {
            format!("cometd-{}", i + 1 - options.users)
        };
        let user = User::new(name, shared.clone(), rng)?;
        let stop = users_rx.clone();
        users.push(if rest {
            tokio::spawn(traffic::rest_user(user, stop))
        } else {
            tokio::spawn(cometd::cometd_user(user, stop))
        });
    }
    let start = shared.now();
    let mut driver = Driver::new(StdRng::seed_from_u64(seed), kinds);
    driver
        .run(&mut cluster, start + WARM_UP, start + options.duration)
        .await;
    let _ = users_stop.send(true);
    for user in users {
        if tokio::time::timeout(Duration::from_secs(15), user)
            .await
            .is_err()
        {
            shared.event(What::Trouble {
                process: "soak".into(),
                what: "a virtual user did not stop within 15 s".into(),
            });
        }
    }
    eprintln!(
        "soak: traffic done at {}; undoing the faults",
        timeline::secs(shared.now())
    );
    driver.settle(&mut cluster).await;
    if !cluster.wait_all_up(Duration::from_secs(15)).await {
        shared.event(What::Trouble {
            process: "proxy".into(),
            what: "not every node up 15 s after the faults were undone".into(),
        });
    }
    final_check(&shared, seed).await?;
    let _ = view_stop.send(true);
    let _ = viewer.await;
    cluster.expect_exits();

    let facts = Facts::new(&names, shared.events());
    let records = shared.records();
    let sessions = shared.sessions();
    let verdicts: Vec<_> = records
        .iter()
        .map(|r| judge::judge(r, &facts, &sessions, &records))
        .collect();
    let report = report::build(&header, &records, &verdicts, &facts, &sessions);
    println!("{}", report.text);
    if let Some(path) = &options.report {
        std::fs::write(path, &report.full).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("full report: {}", path.display());
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report.failures == 0)
}

/// Reads every session that should still be live (its owner process never
/// died, never stopped) once more, bound by cookie to its owner.
async fn final_check(shared: &Arc<Shared>, seed: u64) -> Result<(), String> {
    let facts = Facts::new(&shared.node_names, shared.events());
    let mut live: Vec<(String, String)> = shared
        .sessions()
        .into_iter()
        .filter(|(_, s)| s.stopped.is_none() && !s.stop_uncertain)
        .filter(|(_, s)| {
            facts
                .life_at(&s.owner, s.created)
                .is_some_and(|l| l.death.is_none())
        })
        .map(|(token, s)| (token, s.owner))
        .collect();
    live.sort();
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let chunk: Vec<(String, String)> = live.iter().skip(w).step_by(workers).cloned().collect();
        let rng = StdRng::seed_from_u64(seed ^ (0xf1_0000 + w as u64));
        let mut user = User::new(format!("final-{}", w + 1), shared.clone(), rng)?;
        tasks.push(tokio::spawn(async move {
            for (token, owner) in chunk {
                let path = format!("/cobrowse/rest/live/sessions/{token}");
                let mut req = Req::new(Kind::FinalGet, Route::Cookie(owner), Method::GET, path);
                req.session = Some(token);
                req.origin = true;
                user.send(req).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}
