//! A running host: the market behind the REST app on a TCP listener, with a
//! graceful stop that flushes the store. Used by `mercato serve` and tests.

use crate::api;
use crate::config::Config;
use crate::identity::AdminToken;
use crate::market::{self, Market};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why a host could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening the market failed.
    #[error(transparent)]
    Market(#[from] market::Error),
    /// Binding or serving failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS certificate or key does not load.
    #[error("TLS: {0}")]
    Tls(#[from] api::TlsError),
}

/// A host serving HTTP.
pub struct Server {
    addr: SocketAddr,
    /// `https` with a certificate, `http` without.
    scheme: &'static str,
    /// Reloads the certificate (when serving HTTPS).
    tls_watch: Option<JoinHandle<()>>,
    market: Arc<Market>,
    admin_token: AdminToken,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Opens the market and starts serving on `config.listen` (port 0 picks one).
    pub async fn start(config: Config) -> Result<Server, Error> {
        let listen = config.listen;
        // A certificate that does not load stops the start, before anything opens.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(api::Tls::load(cert, key)?),
            _ => None,
        };
        let (market, admin_token) = Market::open(config).await?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stopping = tokio_util::sync::CancellationToken::new();
        let app = api::app_until(market.clone(), stopping.clone());
        let config = market.config();
        let limits = api::ConnectionLimits {
            connections_max: config.connections_max,
            per_client_max: config.connections_per_client_max,
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            drain_timeout: Duration::from_millis(config.request_timeout_ms),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tls_watch = tls.as_ref().map(api::Tls::watch);
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            api::serve(listener, app, limits, tls, async move {
                let _ = signal.await;
                // End the agent front doors' open streams, or the
                // graceful stop would wait for them.
                stopping.cancel();
            })
            .await
        });
        tracing::info!(%addr, scheme, "mercato is serving");
        Ok(Server {
            addr,
            scheme,
            tls_watch,
            market,
            admin_token,
            shutdown,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, or `https://addr` when serving TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The market behind it.
    pub fn market(&self) -> &Arc<Market> {
        &self.market
    }

    /// How the admin token was settled (a generated one is shown only here).
    pub fn admin_token(&self) -> &AdminToken {
        &self.admin_token
    }

    /// Stops accepting, finishes requests in flight, flushes the store.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.shutdown.send(());
        if let Some(watch) = &self.tls_watch {
            watch.abort();
        }
        match self.task.await {
            Ok(served) => served?,
            Err(e) => tracing::error!(error = %e, "server task failed"),
        }
        self.market.close().await?;
        Ok(())
    }
}
