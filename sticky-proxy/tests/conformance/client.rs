//! A raw client for the conformance suite: writes exact bytes, reads exact
//! answers, every read bounded by a deadline so a hang fails the row.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one read may wait before the row fails as a hang.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// One answer the proxy made itself, parsed.
#[derive(Debug)]
pub struct Parsed {
    pub status_line: String,
    /// Names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Parsed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("writing {:?}: {e}", String::from_utf8_lossy(bytes)))
    }

    pub async fn shutdown(&mut self) -> Result<(), String> {
        self.stream
            .shutdown()
            .await
            .map_err(|e| format!("shutting the write side: {e}"))
    }

    /// Reads more; Ok(false) at the end of the stream (a reset counts as
    /// the end: the proxy closed).
    async fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk)).await {
            Err(_) => Err(format!(
                "no byte within {DEADLINE:?}; have {:?}",
                String::from_utf8_lossy(&self.buf)
            )),
            Ok(Ok(0)) | Ok(Err(_)) => Ok(false),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }

    /// Reads exactly `want.len()` bytes and compares them with `want`.
    pub async fn expect_exact(&mut self, want: &[u8]) -> Result<(), String> {
        while self.buf.len() < want.len() {
            if !self.fill().await? {
                break;
            }
        }
        let n = want.len().min(self.buf.len());
        let got: Vec<u8> = self.buf.drain(..n).collect();
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "client got {:?}\n      wanted {:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want)
            ))
        }
    }

    /// Reads one answer framed by `Content-Length` (the proxy's own answers
    /// always are).
    pub async fn read_own(&mut self) -> Result<Parsed, String> {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if !self.fill().await? {
                return Err(format!(
                    "closed before an answer head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| format!("own answer without content-length: {head:?}"))?;
        while self.buf.len() < length {
            if !self.fill().await? {
                return Err(format!("closed inside the body of {head:?}"));
            }
        }
        let body = self.buf.drain(..length).collect();
        Ok(Parsed {
            status_line,
            headers,
            body,
        })
    }

    /// Reads until the proxy closes; Err if anything more arrives or it
    /// stays open past the deadline.
    pub async fn expect_closed(&mut self) -> Result<(), String> {
        while self.fill().await? {}
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "bytes after the last answer: {:?}",
                String::from_utf8_lossy(&self.buf)
            ))
        }
    }
}
