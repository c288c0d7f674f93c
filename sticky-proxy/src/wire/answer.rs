//! The proxy's own answers as bytes: a [`ProxyError`] as its JSON body, or
//! a bare status (`/health`, 431).

use http::StatusCode;
use shared_types::error::ErrorBody;

use crate::errors::ProxyError;

/// Appends a whole answer: status line, `content-type` and
/// `content-length` for a body, `retry-after` when given, `connection:
/// close` when the proxy closes after it.
pub fn write(
    out: &mut Vec<u8>,
    status: StatusCode,
    json: Option<&[u8]>,
    retry_after: Option<u64>,
    close: bool,
) {
    use std::io::Write as _;
    let reason = status.canonical_reason().unwrap_or("");
    let body = json.unwrap_or_default();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", status.as_u16());
    if json.is_some() {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    let _ = write!(out, "content-length: {}\r\n", body.len());
    if let Some(secs) = retry_after {
        let _ = write!(out, "retry-after: {secs}\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends the JSON answer for `error`.
pub fn error(out: &mut Vec<u8>, error: &ProxyError, close: bool) {
    let body =
        serde_json::to_vec(&ErrorBody::new(error.code(), error.message())).unwrap_or_default();
    write(out, error.status(), Some(&body), error.retry_after(), close);
}

/// Appends a bodiless answer.
pub fn empty(out: &mut Vec<u8>, status: StatusCode, close: bool) {
    write(out, status, None, None, close);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_whole_http_messages() {
        let mut out = Vec::new();
        error(&mut out, &ProxyError::TooManyAttempts(7), false);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(head.contains("retry-after: 7"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let parsed: ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.error, "too_many_attempts");

        let mut out = Vec::new();
        empty(&mut out, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, true);
        assert_eq!(
            out,
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }
}
