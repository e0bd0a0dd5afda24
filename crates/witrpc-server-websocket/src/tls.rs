//! TLS for `https://` endpoints (clients connect with `wss://`), via rustls with the
//! `ring` provider.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use witrpc_server::ServerError;

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub(crate) enum TlsMaterial {
    /// PEM files: the certificate chain (leaf first) and the private key.
    Pem { cert_chain: PathBuf, key: PathBuf },
    /// A ready rustls configuration (full control: ALPN, client auth, resumption...).
    Config(Arc<ServerConfig>),
}

fn tls_error(what: String, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ServerError {
    ServerError::Transport { what, source: source.into() }
}

impl TlsMaterial {
    /// Builds the rustls configuration (reads the PEM files).
    pub(crate) fn load(&self) -> Result<Arc<ServerConfig>, ServerError> {
        let (cert_chain, key) = match self {
            TlsMaterial::Config(c) => return Ok(c.clone()),
            TlsMaterial::Pem { cert_chain, key } => (cert_chain, key),
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_chain)
            .and_then(|iter| iter.collect::<Result<_, _>>())
            .map_err(|e| tls_error(format!("cannot read the certificate chain {}", cert_chain.display()), e))?;
        if certs.is_empty() {
            return Err(tls_error(
                format!("{} holds no PEM certificate", cert_chain.display()),
                "empty certificate chain",
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| tls_error(format!("cannot read the private key {}", key.display()), e))?;
        let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("cannot configure TLS".to_owned(), e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_error("the certificate and key do not form a usable pair".to_owned(), e))?;
        Ok(Arc::new(config))
    }
}
