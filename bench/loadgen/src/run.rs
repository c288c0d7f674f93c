//! What every binary needs around the load itself.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::{Read, Write};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// Errors are reported, not matched on: a boxed message is enough.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Prefixes an error with what was being done.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}").into())
    }
}

/// A multi-thread runtime with `threads` workers (the bench pins the
/// process to a core and asks for one).
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Raises the soft open-files limit to the hard limit, and warns on stderr if
/// `needed` descriptors still do not fit (the caller can `ulimit -n` first).
/// Returns the soft limit in force.
pub fn raise_open_files_limit(needed: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            eprintln!("warning: cannot read the open-files limit: {e}");
            return 0;
        }
    };
    let mut current = soft;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => current = hard,
            Err(e) => eprintln!("warning: cannot raise the open-files limit to {hard}: {e}"),
        }
    }
    // stdin/out/err, the runtime's own descriptors and some slack.
    if current < needed + 64 {
        eprintln!(
            "warning: open-files limit {current} (hard {hard}) is below the {needed} connections asked for; \
             raise it with `ulimit -n` before starting"
        );
    }
    current
}

/// Why a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    Elapsed,
    StdinClosed,
    Signal(&'static str),
}

impl Display for HoldEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoldEnd::Elapsed => f.write_str("hold elapsed"),
            HoldEnd::StdinClosed => f.write_str("stdin closed"),
            HoldEnd::Signal(name) => write!(f, "{name} received"),
        }
    }
}

/// Waits until `duration` elapses, stdin reaches end of file, or SIGTERM or
/// SIGINT arrives, whichever comes first.
///
/// Stdin is watched only when it is a pipe or a socket: a process started in
/// the background usually has `/dev/null` there, whose immediate end of file
/// would cut every hold short.
pub async fn hold(duration: Duration) -> HoldEnd {
    use tokio::signal::unix::{signal, SignalKind};
    let stdin_closed = watch_stdin();
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let on_term = async {
        match term.as_mut() {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    let on_int = async {
        match int.as_mut() {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    let on_stdin = async {
        match stdin_closed {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(duration) => HoldEnd::Elapsed,
        () = on_stdin => HoldEnd::StdinClosed,
        _ = on_term => HoldEnd::Signal("SIGTERM"),
        _ = on_int => HoldEnd::Signal("SIGINT"),
    }
}

/// A receiver that fires when stdin (a pipe or socket) reaches end of file;
/// `None` when stdin is anything else.
fn watch_stdin() -> Option<tokio::sync::oneshot::Receiver<()>> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata("/dev/stdin").ok()?.file_type();
    if !(kind.is_fifo() || kind.is_socket()) {
        return None;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 1024];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = tx.send(());
        })
        .ok()?;
    Some(rx)
}

/// Prints `value` as one JSON line on stdout and flushes, so an orchestrator
/// reading the pipe sees it at once.
pub fn print_json_line(value: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(value).context("encoding the result")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing the result")?;
    out.flush().context("flushing the result")?;
    Ok(())
}

/// A JSON number that prints a whole value without a fraction (`10`, not
/// `10.0`).
pub fn json_number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

/// The `{"opened":N,"ok":M,"failed":K}` line of the connection holders.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct OpenCounts {
    /// Connections whose TCP connect succeeded.
    pub opened: u64,
    /// Connections that also completed their exchange and are held.
    pub ok: u64,
    /// Attempts that did not end up held (connect, exchange or timeout).
    pub failed: u64,
}

/// Counts errors by message, to print the most frequent few.
#[derive(Debug, Default)]
pub struct ErrorTally {
    counts: HashMap<String, u64>,
}

impl ErrorTally {
    pub fn add(&mut self, error: impl Display) {
        self.add_count(error, 1);
    }

    /// Counts `error` `n` times (merging tallies).
    pub fn add_count(&mut self, error: impl Display, n: u64) {
        *self.counts.entry(error.to_string()).or_default() += n;
    }

    /// How many errors were counted, of every kind.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The `limit` most frequent errors, most frequent first.
    pub fn top(&self, limit: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self.counts.iter().map(|(e, n)| (e.as_str(), *n)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        all.truncate(limit);
        all
    }

    /// Prints the most frequent errors on stderr.
    pub fn report(&self, prefix: &str) {
        for (error, count) in self.top(5) {
            eprintln!("{prefix}: {count} × {error}");
        }
        if self.counts.len() > 5 {
            eprintln!("{prefix}: … and {} other kinds", self.counts.len() - 5);
        }
    }
}

/// What [`open_all`] got: the connections now held, the counts and the
/// errors of the attempts that failed.
#[derive(Debug)]
pub struct Opened<T> {
    pub held: Vec<T>,
    pub counts: OpenCounts,
    pub errors: ErrorTally,
}

/// One attempt: the held connection, or whether its TCP connect succeeded
/// and why it then failed.
pub type Attempt<T> = std::result::Result<T, (bool, String)>;

/// Opens `count` connections, at most `concurrency` attempts in flight,
/// reporting progress on stderr under `label`.
pub async fn open_all<T, F, Fut>(
    label: &str,
    count: usize,
    concurrency: usize,
    open: F,
) -> Result<Opened<T>>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Attempt<T>> + Send + 'static,
{
    let started = std::time::Instant::now();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = std::sync::Arc::clone(&permits)
            .acquire_owned()
            .await
            .context("concurrency limit")?;
        let attempt = open();
        attempts.spawn(async move {
            let attempt = attempt.await;
            drop(permit);
            attempt
        });
    }
    let mut opened = Opened {
        held: Vec::with_capacity(count),
        counts: OpenCounts::default(),
        errors: ErrorTally::default(),
    };
    while let Some(joined) = attempts.join_next().await {
        match joined {
            Ok(Ok(connection)) => {
                opened.counts.opened += 1;
                opened.counts.ok += 1;
                opened.held.push(connection);
            }
            Ok(Err((connected, error))) => {
                opened.counts.opened += u64::from(connected);
                opened.counts.failed += 1;
                opened.errors.add(error);
            }
            Err(e) => {
                opened.counts.failed += 1;
                opened.errors.add(format_args!("task: {e}"));
            }
        }
        let done = opened.counts.ok + opened.counts.failed;
        if done % 1000 == 0 {
            eprintln!("{label}: {done}/{count} attempted");
        }
    }
    eprintln!(
        "{label}: {} held, {} failed, in {:.1}s",
        opened.counts.ok,
        opened.counts.failed,
        started.elapsed().as_secs_f64()
    );
    opened.errors.report(&format!("{label}: failed"));
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_print_without_fraction() {
        assert_eq!(json_number(10.0).to_string(), "10");
        assert_eq!(json_number(2.5).to_string(), "2.5");
    }

    #[test]
    fn tally_orders_by_frequency() {
        let mut tally = ErrorTally::default();
        tally.add("b");
        tally.add("a");
        tally.add("a");
        assert_eq!(tally.top(5), vec![("a", 2), ("b", 1)]);
    }

    #[test]
    fn context_prefixes() {
        let r: std::result::Result<(), &str> = Err("boom");
        assert_eq!(r.context("step").unwrap_err().to_string(), "step: boom");
    }
}
