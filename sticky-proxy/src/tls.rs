//! TLS termination for client connections (`--tls-cert`, `--tls-key`).
//!
//! [`Tls`] holds the server configuration built from a PEM certificate
//! chain and a PEM private key: rustls on the `ring` provider, TLS 1.3 and
//! 1.2, ALPN `http/1.1` only (the proxy speaks HTTP/1.1 to clients), and
//! session resumption on — a stateful cache of session IDs and, for
//! clients that take them, tickets (keys rotated by rustls every 6 hours).
//!
//! The configuration sits behind an `ArcSwap`: [`Tls::acceptor`] takes the
//! current one for a new connection (one `Arc` clone), [`Tls::reload`] reads
//! both files again and swaps in a new one. A connection keeps the
//! configuration it was accepted with, so open connections (kept-alive ones
//! and WebSocket tunnels) are untouched by a reload and only new ones see
//! the new certificate. A reload also starts a fresh resumption cache and
//! ticket key, so no session established under the old certificate is
//! resumed under the new one. A reload that fails changes nothing.
//!
//! Upstream connections to the nodes stay plain HTTP.
//!
//! Error messages name the file and what is wrong with it, never its
//! content: a key file's bytes must not reach a log.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use shared_types::error::{codes, ErrorBody};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::server::ServerSessionMemoryCache;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The only application protocol offered: a client that insists on `h2`
/// fails the handshake rather than speak HTTP/1.1 unannounced.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Sessions remembered for resumption by session ID (TLS 1.2 clients
/// without tickets). An entry is a few hundred bytes.
pub const SESSION_CACHE_SIZE: usize = 4096;

/// The first byte of a TLS record carrying a handshake message (every
/// ClientHello starts with it).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Certificate and key of the TLS listener, reloadable.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The paths only: the configuration holds the private key.
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate chain (leaf first) at `cert` and the private
    /// key (PKCS#8, PKCS#1 or SEC1) at `key`, and checks that they belong
    /// together.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let config = server_config(cert, key)?;
        Ok(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: ArcSwap::from_pointee(config),
        })
    }

    /// An acceptor with the current configuration, for one new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Reads both files again (on SIGHUP). New connections get the new
    /// certificate; open ones keep theirs. On error the current one stays
    /// and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.cert, &self.key)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let chain = read_chain(cert_path)?;
    let key = read_key(key_path)?;
    let provider = Arc::new(ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Rejected {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: error.to_string(),
        })?
        .with_no_client_auth()
        // Also checks that the key is the certificate's.
        .with_single_cert(chain, key)
        .map_err(|error| TlsError::Rejected {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: error.to_string(),
        })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    config.ticketer = ring::Ticketer::new().map_err(|error| TlsError::Rejected {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: format!("cannot make a session ticket key: {error}"),
    })?;
    Ok(config)
}

fn read(path: &Path, what: FileKind) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_owned(),
        error,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, FileKind::Certificate)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            what: FileKind::Certificate,
            path: path.to_owned(),
            problem: pem_problem(&error),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Missing {
            what: FileKind::Certificate,
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, FileKind::Key)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::Missing {
            what: FileKind::Key,
            path: path.to_owned(),
        },
        other => TlsError::Pem {
            what: FileKind::Key,
            path: path.to_owned(),
            problem: pem_problem(&other),
        },
    })
}

/// What is wrong with a PEM file, without quoting it (some variants of
/// `pem::Error` carry the offending line).
fn pem_problem(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        pem::Error::NoItemsFound => "no PEM section of the expected kind",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        _ => "not a valid PEM file",
    }
}

/// Which of the two files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Certificate,
    Key,
}

impl FileKind {
    fn flag(self) -> &'static str {
        match self {
            FileKind::Certificate => "--tls-cert",
            FileKind::Key => "--tls-key",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            FileKind::Certificate => "certificate",
            FileKind::Key => "private key",
        }
    }
}

/// Why a certificate and key could not be (re)loaded. The messages name
/// the file, never its content.
#[derive(Debug)]
pub enum TlsError {
    /// The file cannot be read.
    Read {
        what: FileKind,
        path: PathBuf,
        error: io::Error,
    },
    /// The file is not valid PEM.
    Pem {
        what: FileKind,
        path: PathBuf,
        problem: &'static str,
    },
    /// The file has no certificate (or no private key) in it.
    Missing { what: FileKind, path: PathBuf },
    /// rustls refused the pair: the key is not the certificate's, the
    /// certificate cannot be parsed, the key type is unsupported…
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { what, path, error } => write!(
                f,
                "{} {}: cannot read the {}: {error}",
                what.flag(),
                path.display(),
                what.noun()
            ),
            TlsError::Pem {
                what,
                path,
                problem,
            } => write!(f, "{} {}: {problem}", what.flag(), path.display()),
            TlsError::Missing { what, path } => write!(
                f,
                "{} {}: no PEM {} found in the file",
                what.flag(),
                path.display(),
                what.noun()
            ),
            TlsError::Rejected { cert, key, reason } => write!(
                f,
                "--tls-cert {} with --tls-key {}: {reason}",
                cert.display(),
                key.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Whether the first byte a client sent can begin a TLS handshake. Anything
/// else on the TLS port (typically a plain HTTP request line) is answered
/// [`plain_http_answer`] instead of a TLS alert the client cannot read.
pub fn starts_handshake(first: u8) -> bool {
    first == TLS_HANDSHAKE_RECORD
}

/// The whole answer to a plain HTTP request on the TLS port: a minimal
/// HTTP/1.1 400 with the JSON error body, in clear (as nginx does), then the
/// connection closes.
pub fn plain_http_answer() -> &'static [u8] {
    static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(|| {
        let body = serde_json::to_vec(&ErrorBody::new(
            codes::BAD_REQUEST,
            "this port speaks HTTPS: a plain HTTP request was sent to it",
        ))
        .unwrap_or_default();
        let mut answer = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        answer
    })
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
