//! The hyper client of the proxy's own requests to nodes: health checks
//! ([`crate::health`]) and owner lookups ([`crate::lookup`]). They are few
//! (a probe per node per interval, a lookup per cold session), so they keep
//! hyper-util's pooled client; forwarded requests take the proxy's own
//! HTTP/1 path ([`crate::upstream`]).

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Body of a control request: always empty.
pub type UpstreamBody = Empty<Bytes>;

/// The client for health checks and owner lookups.
pub type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// Builds the client: TCP_NODELAY (small request/response exchanges must
/// not wait for Nagle) and a short connect timeout so a dead node is
/// noticed in about a second, not after the OS's minutes.
pub fn upstream_client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Whether an error chain holds a local resource error (the proxy out of
/// file descriptors or sockets), as opposed to anything about the peer.
pub(crate) fn is_local(error: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            if crate::upstream::pool::is_local_error(io_error) {
                return true;
            }
        }
        current = error.source();
    }
    false
}

/// Displays an error with its sources.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
