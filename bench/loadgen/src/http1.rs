//! Reading one HTTP/1.1 response off a stream: enough of the protocol for a
//! keep-alive exchange (status line, headers, then a `Content-Length` or
//! chunked body), so the connection is left at a message boundary; and
//! building the few requests the load generators send.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Result;

/// Longest head line (status line or header) accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;

/// What was read of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Body bytes (after de-chunking).
    pub body_len: u64,
    /// The connection stays usable: HTTP/1.1 without `Connection: close`, and
    /// the body was delimited (not read to the end of the connection).
    pub keep_alive: bool,
    /// The `Retry-After` header, if any (as sent).
    pub retry_after: Option<String>,
}

/// Builds a keep-alive `GET`.
pub fn get_request(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loadgen\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"
    )
}

/// Builds a keep-alive request with `headers` (name, value) and `body`
/// (`Content-Length` is added when there is one, or for a `POST`).
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loadgen\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// A small read buffer over the stream.
struct Reader<'a, R> {
    inner: &'a mut R,
    buf: Vec<u8>,
    start: usize,
    /// Where skipped body bytes go, when the caller wants the body.
    keep: Option<Vec<u8>>,
}

impl<R: AsyncRead + Unpin> Reader<'_, R> {
    /// Reads more; `Ok(false)` at end of stream.
    async fn more(&mut self) -> Result<bool> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let mut chunk = [0u8; 4096];
        let n = self.inner.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn more_or_fail(&mut self) -> Result<()> {
        if self.more().await? {
            Ok(())
        } else {
            Err("connection closed before the end of the response".into())
        }
    }

    /// The next line without its CRLF.
    async fn line(&mut self) -> Result<String> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(at) = pending.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&pending[..at]).into_owned();
                self.start += at + 2;
                return Ok(line);
            }
            if pending.len() > MAX_LINE {
                return Err("response line too long".into());
            }
            self.more_or_fail().await?;
        }
    }

    /// Skips `n` bytes.
    async fn skip(&mut self, mut n: u64) -> Result<()> {
        loop {
            let available = (self.buf.len() - self.start) as u64;
            let take = available.min(n) as usize;
            if let Some(keep) = self.keep.as_mut() {
                keep.extend_from_slice(&self.buf[self.start..self.start + take]);
            }
            if available >= n {
                self.start += take;
                return Ok(());
            }
            n -= available;
            self.start = self.buf.len();
            self.more_or_fail().await?;
        }
    }

    /// Skips everything up to the end of the stream; returns the count.
    async fn skip_to_end(&mut self) -> Result<u64> {
        let mut total = 0;
        loop {
            let pending = &self.buf[self.start..];
            total += pending.len() as u64;
            if let Some(keep) = self.keep.as_mut() {
                keep.extend_from_slice(pending);
            }
            self.start = self.buf.len();
            if !self.more().await? {
                return Ok(total);
            }
        }
    }
}

/// Reads one response. A `HEAD`-like answer without a body (1xx, 204, 304)
/// has length zero.
pub async fn read_response<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Response> {
    Ok(read(stream, false).await?.0)
}

/// Reads one response and returns its (de-chunked) body too.
pub async fn read_response_with_body<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<(Response, Vec<u8>)> {
    read(stream, true).await
}

async fn read<R: AsyncRead + Unpin>(
    stream: &mut R,
    keep_body: bool,
) -> Result<(Response, Vec<u8>)> {
    let mut r = Reader {
        inner: stream,
        buf: Vec::with_capacity(1024),
        start: 0,
        keep: keep_body.then(Vec::new),
    };
    let status_line = r.line().await?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 response: {status_line:?}").into());
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut retry_after = None;
    let mut headers = 0;
    loop {
        let line = r.line().await?;
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err("too many response headers".into());
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}").into());
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("retry-after") {
            retry_after = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let body_len = if (100..200).contains(&status) || status == 204 || status == 304 {
        0
    } else if chunked {
        let mut total = 0;
        loop {
            let size_line = r.line().await?;
            let size = size_line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !r.line().await?.is_empty() {}
                break;
            }
            r.skip(size).await?;
            if !r.line().await?.is_empty() {
                return Err("chunk not followed by CRLF".into());
            }
            total += size;
        }
        total
    } else if let Some(length) = content_length {
        r.skip(length).await?;
        length
    } else {
        // Delimited by the end of the connection: not reusable.
        keep_alive = false;
        r.skip_to_end().await?
    };
    let response = Response {
        status,
        body_len,
        keep_alive,
        retry_after,
    };
    Ok((response, r.keep.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &str) -> Result<Response> {
        let mut bytes = raw.as_bytes();
        read_response(&mut bytes).await
    }

    #[tokio::test]
    async fn sized_body() {
        let r = parse("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: x\r\n\r\nhello")
            .await
            .unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                body_len: 5,
                keep_alive: true,
                retry_after: None,
            }
        );
    }

    #[tokio::test]
    async fn body_and_retry_after_are_kept() {
        let raw = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 599\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut bytes = raw.as_bytes();
        let (r, body) = read_response_with_body(&mut bytes).await.unwrap();
        assert_eq!((r.status, r.retry_after.as_deref()), (429, Some("599")));
        assert_eq!(body, b"abcde");
        let mut bytes = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".as_bytes();
        assert_eq!(read_response_with_body(&mut bytes).await.unwrap().1, b"{}");
        let mut bytes = "HTTP/1.0 200 OK\r\n\r\nto the end".as_bytes();
        assert_eq!(
            read_response_with_body(&mut bytes).await.unwrap().1,
            b"to the end"
        );
    }

    #[tokio::test]
    async fn chunked_body_and_close() {
        let r = parse(
            "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body_len, r.keep_alive), (503, 5, false));
    }

    #[tokio::test]
    async fn unsized_body_is_not_keep_alive() {
        let r = parse("HTTP/1.1 200 OK\r\n\r\nabc").await.unwrap();
        assert_eq!((r.body_len, r.keep_alive), (3, false));
        let r = parse("HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
        assert_eq!((r.body_len, r.keep_alive), (0, true));
    }

    #[tokio::test]
    async fn truncated_and_garbage_fail() {
        assert!(parse("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc")
            .await
            .is_err());
        assert!(parse("SSH-2.0-OpenSSH\r\n\r\n").await.is_err());
        assert!(parse("").await.is_err());
    }

    #[test]
    fn requests_carry_headers_and_length() {
        let req = request(
            "POST",
            "/x",
            "h:1",
            &[("Content-Type", "application/json")],
            "{}",
        );
        assert_eq!(
            req,
            "POST /x HTTP/1.1\r\nHost: h:1\r\nUser-Agent: loadgen\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        assert!(request("GET", "/y", "h", &[], "").ends_with("loadgen\r\n\r\n"));
    }

    #[test]
    fn request_has_host_and_keep_alive() {
        let req = get_request("/cobrowse/health", "127.0.0.1:8700");
        assert!(req.starts_with("GET /cobrowse/health HTTP/1.1\r\nHost: 127.0.0.1:8700\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
    }
}
