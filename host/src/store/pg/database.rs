//! Where the database is: a URL, shown without its password.

use super::pool;

/// Where to find the database. Shown (in logs, errors, `/healthz`) without
/// its password.
#[derive(Clone)]
pub struct Database {
    pub(super) config: postgres::Config,
    shown: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Database {
    /// Reads a `postgres://` URL (or a `key=value` connection string); the
    /// password comes from it or, when it has none, from `password`.
    pub fn parse(url: &str, password: Option<String>) -> std::result::Result<Database, String> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| format!("the database URL does not parse: {e}"))?;
        if config.get_password().is_none()
            && let Some(password) = password
        {
            config.password(password);
        }
        if config.get_hosts().is_empty() {
            return Err("the database URL names no host".into());
        }
        config.connect_timeout(pool::CONNECT_TIMEOUT);
        config.application_name("mercato");
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        let shown = format!(
            "postgres://{}@{}:{}/{}",
            config.get_user().unwrap_or(""),
            hosts.join(","),
            if ports.is_empty() {
                "5432".into()
            } else {
                ports.join(",")
            },
            config.get_dbname().unwrap_or("")
        );
        Ok(Database { config, shown })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}
