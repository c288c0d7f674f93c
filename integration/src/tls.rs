//! Certificates for development and tests, made with `rcgen`: a
//! self-signed one for `make run-tls` (`dev-cert`), and a throwaway CA that
//! issues several server certificates, so that a client trusting the CA
//! accepts each of them (a certificate rotation in `tests/tls.rs`).
//!
//! Key files are written readable by their owner only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tokio_rustls::rustls;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files of one certificate: PEM chain (leaf first) and PEM key.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The leaf certificate, DER, to compare with what a server presents.
    pub der: Vec<u8>,
}

fn io_error(error: rcgen::Error) -> io::Error {
    io::Error::other(error.to_string())
}

fn server_params(names: &[&str], common_name: &str) -> io::Result<CertificateParams> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .map_err(io_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn write_pair(
    dir: &Path,
    stem: &str,
    chain_pem: &str,
    key: &KeyPair,
) -> io::Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(dir)?;
    let cert = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    fs::write(&cert, chain_pem)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    Ok((cert, key_path))
}

/// Writes `bytes` to `path`, readable by the owner only (created so, not
/// narrowed afterwards).
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// A self-signed server certificate for `names` (DNS names or IP
/// addresses), written to `dir/cert.pem` and `dir/key.pem`. A client
/// trusts it with the certificate itself as its CA file
/// (`curl --cacert dir/cert.pem`).
pub fn self_signed(dir: &Path, names: &[&str]) -> io::Result<CertFiles> {
    let key = KeyPair::generate().map_err(io_error)?;
    let cert = server_params(names, "sticky-proxy development")?
        .self_signed(&key)
        .map_err(io_error)?;
    fs::create_dir_all(dir)?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    Ok(CertFiles {
        cert: cert_path,
        key: key_path,
        der: cert.der().to_vec(),
    })
}

/// A throwaway certificate authority for tests.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> io::Result<TestCa> {
        let key = KeyPair::generate().map_err(io_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(io_error)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(io_error)?;
        Ok(TestCa {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM (what a client trusts).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        fs::write(path, &self.pem)
    }

    /// A server certificate for `names` with subject `common_name`, signed
    /// by this CA, written to `dir/<stem>.pem` (leaf, then the CA) and
    /// `dir/<stem>.key`. Each has a fresh key, hence its own serial.
    pub fn issue(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        common_name: &str,
    ) -> io::Result<CertFiles> {
        let key = KeyPair::generate().map_err(io_error)?;
        let leaf = server_params(names, common_name)?
            .signed_by(&key, &self.issuer)
            .map_err(io_error)?;
        let chain = format!("{}{}", leaf.pem(), self.pem);
        let (cert, key_path) = write_pair(dir, stem, &chain, &key)?;
        Ok(CertFiles {
            cert,
            key: key_path,
            der: leaf.der().to_vec(),
        })
    }
}

/// A reqwest client for `https://` URLs that trusts `ca` only, reports the
/// server's certificate (`tls_info`) and keeps connections alive as usual.
pub fn https_client(ca: &TestCa) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA certificate");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .tls_info(true)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("https client")
}

/// The leaf certificate (DER) the server presented on `response`'s
/// connection.
pub fn served_certificate(response: &reqwest::Response) -> Option<Vec<u8>> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()
        .map(<[u8]>::to_vec)
}

/// A rustls client configuration that trusts `ca` only, limited to
/// `versions`, offering ALPN `alpn`.
pub fn client_config(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(ca.der().to_vec()))
        .expect("CA as root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

/// A TLS connection to `addr` (verified as the IP address it is), for raw
/// HTTP or a WebSocket (`tokio_tungstenite::client_async`).
pub async fn connect(
    addr: std::net::SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}
