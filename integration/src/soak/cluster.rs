//! The stack under test: the real `session-node`s and `sticky-proxy`, on
//! ports chosen up front so that a restarted process keeps its address (the
//! proxy's config names the nodes by URL), the proxy's TOML config file,
//! and one monitor per process that timestamps what it logs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration::{Process, TEST_ORIGIN};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::observe::{monitor, proxy_view};
use super::record::Shared;
use super::timeline::What;

/// Settings the soak runs the stack with.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub node_bin: PathBuf,
    pub proxy_bin: PathBuf,
    pub node_count: usize,
    pub node_ports: Vec<u16>,
    pub proxy_port: u16,
    pub dir: PathBuf,
    pub drain_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Where a node is in the chaos cycle. The driver only disturbs `Normal`
/// nodes, so a node is in at most one fault at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Normal,
    /// SIGKILLed, waiting for its restart.
    Dead,
    /// SIGTERMed, still serving its sessions.
    Draining,
    /// Drained and exited, waiting for its restart.
    Exited,
    /// Out of the proxy's config, still running.
    Removed,
}

#[derive(Debug)]
pub struct NodeSlot {
    pub name: String,
    pub index: usize,
    pub port: u16,
    pub process: Option<Process>,
    pub inc: u32,
    pub state: NodeState,
    pub since: Duration,
    expect_exit: Arc<AtomicBool>,
}

#[derive(Debug)]
pub struct Cluster {
    pub shared: Arc<Shared>,
    pub config: StackConfig,
    pub nodes: Vec<NodeSlot>,
    proxy: Option<Process>,
    proxy_inc: u32,
    proxy_expect_exit: Arc<AtomicBool>,
}

/// `n` free local ports (bound to port 0, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find free ports: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find free ports: {e}"))
}

impl Cluster {
    pub fn new(shared: Arc<Shared>, config: StackConfig) -> Cluster {
        let nodes = (1..=config.node_count)
            .map(|index| NodeSlot {
                name: format!("node-{index}"),
                index,
                port: config.node_ports[index - 1],
                process: None,
                inc: 0,
                state: NodeState::Dead,
                since: Duration::ZERO,
                expect_exit: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        Cluster {
            shared,
            config,
            nodes,
            proxy: None,
            proxy_inc: 0,
            proxy_expect_exit: Arc::new(AtomicBool::new(false)),
        }
    }

    fn node_args(&self, index: usize) -> Vec<String> {
        let key = integration::agent_key_file().display().to_string();
        let args = [
            "--name".to_owned(),
            format!("node-{index}"),
            "--allowed-origins".to_owned(),
            TEST_ORIGIN.to_owned(),
            "--agent-key-file".to_owned(),
            key,
            "--trusted-proxies".to_owned(),
            "127.0.0.1".to_owned(),
            "--token-partition".to_owned(),
            format!("{index}/{}", self.config.node_count),
            // Budgets sized for the soak: all its traffic comes from
            // 127.0.0.1 (one client to every budget), and a 429 would be the
            // soak tripping a limit, not a fault being handled.
            "--probe-budget".to_owned(),
            "1000000/1m".to_owned(),
            "--create-budget".to_owned(),
            "1000000/1s".to_owned(),
            "--drain-timeout".to_owned(),
            humantime::format_duration(self.config.drain_timeout).to_string(),
            "--cometd-timeout".to_owned(),
            "1s".to_owned(),
        ];
        args.to_vec()
    }

    fn proxy_args(&self) -> Vec<String> {
        let key = integration::agent_key_file().display().to_string();
        [
            "--config",
            &self.config_file().display().to_string(),
            "--admin-listen",
            "127.0.0.1:0",
            "--lookup-origin",
            TEST_ORIGIN,
            "--health-interval",
            "200ms",
            "--health-timeout",
            "200ms",
            "--agent-key-file",
            &key,
            // As on the nodes: one client (127.0.0.1) makes all the traffic.
            "--probe-budget",
            "1000000/1m",
            "--create-budget",
            "1000000/1s",
            "--max-connections-per-client",
            "0",
            "--shutdown-timeout",
            &humantime::format_duration(self.config.shutdown_timeout).to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    pub fn config_file(&self) -> PathBuf {
        self.config.dir.join("proxy.toml")
    }

    /// Writes the proxy's node list: every node not removed. Written to a
    /// temporary file and renamed, so a reload never reads half a file.
    pub fn write_config(&self) -> Result<(), String> {
        let text: String = self
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Removed)
            .map(|n| {
                format!(
                    "[[node]]\nname = \"{}\"\nurl = \"http://127.0.0.1:{}\"\n\n",
                    n.name, n.port
                )
            })
            .collect();
        let tmp = self.config.dir.join("proxy.toml.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.config_file()))
            .map_err(|e| format!("cannot write {}: {e}", self.config_file().display()))
    }

    pub async fn spawn_node(&mut self, i: usize) -> Result<(), String> {
        let args = self.node_args(self.nodes[i].index);
        let shared = self.shared.clone();
        let slot = &mut self.nodes[i];
        slot.inc += 1;
        let (name, inc) = (slot.name.clone(), slot.inc);
        let label = format!("{name}#{inc}");
        slot.expect_exit = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(monitor(
            shared.clone(),
            label.clone(),
            Some((name.clone(), inc)),
            rx,
            slot.expect_exit.clone(),
        ));
        shared.event(What::NodeSpawned {
            node: name.clone(),
            inc,
        });
        let listen = format!("127.0.0.1:{}", slot.port);
        let bin = self.config.node_bin.clone();
        let started = Process::start_at(&bin, &label, &args, &listen, false, Some(tx)).await;
        let slot = &mut self.nodes[i];
        match started {
            Ok(process) => {
                let pid = process.pid().as_raw() as u32;
                slot.since = shared.event(What::NodeListening {
                    node: name,
                    inc,
                    pid,
                });
                slot.process = Some(process);
                slot.state = NodeState::Normal;
                Ok(())
            }
            Err(error) => {
                slot.expect_exit.store(true, Ordering::SeqCst);
                shared.event(What::Trouble {
                    process: label,
                    what: format!("restart failed: {}", super::timeline::short(&error, 300)),
                });
                Err(error)
            }
        }
    }

    pub async fn spawn_proxy(&mut self) -> Result<(), String> {
        self.proxy_inc += 1;
        let inc = self.proxy_inc;
        let label = format!("proxy#{inc}");
        self.proxy_expect_exit = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.shared.clone();
        tokio::spawn(monitor(
            shared.clone(),
            label.clone(),
            None,
            rx,
            self.proxy_expect_exit.clone(),
        ));
        shared.event(What::ProxySpawned { inc });
        let listen = format!("127.0.0.1:{}", self.config.proxy_port);
        let args = self.proxy_args();
        let bin = self.config.proxy_bin.clone();
        match Process::start_at(&bin, &label, &args, &listen, true, Some(tx)).await {
            Ok(process) => {
                let pid = process.pid().as_raw() as u32;
                shared.event(What::ProxyListening { inc, pid });
                shared.set_admin_url(Some(process.admin_url()));
                self.proxy = Some(process);
                Ok(())
            }
            Err(error) => {
                self.proxy_expect_exit.store(true, Ordering::SeqCst);
                shared.event(What::Trouble {
                    process: label,
                    what: format!("start failed: {}", super::timeline::short(&error, 300)),
                });
                Err(error)
            }
        }
    }

    pub async fn kill_node(&mut self, i: usize) {
        let shared = self.shared.clone();
        let slot = &mut self.nodes[i];
        let Some(mut process) = slot.process.take() else {
            return;
        };
        slot.expect_exit.store(true, Ordering::SeqCst);
        shared.event(What::NodeKilled {
            node: slot.name.clone(),
            inc: slot.inc,
        });
        process.signal(Signal::SIGKILL);
        let status = process.exited_within(Duration::from_secs(5)).await;
        slot.since = shared.event(What::NodeExited {
            node: slot.name.clone(),
            inc: slot.inc,
            status: status.map_or("not reaped".to_owned(), |s| s.to_string()),
        });
        slot.state = NodeState::Dead;
    }

    pub fn drain_node(&mut self, i: usize) {
        let slot = &mut self.nodes[i];
        let Some(process) = &slot.process else {
            return;
        };
        // Its exit is expected from now on (when drained, or at the timeout).
        slot.expect_exit.store(true, Ordering::SeqCst);
        slot.since = self.shared.event(What::NodeDrainSignalled {
            node: slot.name.clone(),
            inc: slot.inc,
        });
        process.signal(Signal::SIGTERM);
        slot.state = NodeState::Draining;
    }

    /// Draining nodes that have exited since the last call.
    pub async fn reap_drained(&mut self) -> Vec<usize> {
        let mut exited = Vec::new();
        let limit = self.config.drain_timeout + Duration::from_secs(10);
        let now = self.shared.now();
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            if slot.state != NodeState::Draining {
                continue;
            }
            let Some(process) = slot.process.as_mut() else {
                continue;
            };
            let mut status = process.exited_within(Duration::ZERO).await;
            if status.is_none() && now > slot.since + limit {
                self.shared.event(What::Trouble {
                    process: format!("{}#{}", slot.name, slot.inc),
                    what: format!("still running {limit:?} after SIGTERM; killed"),
                });
                process.signal(Signal::SIGKILL);
                status = process.exited_within(Duration::from_secs(5)).await;
            }
            if let Some(status) = status {
                slot.since = self.shared.event(What::NodeExited {
                    node: slot.name.clone(),
                    inc: slot.inc,
                    status: status.to_string(),
                });
                if !status.success() {
                    self.shared.event(What::Trouble {
                        process: format!("{}#{}", slot.name, slot.inc),
                        what: format!("drained node exited with {status}"),
                    });
                }
                slot.process = None;
                slot.state = NodeState::Exited;
                exited.push(i);
            }
        }
        exited
    }

    fn reload(&self) -> Result<(), String> {
        self.write_config()?;
        match &self.proxy {
            Some(proxy) => {
                proxy.signal(Signal::SIGHUP);
                Ok(())
            }
            None => Err("no proxy to reload".into()),
        }
    }

    pub fn remove_node(&mut self, i: usize) -> Result<(), String> {
        self.nodes[i].state = NodeState::Removed;
        let node = self.nodes[i].name.clone();
        self.nodes[i].since = self.shared.event(What::NodeRemoved { node });
        self.reload()
    }

    pub fn readd_node(&mut self, i: usize) -> Result<(), String> {
        self.nodes[i].state = NodeState::Normal;
        let node = self.nodes[i].name.clone();
        self.nodes[i].since = self.shared.event(What::NodeReadded { node });
        self.reload()
    }

    /// SIGTERM, wait for the exit, start again on the same port after `gap`.
    pub async fn restart_proxy(&mut self, gap: Duration) -> Result<(), String> {
        if let Some(mut proxy) = self.proxy.take() {
            self.proxy_expect_exit.store(true, Ordering::SeqCst);
            let inc = self.proxy_inc;
            self.shared.event(What::ProxyStopping { inc });
            proxy.signal(Signal::SIGTERM);
            let limit = self.config.shutdown_timeout + Duration::from_secs(5);
            let mut status = proxy.exited_within(limit).await;
            if status.is_none() {
                self.shared.event(What::Trouble {
                    process: format!("proxy#{inc}"),
                    what: format!("still running {limit:?} after SIGTERM; killed"),
                });
                proxy.signal(Signal::SIGKILL);
                status = proxy.exited_within(Duration::from_secs(5)).await;
            }
            let status = status.map_or("unknown".to_owned(), |s| s.to_string());
            self.shared.event(What::ProxyExited { inc, status });
            self.shared.set_admin_url(None);
        }
        tokio::time::sleep(gap).await;
        self.spawn_proxy().await
    }

    /// Waits until the proxy reports every configured node up.
    pub async fn wait_all_up(&self, deadline: Duration) -> bool {
        let want: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Removed)
            .map(|n| n.name.clone())
            .collect();
        let start = tokio::time::Instant::now();
        while start.elapsed() < deadline {
            if let Some(states) = proxy_view(&self.shared).await {
                if want
                    .iter()
                    .all(|n| states.iter().any(|(name, s)| name == n && s == "up"))
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Every exit from now on is expected; the processes are killed when
    /// the cluster is dropped.
    pub fn expect_exits(&self) {
        self.proxy_expect_exit.store(true, Ordering::SeqCst);
        for slot in &self.nodes {
            slot.expect_exit.store(true, Ordering::SeqCst);
        }
    }
}
