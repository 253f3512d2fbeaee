//! Connections to PostgreSQL on threads of their own.
//!
//! The store's interface is synchronous (sled's is), and the synchronous
//! `postgres` client runs a runtime of its own, which may not be entered from
//! an async task. So each connection lives on its own thread, and a caller
//! hands it a job and waits for the answer on a channel: any thread, async or
//! not, may call. A connection that breaks is dropped and made again for the
//! next job; while it cannot be made, jobs fail at once with
//! [`Error::Unavailable`] instead of waiting.

use super::super::{Error, Result};
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection attempt may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// After a failed attempt, jobs fail at once for this long before the next
/// attempt (a database that is down is not asked again per request).
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

/// A connection idle longer than this is checked before its next job.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A connection with the statements it has prepared.
pub(super) struct Conn {
    pub client: Client,
    statements: HashMap<&'static str, Statement>,
    /// When it last ran a job.
    used: Instant,
    /// The pool's failure count when it was last known good.
    epoch: u64,
}

impl Conn {
    /// `sql` prepared once per connection.
    pub fn prepared(
        &mut self,
        sql: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A job: runs on a connection (or learns why there is none) and says
/// whether the connection is to be dropped (the server went away).
type Job = Box<dyn FnOnce(Result<&mut Conn>) -> bool + Send>;

pub(super) struct Pool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Bumped whenever a connection to the server is made, here or by a
    /// connection of the store's own (the journal's turns).
    connects: Arc<AtomicU64>,
}

/// What a failed statement means to the store: the connection or the server
/// going away is [`Error::Unavailable`]; anything else is a refusal.
pub(super) fn classify(error: postgres::Error) -> Error {
    use postgres::error::SqlState;
    let code = error.code();
    let away = error.is_closed()
        || code.is_none()
            && std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>())
        || code.is_some_and(|c| {
            c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::LOCK_NOT_AVAILABLE
                || *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
        });
    if away {
        Error::Unavailable(error.to_string())
    } else {
        Error::Postgres(error.to_string())
    }
}

/// Opens a connection with the session settings every job expects.
pub(super) fn connect(config: &postgres::Config, session: &str) -> Result<Client> {
    let mut client = config
        .connect(NoTls)
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    if !session.is_empty() {
        client.batch_execute(session).map_err(classify)?;
    }
    Ok(client)
}

impl Pool {
    /// Starts `size` connection threads; each connects on its first job and
    /// runs `session` (SQL) on every new connection.
    pub fn start(config: postgres::Config, size: usize, session: &'static str) -> Pool {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        // Bumped whenever a job finds the server gone: every connection is
        // then checked before its next job (a restart cut them all).
        let failures = Arc::new(AtomicU64::new(0));
        // Bumped whenever a connection is made: a thread whose last attempt
        // failed tries again at once instead of waiting out its pause (the
        // server is back).
        let connects = Arc::new(AtomicU64::new(0));
        let threads = (0..size)
            .map(|n| {
                let receiver = receiver.clone();
                let config = config.clone();
                let failures = failures.clone();
                let connects = connects.clone();
                std::thread::Builder::new()
                    .name(format!("mercato-pg-{n}"))
                    .spawn(move || serve(&config, session, &receiver, &failures, &connects))
                    .expect("spawn a database connection thread")
            })
            .collect();
        Pool {
            jobs: Mutex::new(Some(sender)),
            threads: Mutex::new(threads),
            connects,
        }
    }

    /// Says the server was reached on a connection outside the pool: a
    /// thread pausing after a failed attempt tries again at its next job
    /// instead of answering with its stale failure.
    pub fn reached(&self) {
        self.connects.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `job` on a connection and waits for its answer.
    pub fn run<R, F>(&self, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> std::result::Result<R, postgres::Error> + Send + 'static,
    {
        self.submit(job)?.recv().map_err(|_| Error::Closed)?
    }

    /// Hands `job` to a connection; its answer comes on the channel.
    pub fn submit<R, F>(&self, job: F) -> Result<mpsc::Receiver<Result<R>>>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> std::result::Result<R, postgres::Error> + Send + 'static,
    {
        let (answer, answered) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let outcome = conn.and_then(|conn| job(conn).map_err(classify));
            let broken = matches!(outcome, Err(Error::Unavailable(_)));
            let _ = answer.send(outcome);
            broken
        });
        {
            let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            let jobs = jobs.as_ref().ok_or(Error::Closed)?;
            jobs.send(job).map_err(|_| Error::Closed)?;
        }
        Ok(answered)
    }

    /// [`Pool::run`] for a job that may run more than once (a read, or
    /// writes that land the same however often they do): again, up to three
    /// times, while it finds the server gone.
    pub fn run_again<R, F>(&self, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> std::result::Result<R, postgres::Error> + Send + Clone + 'static,
    {
        // A server restart leaves every pooled connection cut: each failed
        // attempt drops one, so a few attempts reach a fresh one.
        for _ in 0..2 {
            match self.run(job.clone()) {
                Err(Error::Unavailable(_)) => continue,
                outcome => return outcome,
            }
        }
        self.run(job)
    }

    /// Stops taking jobs and closes the connections once the queued jobs ran.
    pub fn close(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// One connection thread: takes jobs until the pool closes.
fn serve(
    config: &postgres::Config,
    session: &str,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    failures: &AtomicU64,
    connects: &AtomicU64,
) {
    let mut conn: Option<Conn> = None;
    let mut failed_at: Option<(Instant, String, u64)> = None;
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // A connection idle for a while may have been cut (the server
        // restarted): checked before use, so the first job after a restart
        // does not fail on it.
        let epoch = failures.load(Ordering::Acquire);
        if conn.as_mut().is_some_and(|c| {
            let suspect = c.used.elapsed() > IDLE_CHECK || c.epoch < epoch;
            c.client.is_closed() || suspect && c.client.is_valid(CONNECT_TIMEOUT).is_err()
        }) {
            conn = None;
        }
        if let Some(c) = conn.as_mut() {
            c.epoch = epoch;
        }
        if conn.is_none() {
            match &failed_at {
                Some((at, reason, seen))
                    if at.elapsed() < RECONNECT_PAUSE
                        && connects.load(Ordering::Acquire) == *seen =>
                {
                    job(Err(Error::Unavailable(reason.clone())));
                    continue;
                }
                _ => match connect(config, session) {
                    Ok(client) => {
                        failed_at = None;
                        connects.fetch_add(1, Ordering::AcqRel);
                        conn = Some(Conn {
                            client,
                            statements: HashMap::new(),
                            used: Instant::now(),
                            epoch,
                        });
                    }
                    Err(error) => {
                        failed_at = Some((
                            Instant::now(),
                            error.to_string(),
                            connects.load(Ordering::Acquire),
                        ));
                        job(Err(error));
                        continue;
                    }
                },
            }
        }
        let Some(open) = conn.as_mut() else { continue };
        let broken = job(Ok(open));
        open.used = Instant::now();
        if broken || open.client.is_closed() {
            failures.fetch_add(1, Ordering::AcqRel);
            conn = None;
        }
    }
}
