//! Several hosts on one PostgreSQL database (a cluster of the test's own),
//! each with a data directory of its own: what the replica tests share.

use crate::postgres::Postgres;
use crate::{Host, test_config};
use std::time::{Duration, Instant};

/// Hosts sharing one fresh database.
pub struct Replicas {
    pub hosts: Vec<Host>,
    _dirs: Vec<tempfile::TempDir>,
    pub pg: Postgres,
}

impl Replicas {
    /// Three hosts on one fresh database, or `None` when PostgreSQL is not
    /// installed (and not required).
    pub async fn start() -> Option<Replicas> {
        let pg = Postgres::start()?;
        let url = pg.database();
        let (mut hosts, mut dirs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = test_config(dir.path());
            config.database_url = Some(mercato_host::config::DatabaseUrl(url.clone()));
            hosts.push(Host::start_with(config).await);
            dirs.push(dir);
        }
        Some(Replicas {
            hosts,
            _dirs: dirs,
            pg,
        })
    }

    pub async fn stop(self) {
        for host in self.hosts {
            host.stop().await;
        }
    }
}

/// Waits (a generous bound: this is not a timing test) until `done`.
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (start, deadline) = (Instant::now(), Instant::now() + Duration::from_secs(20));
    while !done().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{what}: after {:?}", start.elapsed());
}
