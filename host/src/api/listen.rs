//! The connection loop: accepts TCP connections and serves the application
//! on each with hyper's HTTP/1.1, under the limits `axum::serve` sets none of.
//!
//! - `TCP_NODELAY` on every connection. A response written in pieces (the
//!   head, then a streamed body and its last chunk) would otherwise wait for
//!   the client's delayed ACK, about 40 ms, on every keep-alive request.
//! - A cap on open connections, in total and per client address: beyond it
//!   a connection is closed at once, so descriptors and memory stay bounded
//!   and one client cannot take every slot from the others.
//! - A header-read timeout that also bounds how long a keep-alive connection
//!   may sit idle between requests (hyper starts it whenever it waits for a
//!   request head), so slow or silent clients are closed.
//!
//! - With TLS, the handshake happens on the connection's own task, bounded
//!   by the same header-read timeout, with the certificate in service when
//!   the connection arrived (see `tls.rs` for reloading).
//!
//! HTTP/2 is not offered: its prior-knowledge detection would read the first
//! bytes without any timeout, and every client of this host speaks HTTP/1.1.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The connection limits (from the config).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most.
    pub connections_max: usize,
    /// Open connections at most from one client address.
    pub per_client_max: usize,
    /// How long a request head may take to arrive, idle time included.
    pub header_read_timeout: Duration,
    /// How long a graceful stop waits for requests in flight.
    pub drain_timeout: Duration,
}

/// Open connections, by client address.
#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// The open-connection counts; a [`Slot`] is one connection's share.
struct Connections {
    limits: ConnectionLimits,
    open: Mutex<Open>,
    /// Connections closed since the allocator was last asked to return
    /// free memory.
    closed_since_trim: AtomicUsize,
}

/// Closed connections that make it worth returning free memory to the
/// kernel: glibc's allocator keeps what thousands of connections freed
/// (measured: 22 MB → 175 MB after cycles of 8,000 idle connections, and
/// never back; docs/BENCHMARKS.md §10). The `mercato` binary allocates with
/// mimalloc, which purges freed pages by itself (§14); this serves a host
/// embedded in a program on glibc's allocator, such as the tests.
const TRIM_AFTER_CLOSED: usize = 1_024;
/// How often to check.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Returns the allocator's free memory to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "malloc_trim is a plain libc call with no preconditions; it only releases \
              free memory the allocator holds"
)]
fn trim_allocator() {
    // SAFETY: see the `expect` reason above.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}

/// One admitted connection; dropping it frees its place.
struct Slot {
    connections: Arc<Connections>,
    client: IpAddr,
}

impl Connections {
    fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_client.get(&client).copied().unwrap_or(0);
        if open.total >= self.limits.connections_max || mine >= self.limits.per_client_max {
            return None;
        }
        open.total += 1;
        open.by_client.insert(client, mine + 1);
        Some(Slot {
            connections: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        self.connections
            .closed_since_trim
            .fetch_add(1, Ordering::Relaxed);
        if let Some(count) = open.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` completes, then stops accepting,
/// lets requests in flight finish (at most `drain_timeout`) and returns.
/// Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<super::tls::Tls>>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(256 * 1024);
    let connections = Arc::new(Connections {
        limits,
        open: Mutex::default(),
        closed_since_trim: AtomicUsize::new(0),
    });
    // After many connections closed, hand their memory back.
    let trimmer = {
        let connections = connections.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TRIM_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                if connections.closed_since_trim.load(Ordering::Relaxed) >= TRIM_AFTER_CLOSED {
                    connections.closed_since_trim.store(0, Ordering::Relaxed);
                    let _ = tokio::task::spawn_blocking(trim_allocator).await;
                }
            }
        })
    };
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it was
                    // accepted: back off a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some(slot) = connections.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: at the connection cap");
            drop(tcp);
            continue;
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let Some(tls) = &tls else {
            let connection = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %peer, "connection ended");
                }
                drop(slot);
            });
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        let (http, watcher) = (http.clone(), graceful.watcher());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    trimmer.abort();
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight at the end of the graceful stop");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections(total: usize, per_client: usize) -> Arc<Connections> {
        Arc::new(Connections {
            limits: ConnectionLimits {
                connections_max: total,
                per_client_max: per_client,
                header_read_timeout: Duration::from_secs(1),
                drain_timeout: Duration::from_secs(1),
            },
            open: Mutex::default(),
            closed_since_trim: AtomicUsize::new(0),
        })
    }

    #[test]
    fn one_client_cannot_take_every_connection() {
        let c = connections(3, 2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 1].into();
        let first = c.admit(a).expect("first");
        let _second = c.admit(a).expect("second");
        assert!(c.admit(a).is_none(), "a third from one client");
        let other = c.admit(b).expect("another client");
        assert!(c.admit(b).is_none(), "the total cap");
        drop(first);
        let _third = c.admit(b).expect("a freed place is reused");
        drop(other);
        assert_eq!(c.open.lock().expect("lock").total, 2);
        assert_eq!(c.open.lock().expect("lock").by_client[&b], 1);
    }
}
