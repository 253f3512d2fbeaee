//! A PostgreSQL server of the tests' own: `initdb` in a temporary directory,
//! started on a free loopback port (as the `postgres` user when the tests
//! run as root), stopped and deleted when dropped. Never a shared server.
//!
//! The binaries come from `pg_config --bindir`, `PATH`, or Debian's
//! `/usr/lib/postgresql/<version>/bin`. Without them, [`Postgres::start`]
//! answers `None` (the test says it skipped) unless `MERCATO_REQUIRE_POSTGRES`
//! is set, as `.ci/run` sets it: CI never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use tempfile::TempDir;

/// A running test cluster.
pub struct Postgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres: bool,
}

/// Where `initdb`, `pg_ctl` and `postgres` are, if anywhere.
fn bindir() -> Option<PathBuf> {
    let has = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"));
    from_pg_config
        .into_iter()
        .chain(from_path)
        .chain(debian)
        .find(|d| has(d))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Postgres {
    /// A fresh cluster, running; `None` (with a message) when no server
    /// binary is installed and the tests may skip.
    pub fn start() -> Option<Postgres> {
        Postgres::start_in(&std::env::temp_dir())
    }

    /// [`Postgres::start`] with the cluster's directory in `parent` (a
    /// benchmark puts it on the same disk as the embedded store it is
    /// compared with).
    pub fn start_in(parent: &Path) -> Option<Postgres> {
        let Some(bin) = bindir() else {
            assert!(
                std::env::var_os("MERCATO_REQUIRE_POSTGRES").is_none(),
                "MERCATO_REQUIRE_POSTGRES is set but no PostgreSQL server binaries were found \
                 (Debian: apt-get install postgresql)"
            );
            eprintln!("SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl, postgres) found");
            return None;
        };
        // initdb refuses to run as root: root hands the cluster to `postgres`.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("mercato-pg-")
            .tempdir_in(parent)
            .expect("temp dir");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let cluster = Postgres {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        cluster.resume();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let output = command.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server (fast shutdown: sessions are cut, nothing is lost).
    pub fn pause(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"],
        );
    }

    /// A new, empty database on this server: its URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "mercato_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.url("postgres");
        let create = format!("CREATE DATABASE {name}");
        // On a thread of its own: the client may not run inside an async test.
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls)
                .expect("connect to the test cluster");
            client.batch_execute(&create).expect("create a database");
        })
        .join()
        .expect("the database is created");
        self.url(&name)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}
