//! Helpers for the end-to-end suite: start the real `session-node` and
//! `sticky-proxy` binaries on free ports and talk to them over real sockets.
//!
//! - [`Process`]: a started binary. It is told `--listen 127.0.0.1:0`; its
//!   address is read from its own `listening on ADDR` log line, so there is no
//!   port race and no sleep. It is killed when dropped.
//! - [`eventually`]: polls a condition until it holds or a deadline passes.
//! - [`agent_key_file`], [`agent_token`], [`authorize_join`]: the suite's
//!   nodes require agent credentials (the default); tokens are minted by the
//!   real `session-node agent-token`, and customer keys are remembered from
//!   the creates that handed them out ([`remember_created`]).
//!
//! - [`tls`]: certificates made with rcgen (a self-signed one for
//!   `make run-tls`, a test CA that issues several).
//!
//! The binaries are the ones `cargo build --bins` put next to the test
//! executable (`make test` builds them first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub mod tls;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long a binary may take to say it is listening.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// The Origin the tests' nodes allow (and the proxy's lookups send).
pub const TEST_ORIGIN: &str = "http://app.test";

/// Path of a workspace binary, next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`; `make test` does)",
        path.display()
    );
    path
}

/// A running binary of the workspace.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    pub addr: SocketAddr,
    /// The admin listener's address, when the binary logged one.
    pub admin_addr: Option<SocketAddr>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `bin` with `args` plus `--listen 127.0.0.1:0`, and waits until it
    /// logs the address it bound (and, with `want_admin`, its admin address).
    pub async fn start(bin: &str, name: &str, args: &[String], want_admin: bool) -> Process {
        spawn_and_wait(Command::new(binary(bin)), bin, name, args, want_admin).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr.expect("admin listener"))
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("running") as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("send signal");
    }

    /// Waits for the process to exit, at most `deadline`.
    pub async fn exited_within(&mut self, deadline: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }
}

fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(marker)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The agent key (HS256 secret) every test node verifies credentials with:
/// a fresh random file per test process.
pub fn agent_key_file() -> &'static Path {
    static KEY: OnceLock<PathBuf> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cobrowse-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key dir");
        let path = dir.join("agent.key");
        let secret = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        std::fs::write(&path, secret).expect("write key");
        path
    })
}

/// An agent credential for `sub` (and `extra` flags such as `--session T`
/// or `--roles 2`), minted by `session-node agent-token`.
pub fn agent_token(sub: &str, extra: &[&str]) -> String {
    agent_token_with(&binary("session-node"), sub, extra).unwrap_or_else(|e| panic!("{e}"))
}

/// The credential of the suite's default agent, minted once.
pub fn default_agent_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| agent_token("agent-e2e", &[]))
}

fn customer_keys() -> &'static Mutex<HashMap<String, String>> {
    static KEYS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    KEYS.get_or_init(Default::default)
}

/// Remembers the customer key of a Create Session answer.
pub fn remember_created(body: &serde_json::Value) {
    if let (Some(token), Some(key)) = (body["sessionToken"].as_str(), body["customerKey"].as_str())
    {
        customer_keys()
            .lock()
            .expect("keys lock")
            .insert(token.to_owned(), key.to_owned());
    }
}

/// The customer key of a session this process created.
pub fn customer_key(token: &str) -> Option<String> {
    customer_keys()
        .lock()
        .expect("keys lock")
        .get(token)
        .cloned()
}

/// A join as the role's rightful party: the customer's body gets the
/// session's `customerKey`, agents and controllers a bearer credential.
pub fn authorize_join(
    request: reqwest::RequestBuilder,
    token: &str,
    role: u8,
    mut body: serde_json::Value,
) -> reqwest::RequestBuilder {
    body["role"] = role.into();
    if role == 1 {
        if let Some(key) = customer_key(token) {
            body["customerKey"] = key.into();
        }
        request.json(&body)
    } else {
        request.bearer_auth(default_agent_token()).json(&body)
    }
}

/// Starts a session node named `name` that allows [`TEST_ORIGIN`], verifies
/// agent credentials with [`agent_key_file`], and believes `X-Forwarded-For`
/// from 127.0.0.1 (the suite's proxy).
pub async fn start_node(name: &str, extra: &[&str]) -> Process {
    let mut args = vec![
        "--name".to_owned(),
        name.to_owned(),
        "--allowed-origins".to_owned(),
        TEST_ORIGIN.to_owned(),
        "--agent-key-file".to_owned(),
        agent_key_file().display().to_string(),
        "--trusted-proxies".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Process::start("session-node", name, &args, false).await
}

/// The suite's `sticky-proxy` flags for `nodes`: admin listener on, health
/// checks every 100 ms, lookups with [`TEST_ORIGIN`].
pub fn proxy_args(nodes: &[&Process]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--admin-listen",
        "127.0.0.1:0",
        "--lookup-origin",
        TEST_ORIGIN,
        "--health-interval",
        "100ms",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for node in nodes {
        args.push("--node".into());
        args.push(format!("{}={}", node.name, node.url()));
    }
    args
}

/// Starts a `sticky-proxy` in front of `nodes` (admin listener on, health
/// checks every 100 ms, lookups with [`TEST_ORIGIN`]), with `extra` flags,
/// and waits until it sees every node up.
pub async fn start_proxy(nodes: &[&Process], extra: &[&str]) -> Process {
    let mut args = proxy_args(nodes);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let proxy = Process::start("sticky-proxy", "proxy", &args, true).await;
    let want = nodes.len();
    let admin = proxy.admin_url();
    eventually(START_DEADLINE, "the proxy sees every node up", || async {
        let nodes: serde_json::Value = client()
            .get(format!("{admin}/nodes"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let up = nodes
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "up")
            .count();
        (up == want).then_some(())
    })
    .await;
    proxy
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after
/// `deadline` with `what`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A reqwest client with no connection reuse surprises and a short timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

// Helpers for programs that are not tests (the chaos soak, `src/bin/soak.rs`):
// they name the directory holding the binaries, choose the listen address
// (a restarted process keeps its port), and get errors instead of panics.

/// Path of the workspace binary `name` in `dir` (for a program that is not a
/// test, [`binary`]'s `target/<profile>/deps` guess does not hold).
pub fn binary_in(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
            path.display()
        ))
    }
}

impl Process {
    /// Like [`Process::start`], but runs the binary at `program`, listening
    /// on `listen` (for example a fixed `127.0.0.1:PORT`), and answers an
    /// error instead of panicking. With `lines`, every line the process logs
    /// is also sent there as it arrives (the channel closes when the process
    /// closes its stderr, that is, when it exits).
    pub async fn start_at(
        program: &Path,
        name: &str,
        args: &[String],
        listen: &str,
        want_admin: bool,
        lines: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<Process, String> {
        launch(Command::new(program), name, args, listen, want_admin, lines).await
    }
}

/// Spawns `command` with `args` plus `--listen listen`, and waits for its
/// `listening on ADDR` line(s): what every `Process` constructor does.
async fn launch(
    mut command: Command,
    name: &str,
    args: &[String],
    listen: &str,
    want_admin: bool,
    lines: Option<mpsc::UnboundedSender<String>>,
) -> Result<Process, String> {
    let program = format!("{:?}", command.as_std().get_program());
    let mut child = command
        .args(args)
        .args(["--listen", listen])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| format!("{name}: no stderr"))?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let log_writer = Arc::clone(&log);
    let label = name.to_owned();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if std::env::var_os("E2E_LOG").is_some() {
                eprintln!("[{label}] {line}");
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line.clone());
            }
            let _ = tx.send(line.clone());
            log_writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
    });

    let mut addr = None;
    let mut admin_addr = None;
    let wait = async {
        while let Some(line) = rx.recv().await {
            if let Some(a) = address_after(&line, "admin listening on ") {
                admin_addr = Some(a);
            } else if let Some(a) = address_after(&line, "listening on ") {
                addr = Some(a);
            }
            if addr.is_some() && (admin_addr.is_some() || !want_admin) {
                return true;
            }
        }
        false
    };
    let ready = tokio::time::timeout(START_DEADLINE, wait)
        .await
        .unwrap_or(false);
    let process = Process {
        name: name.to_owned(),
        addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        admin_addr,
        child,
        log,
    };
    if ready {
        Ok(process)
    } else {
        Err(format!(
            "{name} ({program}) did not start listening on {listen}:\n{}",
            process.log()
        ))
    }
}

/// [`agent_token`] minted by the `session-node` binary at `session_node`
/// with the suite's [`agent_key_file`].
pub fn agent_token_with(session_node: &Path, sub: &str, extra: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(session_node)
        .arg("agent-token")
        .arg("--key-file")
        .arg(agent_key_file())
        .args(["--sub", sub])
        .args(extra)
        .output()
        .map_err(|e| format!("run {} agent-token: {e}", session_node.display()))?;
    if !out.status.success() {
        return Err(format!(
            "agent-token: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Process {
    /// Like [`Process::start`], but runs the binary through `wrapper` (for
    /// instance `["prlimit", "--nofile=48:48", "--"]`, to start it with few
    /// file descriptors).
    pub async fn start_wrapped(
        wrapper: &[&str],
        bin: &str,
        name: &str,
        args: &[String],
        want_admin: bool,
    ) -> Process {
        let (program, wrapper_args) = wrapper.split_first().expect("a wrapper command");
        let mut command = Command::new(program);
        command.args(wrapper_args).arg(binary(bin));
        spawn_and_wait(command, bin, name, args, want_admin).await
    }
}

/// Spawns `command` (which runs `bin`) with `args` plus `--listen
/// 127.0.0.1:0`, and waits for its `listening on ADDR` line(s), as
/// [`Process::start`] does.
async fn spawn_and_wait(
    command: Command,
    bin: &str,
    name: &str,
    args: &[String],
    want_admin: bool,
) -> Process {
    launch(command, name, args, "127.0.0.1:0", want_admin, None)
        .await
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
}

/// The nodes a proxy's admin listener lists: name → state.
pub async fn proxy_node_states(proxy: &Process) -> HashMap<String, String> {
    let nodes: serde_json::Value = match client()
        .get(format!("{}/nodes", proxy.admin_url()))
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or(serde_json::Value::Null),
        Err(_) => serde_json::Value::Null,
    };
    nodes
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or_default().to_owned(),
                n["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
