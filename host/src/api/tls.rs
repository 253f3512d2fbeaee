//! HTTPS: the certificate chain and private key (PEM files), loaded at
//! start and again on SIGHUP or when either file changes (polled), so a
//! renewed certificate takes effect without a restart. A pair that does not
//! load (a half-written renewal, a key that does not match) is logged and
//! the pair in service stays; the next change or signal tries again.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls::ServerConfig;

/// How often the files are checked for a change.
const POLL: Duration = Duration::from_secs(2);

/// Why a certificate pair does not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM object of its kind.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (for example a key that is not the
    /// certificate's).
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// The certificate pair in service, and where it comes from.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

/// What the files looked like when last loaded (modification time and
/// length of each).
type Seen = [(Option<SystemTime>, u64); 2];

fn seen(paths: [&Path; 2]) -> Seen {
    paths.map(|p| std::fs::metadata(p).map_or((None, 0), |m| (m.modified().ok(), m.len())))
}

/// Reads a certificate chain and its private key into a server
/// configuration (HTTP/1.1 by ALPN).
fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file = |path: &Path, reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file(cert, "no PEM certificate in it".into()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| file(key, format!("no private key: {e}")))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Tls {
    /// Loads the pair; an error says which file and why.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, TlsError> {
        let config = load(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(config),
        }))
    }

    /// The configuration new connections use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads the files again; the pair in service stays if they do not load.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// Reloads on SIGHUP and whenever either file changes, until the task
    /// is dropped.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let paths = [tls.cert.as_path(), tls.key.as_path()];
            let mut last = seen(paths);
            // The files as they were when they last failed to load: not
            // tried again until they change (or a signal asks).
            let mut failed: Option<Seen> = None;
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut every = tokio::time::interval(POLL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<Option<()>>();
                let forced = tokio::select! {
                    _ = signalled => true,
                    _ = every.tick() => false,
                };
                let now = seen(paths);
                if !forced && (now == last || failed == Some(now)) {
                    continue;
                }
                match tls.reload() {
                    Ok(()) => {
                        last = now;
                        failed = None;
                    }
                    // A half-written renewal: tried again when it changes.
                    Err(error) => {
                        failed = Some(now);
                        tracing::error!(%error, "TLS certificate not reloaded; the old one stays");
                    }
                }
            }
        })
    }
}
