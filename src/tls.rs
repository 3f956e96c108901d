//! TLS on the secure client port (`secureClientPort`), configured by ZooKeeper's `ssl.*` keys.
//! Key and trust stores are PEM files, as ZooKeeper reads them with `ssl.keyStore.type=PEM`
//! (the key store holds the private key and the certificate chain, the trust store the CA
//! certificates that client certificates must chain to).

use crate::config::{ClientAuth, TlsSettings};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::TlsAcceptor;

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

fn read_pem(path: &Path, declared: Option<&str>, what: &str) -> Result<Vec<u8>, TlsError> {
    let t = store_type(path, declared);
    if t != "PEM" {
        return Err(TlsError::Config(format!(
            "{what} {}: type {t} is not supported, only PEM (convert it with openssl and set \
             ssl.{what}.type=PEM)",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    if certs.is_empty() {
        return Err(TlsError::Config(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The acceptor for the secure client port.
pub fn acceptor(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    let ks = s
        .key_store
        .as_deref()
        .ok_or_else(|| TlsError::Config("secureClientPort needs ssl.keyStore.location".into()))?;
    let pem = read_pem(ks, s.key_store_type.as_deref(), "keyStore")?;
    if pem
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
    {
        return Err(TlsError::Config(format!(
            "{}: encrypted private keys are not supported; store the key unencrypted",
            ks.display()
        )));
    }
    let chain = certificates(&pem, ks)?;
    let key = rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| TlsError::Read(ks.to_path_buf(), e))?
        .ok_or_else(|| TlsError::Config(format!("{}: no private key in it", ks.display())))?;
    // ring: a small C build. rustls 0.23.48 deprecates it for lacking post-quantum key
    // exchange, which ZooKeeper's Java clients do not offer anyway; aws-lc-rs would add a
    // long C build to every fresh CI run.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (s.client_auth, s.trust_store.as_deref()) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, Some(ts)) => {
            let pem = read_pem(ts, s.trust_store_type.as_deref(), "trustStore")?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(&pem, ts)? {
                roots.add(cert)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
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
            return Err(TlsError::Config(
                "ssl.clientAuth need or want (need is the default) requires \
                 ssl.trustStore.location; or set ssl.clientAuth=none"
                    .into(),
            ))
        }
    };
    let cfg = builder.with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
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
    fn only_pem_stores_are_read() {
        assert!(config_error(&settings(Some("/x/keys.jks"))).contains("type JKS"));
        assert!(config_error(&settings(Some("/x/keys.p12"))).contains("type PKCS12"));
        let mut s = settings(Some("/x/keys"));
        s.key_store_type = Some("jks".into());
        assert!(config_error(&s).contains("type JKS"));
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
