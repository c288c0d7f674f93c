//! The node side of a forwarded request: each node's pool of keep-alive
//! connections ([`pool`]), one request–answer exchange on them with its
//! resend rules ([`exchange`]), and the answer's way back to the client or
//! into a WebSocket tunnel ([`relay`]).
//!
//! Nothing here knows about routing or membership: a caller hands in the
//! pool of the node it chose and gets an answer or a [`ForwardFailure`].

pub mod exchange;
pub mod pool;
pub mod relay;

/// How a forward failed before an answer head reached the client (see
/// [`exchange`] for how each is decided).
#[derive(Debug)]
pub enum ForwardFailure {
    /// The node refused a connection or did not accept one within
    /// `--connect-timeout` (also: a connection broke under a request that
    /// went out, and the node then refused a fresh one). A strike against
    /// the node ([`crate::passive`]).
    Connect,
    /// The proxy's own resources ran out (file descriptors, ports): nothing
    /// was sent, and it says nothing about the node.
    Local,
    /// `--max-conns-per-node` connections are open and the short queue is
    /// full or timed out: nothing was sent.
    Busy,
    /// The response head did not arrive in time.
    Timeout,
    /// Any other failure before a response head (a connection that broke
    /// though the node still accepts new ones, a malformed answer…).
    Other,
    /// The client, not the node: its body broke its framing, went over
    /// `--max-body-size`, or the client went away.
    Client(ClientFault),
}

/// What the client did wrong while its body was being passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// Invalid chunked framing: 400, then close.
    Malformed,
    /// Over `--max-body-size`: 413, then close.
    TooLarge,
    /// The client closed or broke its connection mid-body: nobody to answer.
    Gone,
}

/// What a failed exchange tells the node's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incident {
    /// A kept-alive connection broke and the request was sent again.
    Resent,
    /// A connection broke under a request that could not be sent again.
    Broken,
}
