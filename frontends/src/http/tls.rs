//! TLS for the HTTP front end (rustls with the ring provider).
//!
//! [`Tls`] holds the certificate and key files' paths and the pair in use.
//! The rustls `ServerConfig` is built once, with [`Tls`]'s resolver as its
//! only source of certificates, so a reload swaps one `Arc<CertifiedKey>`:
//! handshakes that start afterwards present the new certificate, those in
//! flight finish with the old one, and a new pair that does not load leaves
//! the old one in place. ALPN offers `h2` and `http/1.1`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// ALPN's name for HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// Why a certificate and key pair could not be used. Each message names the
/// flag and the file, so an operator knows which one to fix.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read or is not PEM.
    Read {
        flag: &'static str,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    NoCertificate { path: PathBuf },
    /// The key file holds no private key (PKCS#8, PKCS#1 or SEC1).
    NoKey { path: PathBuf },
    /// The key is of a kind the provider cannot sign with.
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    /// The key is not the one the certificate was issued for.
    Mismatch { cert: PathBuf, key: PathBuf },
    /// rustls refused the configuration (no usable protocol version).
    Config(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { flag, path, source } => {
                write!(f, "{flag} {}: cannot read: {}", path.display(), pem_reason(source))
            }
            TlsError::NoCertificate { path } => write!(
                f,
                "--tls-cert {}: no certificate in it (expected a PEM block `-----BEGIN CERTIFICATE-----`)",
                path.display()
            ),
            TlsError::NoKey { path } => write!(
                f,
                "--tls-key {}: no private key in it (expected a PEM block `-----BEGIN PRIVATE KEY-----`, RSA or EC)",
                path.display()
            ),
            TlsError::BadKey { path, source } => {
                write!(f, "--tls-key {}: unusable key: {source}", path.display())
            }
            TlsError::Mismatch { cert, key } => write!(
                f,
                "--tls-key {} does not match the certificate in --tls-cert {}",
                key.display(),
                cert.display()
            ),
            TlsError::Config(e) => write!(f, "cannot configure TLS: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Its reason is already in the message (see `pem_reason`).
            TlsError::Read { .. } => None,
            TlsError::BadKey { source, .. } | TlsError::Config(source) => Some(source),
            _ => None,
        }
    }
}

/// The I/O error's own words ("No such file or directory") rather than
/// pki-types' debug wrapping of it.
fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not valid PEM ({other:?})"),
    }
}

/// A certificate and key, reloadable, and the TLS configuration serving it.
pub struct Tls {
    /// `--tls-cert`: the certificate chain, leaf first.
    cert_path: PathBuf,
    /// `--tls-key`: the leaf's private key.
    key_path: PathBuf,
    /// Where handshakes take the pair from; [`Tls::reload`] swaps it.
    resolver: Arc<Resolver>,
    /// Built once; shared by every handshake.
    config: Arc<ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the pair, checking that the key belongs to the certificate.
    ///
    /// Errors: a file missing or unreadable, no certificate or key in it,
    /// a key rustls cannot sign with, or a key that does not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(&provider, cert, key)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(Arc::new(pair)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            resolver,
            config: Arc::new(config),
        })
    }

    /// Reads both files again and, if they make a valid pair, serves it to
    /// new connections. On error the pair in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(
            self.config.crypto_provider(),
            &self.cert_path,
            &self.key_path,
        )?;
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// The certificate file's path, for log lines.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

fn load_pair(provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    fn read(
        flag: &'static str,
        path: &Path,
    ) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError {
        let path = path.to_path_buf();
        move |source| TlsError::Read { flag, path, source }
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(read("--tls-cert", cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read("--tls-cert", cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let der = match PrivateKeyDer::from_pem_file(key) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key.to_path_buf(),
            })
        }
        Err(e) => return Err(read("--tls-key", key)(e)),
    };
    let signer = provider
        .key_provider
        .load_private_key(der)
        .map_err(|source| TlsError::BadKey {
            path: key.to_path_buf(),
            source,
        })?;
    let pair = CertifiedKey::new(chain, signer);
    match pair.keys_match() {
        // `Unknown`: the key cannot tell its public half (rare key kinds);
        // the handshake's own signature check is then the only check.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(pair)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
        Err(e) => Err(TlsError::BadKey {
            path: key.to_path_buf(),
            source: e,
        }),
    }
}

/// Hands every handshake the pair in use, whatever name the client asked
/// for: hashd serves one certificate.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
