//! What a client connection runs over: plain TCP, or TLS.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A client's byte stream.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Resolves when a read would make progress (bytes, the end, or an
    /// error), holding no buffer meanwhile where the stream allows it.
    fn ready(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

impl ClientStream for TcpStream {
    fn ready(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    /// Plaintext rustls already holds is ready at once; otherwise the
    /// socket's readability (rustls holds at most one record meanwhile).
    fn ready(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        let (tcp, tls) = self.get_ref();
        let pending = !tls.wants_read();
        async move {
            if pending {
                Ok(())
            } else {
                tcp.readable().await
            }
        }
    }
}
