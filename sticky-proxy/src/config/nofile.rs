//! The open-file limit, and the client-connection cap it allows.
//!
//! Sized like HAProxy's `maxconn`: every client connection may hold one
//! upstream connection, so each costs two descriptors; [`NOFILE_RESERVE`]
//! keeps headroom for what is not a client's (listeners, health checks,
//! owner lookups, the admin listener, the config file, logs). A proxy that
//! runs out of descriptors fails in the middle of requests (`EMFILE` on a
//! connect is a 503 to a client who did nothing wrong); one that stops
//! accepting at its cap only makes new clients wait in the backlog.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// Descriptors kept back from client connections and their upstreams.
pub const NOFILE_RESERVE: u64 = 256;

/// The limit assumed if `getrlimit` fails (it does not on Linux): the usual
/// default soft limit, so the cap errs on the small side.
const FALLBACK_NOFILE: u64 = 1024;

/// The soft `RLIMIT_NOFILE` of this process now.
pub fn nofile_soft_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(FALLBACK_NOFILE, |(soft, _)| soft)
}

/// The most client connections a soft limit of `nofile` descriptors allows:
/// `(nofile − reserve) / 2`, at least 1.
pub fn connection_cap(nofile: u64) -> usize {
    let cap = nofile.saturating_sub(NOFILE_RESERVE) / 2;
    usize::try_from(cap).unwrap_or(usize::MAX).max(1)
}

/// Best effort: raises the soft open-file limit to the hard limit, as
/// nginx's `worker_rlimit_nofile` and HAProxy do, so the default
/// `--max-connections` is as large as the system lets this process be. Call
/// it before building the [`Config`](super::Config), whose default reads the
/// limit. Returns the soft limit in effect afterwards.
pub fn raise_nofile_limit() -> u64 {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        // An unlimited hard limit cannot be the soft limit on Linux (it is
        // capped by `fs.nr_open`), so such a limit is left as it is.
        if soft < hard && hard != RLIM_INFINITY {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
    nofile_soft_limit()
}
