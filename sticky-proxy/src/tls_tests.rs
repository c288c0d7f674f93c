//! [`Tls`] against a real rustls client over an in-memory pipe, with
//! certificates made by rcgen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore};
use tokio_rustls::TlsConnector;

use super::*;

/// A fresh directory under the system temp dir.
fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sticky-proxy-tls-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for `localhost` named `cn`, written as
/// `<cn>.pem` / `<cn>.key`; returns (cert path, key path, cert DER).
fn self_signed(dir: &Path, cn: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join(format!("{cn}.pem"));
    let key_path = dir.join(format!("{cn}.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path, cert.der().clone())
}

/// A client that trusts exactly `roots`, limited to `versions`.
fn client_config(
    roots: &[&CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One handshake through `acceptor`; the server sends a byte the client
/// reads, so TLS 1.3 tickets sent after the handshake reach the client.
async fn connect(
    acceptor: TlsAcceptor,
    client: Arc<ClientConfig>,
) -> Result<TlsStream<tokio::io::DuplexStream>, std::io::Error> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = async move {
        let mut stream = acceptor.accept(server_io).await?;
        stream.write_all(b"!").await?;
        stream.flush().await?;
        Ok::<_, std::io::Error>(stream)
    };
    let name = ServerName::try_from("localhost").unwrap();
    let client = async move {
        let mut stream = TlsConnector::from(client).connect(name, client_io).await?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        Ok::<_, std::io::Error>(stream)
    };
    let (server, client) = tokio::join!(server, client);
    let _server = server?;
    client
}

fn leaf(stream: &TlsStream<tokio::io::DuplexStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn serves_tls_13_and_12_with_alpn_http11() {
    let dir = scratch();
    let (cert, key, der) = self_signed(&dir, "one");
    let tls = Tls::load(&cert, &key).unwrap();
    for (version, want) in [
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let stream = connect(tls.acceptor(), client_config(&[&der], &[version]))
            .await
            .unwrap();
        let (_, conn) = stream.get_ref();
        assert_eq!(conn.protocol_version(), Some(want));
        assert_eq!(conn.alpn_protocol(), Some(ALPN_HTTP11), "{want:?}");
        assert_eq!(leaf(&stream), der);
    }
}

#[tokio::test]
async fn a_client_that_offers_only_h2_is_refused() {
    let dir = scratch();
    let (cert, key, der) = self_signed(&dir, "one");
    let tls = Tls::load(&cert, &key).unwrap();
    let mut config = (*client_config(&[&der], &[&rustls::version::TLS13])).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    assert!(connect(tls.acceptor(), Arc::new(config)).await.is_err());
}

#[tokio::test]
async fn sessions_resume_on_both_versions() {
    let dir = scratch();
    let (cert, key, der) = self_signed(&dir, "one");
    let tls = Tls::load(&cert, &key).unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = client_config(&[&der], &[version]);
        let first = connect(tls.acceptor(), client.clone()).await.unwrap();
        assert_eq!(
            first.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Full)
        );
        let second = connect(tls.acceptor(), client).await.unwrap();
        assert_eq!(
            second.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections_only() {
    let dir = scratch();
    let (cert, key, old) = self_signed(&dir, "old");
    let (new_cert, new_key, new) = self_signed(&dir, "new");
    let tls = Tls::load(&cert, &key).unwrap();
    let client = client_config(&[&old, &new], &[&rustls::version::TLS13]);
    let before = tls.acceptor();

    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    tls.reload().unwrap();

    let fresh = connect(tls.acceptor(), client.clone()).await.unwrap();
    assert_eq!(
        leaf(&fresh),
        new,
        "a new connection sees the new certificate"
    );
    assert_eq!(
        fresh.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full),
        "nothing from before the reload is resumed"
    );
    // An acceptor taken before the reload (a connection accepted then)
    // still completes with the old certificate.
    let earlier = connect(before, client).await.unwrap();
    assert_eq!(leaf(&earlier), old);
}

#[tokio::test]
async fn a_failed_reload_keeps_the_current_certificate() {
    let dir = scratch();
    let (cert, key, der) = self_signed(&dir, "one");
    let tls = Tls::load(&cert, &key).unwrap();
    std::fs::write(&cert, "not a certificate").unwrap();
    let error = tls.reload().unwrap_err();
    assert!(
        error.to_string().contains(&cert.display().to_string()),
        "{error}"
    );
    let stream = connect(
        tls.acceptor(),
        client_config(&[&der], &[&rustls::version::TLS13]),
    )
    .await
    .unwrap();
    assert_eq!(leaf(&stream), der);
}

#[test]
fn load_errors_name_the_file_and_never_quote_it() {
    let dir = scratch();
    let (cert, key, _) = self_signed(&dir, "one");
    let (_, other_key, _) = self_signed(&dir, "two");
    let key_text = std::fs::read_to_string(&key).unwrap();
    let missing = dir.join("absent.pem");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    // A key file whose base64 is broken: the message must not echo it.
    let broken_key = dir.join("broken.key");
    std::fs::write(
        &broken_key,
        key_text.replacen("\n", "\n#SECRET-MATERIAL#", 2),
    )
    .unwrap();
    let truncated_key = dir.join("truncated.key");
    std::fs::write(&truncated_key, &key_text[..key_text.len() / 2]).unwrap();

    let cases: &[(&str, &Path, &Path, &Path, &str)] = &[
        // (case, cert, key, file named, words in the message)
        (
            "no cert file",
            &missing,
            &key,
            &missing,
            "cannot read the certificate",
        ),
        (
            "no key file",
            &cert,
            &missing,
            &missing,
            "cannot read the private key",
        ),
        ("empty cert", &empty, &key, &empty, "no PEM certificate"),
        ("key given as cert", &key, &key, &key, "no PEM certificate"),
        (
            "cert given as key",
            &cert,
            &cert,
            &cert,
            "no PEM private key",
        ),
        ("broken key", &cert, &broken_key, &broken_key, "--tls-key"),
        (
            "truncated key",
            &cert,
            &truncated_key,
            &truncated_key,
            "--tls-key",
        ),
        (
            "key of another cert",
            &cert,
            &other_key,
            &other_key,
            "--tls-key",
        ),
    ];
    for (case, cert, key, named, words) in cases {
        let error = Tls::load(cert, key).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&named.display().to_string()),
            "{case}: {message}"
        );
        assert!(message.contains(words), "{case}: {message}");
        assert!(!message.contains("SECRET"), "{case}: {message}");
        assert!(!message.contains("PRIVATE KEY-----"), "{case}: {message}");
        for line in key_text.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!message.contains(line), "{case}: key material in {message}");
        }
    }
}

#[test]
fn debug_shows_paths_only() {
    let dir = scratch();
    let (cert, key, _) = self_signed(&dir, "one");
    let shown = format!("{:?}", Tls::load(&cert, &key).unwrap());
    assert!(
        shown.contains("one.pem") && shown.contains("one.key"),
        "{shown}"
    );
    assert!(!shown.contains("PRIVATE"), "{shown}");
    assert!(shown.len() < 400, "{shown}");
}

#[test]
fn only_a_handshake_record_starts_tls() {
    for (first, tls) in [
        (0x16u8, true),
        (b'G', false),
        (b'P', false),
        (0x80, false),
        (0x15, false),
        (0, false),
    ] {
        assert_eq!(starts_handshake(first), tls, "{first:#x}");
    }
    let answer = std::str::from_utf8(plain_http_answer()).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("content-length: {}", body.len())));
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"], "bad_request", "{body}");
}
