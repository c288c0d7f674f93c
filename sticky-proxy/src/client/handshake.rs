//! The TLS handshake of a client connection on an https listener, in the
//! connection's own task (the accept loop never waits for a client),
//! bounded by `--header-timeout`. A client that speaks plain HTTP to the
//! TLS port gets a plain 400 and the close.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Why a TLS connection was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRefusal {
    /// Closed before sending a byte.
    Closed,
    /// Plain HTTP (or anything but a TLS handshake) on the TLS port:
    /// answered a plain 400.
    NotTls,
    /// Not complete within `--header-timeout`.
    Timeout,
    /// The handshake failed (no common version or cipher, an `h2`-only
    /// ALPN offer, a bad record…).
    Failed,
}

impl TlsRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRefusal::Closed => "closed before the handshake",
            TlsRefusal::NotTls => "plain HTTP on the TLS port; answered 400",
            TlsRefusal::Timeout => "TLS handshake not complete within --header-timeout",
            TlsRefusal::Failed => "TLS handshake failed",
        }
    }
}

/// The server side of a TLS handshake on a new connection, bounded by
/// `timeout`. A first byte that cannot begin a handshake (a plain HTTP
/// request line) is answered with a plain 400 rather than a TLS alert the
/// client could not read.
pub async fn tls_handshake(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, (TlsRefusal, Option<io::Error>)> {
    let deadline = Instant::now() + timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Err((TlsRefusal::Timeout, None)),
        Ok(Err(error)) => return Err((TlsRefusal::Failed, Some(error))),
        Ok(Ok(0)) => return Err((TlsRefusal::Closed, None)),
        Ok(Ok(_)) => {}
    }
    if !crate::tls::starts_handshake(first[0]) {
        super::answer_and_close(stream, crate::tls::plain_http_answer()).await;
        return Err((TlsRefusal::NotTls, None));
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Err(_) => Err((TlsRefusal::Timeout, None)),
        Ok(Err(error)) => Err((TlsRefusal::Failed, Some(error))),
        Ok(Ok(stream)) => Ok(stream),
    }
}
