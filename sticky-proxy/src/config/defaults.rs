//! Default values and bounds that other modules (or the table in
//! `settings.rs`) name. A default only the table uses may as well be written
//! there inline.

use std::net::SocketAddr;
use std::time::Duration;

use access::Budget;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 2;
pub const DEFAULT_LOOKUP_CACHE_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_LOOKUP_CACHE_SIZE: u64 = 100_000;
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(90);
pub const DEFAULT_MAX_HEAD_SIZE: usize = 64 * 1024;
/// `--max-body-size`: a request body above it is answered 413 by the proxy.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024;
/// `--max-headers`: nginx and hyper stop at 100 too.
pub const DEFAULT_MAX_HEADERS: usize = 100;
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_AGENT_TOKEN_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// `--probe-budget`: misses (401, 403, 404, 410 to a token-revealing
/// request) per client before 429 `too_many_attempts`.
pub const DEFAULT_PROBE_BUDGET: Budget = Budget {
    limit: 20,
    window: Duration::from_secs(600),
};
/// `--create-budget`: Create Session requests per client.
pub const DEFAULT_CREATE_BUDGET: Budget = Budget {
    limit: 60,
    window: Duration::from_secs(60),
};
pub const DEFAULT_LIMITER_CAPACITY: u64 = 1_000_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: u32 = 256;
/// `--retire-timeout`: how long a node removed by a reload keeps serving
/// its bound requests at most.
pub const DEFAULT_RETIRE_TIMEOUT: Duration = Duration::from_secs(600);
/// `--max-conns-per-node`: no cap on open connections by default (a held
/// long-poll holds one for its whole hold); the node's backlog is protected
/// by the limit on connects in progress (`pool::MAX_DIALS`).
pub const DEFAULT_MAX_CONNS_PER_NODE: u32 = 0;
/// `--cometd-peek-limit`: how much of a CometD POST body is read ahead for
/// its `clientId`. As much as a node accepts in one batch: the CometD JS
/// client writes `clientId` after `data`, so a cookie-less publish of a large
/// page snapshot has it near the end, and must still find its node. Only
/// what comes before the `clientId` is held, and only for CometD POSTs.
pub const DEFAULT_COMETD_PEEK_LIMIT: usize = 256 * 1024;
/// Smallest accepted `--max-head-size`: below this even ordinary browser
/// requests would be refused.
pub const MIN_MAX_HEAD_SIZE: usize = 1024;
/// Bounds of `--cometd-peek-limit`: below the smallest connect message, or
/// above the largest batch a node accepts (256 KiB), it makes no sense.
pub const MIN_COMETD_PEEK_LIMIT: usize = 256;
pub const MAX_COMETD_PEEK_LIMIT: usize = 256 * 1024;
/// Bounds of `--max-headers`: a request needs `Host`; more than 1000 lines
/// is an attack on the parser, not a browser.
pub const MIN_MAX_HEADERS: usize = 1;
pub const MAX_MAX_HEADERS: usize = 1000;

pub(super) fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8700))
}

pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
