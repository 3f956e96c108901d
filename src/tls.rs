//! TLS on the secure client port (`secureClientPort`), configured by ZooKeeper's `ssl.*` keys.
//! Key and trust stores are PEM files (ZooKeeper's `ssl.*.type=PEM`: the key store holds the
//! unencrypted private key and the certificate chain, the trust store the CA certificates that
//! client certificates must chain to), PKCS#12 (Java's default store type) or JKS files, with
//! the type taken from `ssl.*.type` or the file's extension, as ZooKeeper does.

use crate::config::{ClientAuth, TlsSettings};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{}: {1}", .0.display())]
    Read(PathBuf, std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The store's type: `ssl.*.type`, else guessed from the extension as ZooKeeper does.
fn store_type(path: &Path, declared: Option<&str>) -> String {
    if let Some(t) = declared {
        return t.to_ascii_uppercase();
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("jks") => "JKS".into(),
        Some("p12" | "pfx") => "PKCS12".into(),
        _ => "PEM".into(),
    }
}

fn read_store(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))
}

fn unsupported(path: &Path, t: &str, what: &str) -> TlsError {
    TlsError::Config(format!(
        "{what} {}: type {t} is not supported, only PEM, PKCS12 and JKS",
        path.display()
    ))
}

/// A Java KeyStore (JKS), its integrity checked with the store password.
fn jks(bytes: &[u8], path: &Path, password: Option<&str>) -> Result<jks::KeyStore, TlsError> {
    let mut store = jks::KeyStore::new();
    store
        .load(bytes, password.unwrap_or_default().as_bytes())
        .map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))?;
    Ok(store)
}

fn no_certificate(path: &Path) -> TlsError {
    TlsError::Config(format!("{}: no certificate in it", path.display()))
}

fn pkcs12(
    bytes: &[u8],
    path: &Path,
    password: Option<&str>,
) -> Result<p12_keystore::KeyStore, TlsError> {
    // Relaxed: a trust store made by openssl carries no Java "trusted" attribute.
    p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password.unwrap_or_default(),
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    if certs.is_empty() {
        return Err(no_certificate(path));
    }
    Ok(certs)
}

/// The key store's certificate chain and private key.
fn key_store(
    s: &TlsSettings,
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let bytes = read_store(path)?;
    match store_type(path, s.key_store_type.as_deref()).as_str() {
        "PEM" => {
            if bytes
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY")
            {
                return Err(TlsError::Config(format!(
                    "{}: encrypted private keys are not supported; store the key unencrypted",
                    path.display()
                )));
            }
            let chain = certificates(&bytes, path)?;
            let key = rustls_pemfile::private_key(&mut &bytes[..])
                .map_err(|e| TlsError::Read(path.to_path_buf(), e))?
                .ok_or_else(|| {
                    TlsError::Config(format!("{}: no private key in it", path.display()))
                })?;
            Ok((chain, key))
        }
        "PKCS12" => {
            let store = pkcs12(&bytes, path, s.key_store_password.as_deref())?;
            let (_, chain) = store.private_key_chain().ok_or_else(|| {
                TlsError::Config(format!("{}: no private key in it", path.display()))
            })?;
            let certs: Vec<CertificateDer<'static>> = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            if certs.is_empty() {
                return Err(no_certificate(path));
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
            Ok((certs, key))
        }
        "JKS" => {
            let password = s.key_store_password.as_deref();
            let store = jks(&bytes, path, password)?;
            let alias = store
                .aliases()
                .into_iter()
                .find(|a| store.is_private_key_entry(a))
                .ok_or_else(|| {
                    TlsError::Config(format!("{}: no private key in it", path.display()))
                })?;
            // The key is protected with the store's password, as ZooKeeper's X509Util reads it.
            let entry = store
                .get_private_key_entry(&alias, password.unwrap_or_default().as_bytes())
                .map_err(|e| TlsError::Config(format!("{}: {alias}: {e}", path.display())))?;
            let certs: Vec<CertificateDer<'static>> = entry
                .certificate_chain
                .into_iter()
                .map(|c| CertificateDer::from(c.content))
                .collect();
            if certs.is_empty() {
                return Err(no_certificate(path));
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.private_key));
            Ok((certs, key))
        }
        t => Err(unsupported(path, t, "keyStore")),
    }
}

/// The trust store's CA certificates.
fn trust_store(s: &TlsSettings, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_store(path)?;
    match store_type(path, s.trust_store_type.as_deref()).as_str() {
        "PEM" => certificates(&bytes, path),
        "PKCS12" => {
            let store = pkcs12(&bytes, path, s.trust_store_password.as_deref())?;
            let certs: Vec<CertificateDer<'static>> = store
                .entries()
                .filter_map(|(_, e)| match e {
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        Some(CertificateDer::from(c.as_der().to_vec()))
                    }
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(no_certificate(path));
            }
            Ok(certs)
        }
        "JKS" => {
            let store = jks(&bytes, path, s.trust_store_password.as_deref())?;
            let certs: Vec<CertificateDer<'static>> = store
                .aliases()
                .into_iter()
                .filter_map(|a| store.get_trusted_certificate_entry(&a).ok())
                .map(|e| CertificateDer::from(e.certificate.content))
                .collect();
            if certs.is_empty() {
                return Err(no_certificate(path));
            }
            Ok(certs)
        }
        t => Err(unsupported(path, t, "trustStore")),
    }
}

/// The acceptor for the secure client port.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots of the trust store at `path`.
fn roots(s: &TlsSettings, path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trust_store(s, path)? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

pub fn acceptor(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    let ks = s.key_store.as_deref().ok_or_else(|| {
        TlsError::Config(format!("{} needs {}.keyStore.location", s.user, s.prefix))
    })?;
    let (chain, key) = key_store(s, ks)?;
    // ring: a small C build. rustls 0.23.48 deprecates it for lacking post-quantum key
    // exchange, which ZooKeeper's Java clients do not offer anyway; aws-lc-rs would add a
    // long C build to every fresh CI run.
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (s.client_auth, s.trust_store.as_deref()) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, Some(ts)) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots(s, ts)?,
                provider,
            );
            let verifier = match auth {
                ClientAuth::Want => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(format!("trust store: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        (_, None) => {
            return Err(TlsError::Config(format!(
                "{p}.clientAuth need or want (need is the default) requires \
                 {p}.trustStore.location; or set {p}.clientAuth=none",
                p = s.prefix
            )))
        }
    };
    let cfg = builder.with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The dialing side of TLS between members (`sslQuorum`): our certificate from the key store,
/// the peer's checked against the trust store and, with `verify_names`
/// (`ssl.quorum.hostnameVerification`, on by default), against the host it is dialed at.
pub fn connector(s: &TlsSettings, verify_names: bool) -> Result<TlsConnector, TlsError> {
    let need = |what: &str| TlsError::Config(format!("{} needs {}.{what}", s.user, s.prefix));
    let ks = s
        .key_store
        .as_deref()
        .ok_or_else(|| need("keyStore.location"))?;
    let ts = s
        .trust_store
        .as_deref()
        .ok_or_else(|| need("trustStore.location"))?;
    let (chain, key) = key_store(s, ks)?;
    let provider = provider();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(s, ts)?,
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Config(format!("trust store: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let builder = if verify_names {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
    };
    let cfg = builder.with_client_auth_cert(chain, key)?;
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// The trust store's verdict on a peer's chain, whatever names its certificate holds
/// (`hostnameVerification=false`).
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// TLS between members: both ends of every election and quorum connection.
pub struct QuorumTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    /// `sslQuorum`: dial with TLS. Without it (port unification only), dial in the clear and
    /// accept both.
    pub dial: bool,
    /// `portUnification`: accept plain connections too (told apart by their first byte).
    pub unify: bool,
}

impl QuorumTls {
    /// From the `ssl.quorum.*` settings; None when neither `sslQuorum` nor
    /// `portUnification` asks for TLS.
    pub fn of(cfg: &crate::config::Config) -> Result<Option<Arc<QuorumTls>>, TlsError> {
        if !cfg.ssl_quorum && !cfg.port_unification {
            return Ok(None);
        }
        let s = &cfg.quorum_tls;
        Ok(Some(Arc::new(QuorumTls {
            acceptor: acceptor(s)?,
            connector: connector(s, cfg.quorum_hostname_verification)?,
            dial: cfg.ssl_quorum,
            unify: cfg.port_unification,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(key_store: Option<&str>) -> TlsSettings {
        TlsSettings {
            key_store: key_store.map(PathBuf::from),
            ..TlsSettings::default()
        }
    }

    fn config_error(s: &TlsSettings) -> String {
        match acceptor(s) {
            Err(TlsError::Config(m)) => m,
            Err(e) => panic!("expected a configuration error, got {e}"),
            Ok(_) => panic!("expected a configuration error, got an acceptor"),
        }
    }

    #[test]
    fn a_secure_port_needs_a_key_store() {
        assert!(config_error(&settings(None)).contains("ssl.keyStore.location"));
    }

    #[test]
    fn stores_that_are_not_what_they_say_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["keys.jks", "keys.p12"] {
            let f = dir.path().join(name);
            std::fs::write(&f, b"not a key store").unwrap();
            let msg = config_error(&settings(f.to_str()));
            assert!(msg.contains(name), "{msg}");
        }
        let f = dir.path().join("keys");
        std::fs::write(&f, b"x").unwrap();
        let mut s = settings(f.to_str());
        s.key_store_type = Some("BKS".into());
        assert!(config_error(&s).contains("type BKS"));
    }

    #[test]
    fn quorum_stores_are_named_by_their_keys() {
        let mut s = TlsSettings::quorum();
        let msg = match connector(&s, true) {
            Err(TlsError::Config(m)) => m,
            other => panic!("{:?}", other.map(|_| ())),
        };
        assert!(
            msg.contains("sslQuorum needs ssl.quorum.keyStore.location"),
            "{msg}"
        );
        s.key_store = Some(PathBuf::from("/k.pem"));
        let msg = match connector(&s, true) {
            Err(TlsError::Config(m)) => m,
            other => panic!("{:?}", other.map(|_| ())),
        };
        assert!(msg.contains("ssl.quorum.trustStore.location"), "{msg}");
        s.key_store = None;
        assert!(config_error(&s).contains("ssl.quorum.keyStore.location"));
    }

    #[test]
    fn unreadable_and_empty_stores_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let s = settings(missing.to_str());
        assert!(matches!(acceptor(&s), Err(TlsError::Read(p, _)) if p == missing));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        assert!(config_error(&settings(empty.to_str())).contains("no certificate"));
        let encrypted = dir.path().join("enc.pem");
        std::fs::write(
            &encrypted,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(config_error(&settings(encrypted.to_str())).contains("encrypted"));
    }
}
