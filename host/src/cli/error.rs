//! How the command line reports a failure to a person: what went wrong and,
//! when there is something to do about it, what to do. No backtraces, no
//! HTTP-client jargon, no server internals.

use std::fmt;

/// A failure with advice.
#[derive(Debug)]
pub struct Advice {
    /// What went wrong.
    pub what: String,
    /// What to do about it.
    pub todo: String,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Advice {}

/// A failure with advice, as an [`anyhow::Error`].
pub fn advise(what: impl Into<String>, todo: impl Into<String>) -> anyhow::Error {
    Advice {
        what: what.into(),
        todo: todo.into(),
    }
    .into()
}

/// The host at `server` could not be reached (or answered in a way that is
/// not HTTP): which, and what to do.
pub fn unreachable(server: &str, error: &reqwest::Error) -> anyhow::Error {
    let text = format!("{error:?}");
    if text.contains("UnknownIssuer")
        || text.contains("invalid peer certificate")
        || text.contains("NotValidForName")
        || text.contains("CertExpired")
    {
        return advise(
            format!("cannot reach the host at {server}: its TLS certificate is not trusted"),
            "pass --ca-cert FILE (or MERCATO_CA_CERT) with the certificate that signed it, \
             and check that --server names the host the certificate is for",
        );
    }
    if server.starts_with("https://")
        && (text.contains("InvalidContentType") || text.contains("corrupt message"))
    {
        return advise(
            format!("cannot reach the host at {server}: it does not speak TLS there"),
            "use http:// in --server (or MERCATO_SERVER), or start the host with --tls-cert and --tls-key",
        );
    }
    let why = if error.is_timeout() {
        "it did not answer in time"
    } else if error.is_connect() {
        if text.contains("dns error") || text.contains("failed to lookup") {
            "its name does not resolve"
        } else if text.contains("ConnectionRefused") || text.contains("Connection refused") {
            "nothing listens there (connection refused)"
        } else {
            "the connection failed"
        }
    } else if error.is_builder() {
        "its address is not usable"
    } else {
        "the connection broke off before an answer came"
    };
    advise(
        format!("cannot reach the host at {server}: {why}"),
        "start one with `mercato serve`, or point --server (or MERCATO_SERVER) at a running host",
    )
}

/// The whole report of a failure, one line for what went wrong (its causes
/// joined) and one for what to do, if anything.
pub fn report(error: &anyhow::Error) -> String {
    let advice = error.chain().find_map(|e| e.downcast_ref::<Advice>());
    let what = match advice {
        // The advice says it all; the causes around it are its context.
        Some(advice) => {
            let context: Vec<String> = error
                .chain()
                .take_while(|e| e.downcast_ref::<Advice>().is_none())
                .map(ToString::to_string)
                .collect();
            let mut parts = context;
            parts.push(advice.what.clone());
            parts.join(": ")
        }
        None => error
            .chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": "),
    };
    match advice {
        Some(advice) => format!("error: {what}\n  what to do: {}", advice.todo),
        None => format!("error: {what}"),
    }
}

/// `--server`: an http:// or https:// address with a host.
pub fn server_address(given: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(given).map_err(|_| {
        format!("`{given}` is not a host address; give it as http://HOST:PORT (or https://HOST)")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{given}` is not a host address; give it as http://HOST:PORT (or https://HOST)"
        ));
    }
    Ok(given.trim_end_matches('/').to_string())
}

/// An amount or limit: a whole number, 0 or more.
pub fn whole(given: &str) -> Result<u64, String> {
    given.trim().parse::<u64>().map_err(|_| {
        if given.trim().starts_with('-') {
            format!("`{given}` is negative; give a whole number, 0 or more")
        } else {
            format!("`{given}` is not a whole number (0 to {})", u64::MAX)
        }
    })
}

/// A count that must be at least 1.
pub fn at_least_one(given: &str) -> Result<u64, String> {
    match whole(given)? {
        0 => Err("give 1 or more".to_string()),
        n => Ok(n),
    }
}

/// A rate per minute: a whole number, 0 or more, that fits 32 bits.
pub fn per_minute(given: &str) -> Result<u32, String> {
    let n = whole(given)?;
    u32::try_from(n).map_err(|_| format!("`{given}` is too large (at most {})", u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers_are_checked_with_a_reason() {
        assert_eq!(
            server_address("http://127.0.0.1:8080/").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        for bad in ["not-a-url", "ftp://x", "127.0.0.1:8080", "http://"] {
            let e = server_address(bad).expect_err(bad);
            assert!(e.contains("http://HOST:PORT"), "{e}");
        }
        assert!(whole("-5").expect_err("-5").contains("negative"));
        assert!(whole("five").expect_err("five").contains("whole number"));
        assert_eq!(whole("5"), Ok(5));
        assert!(at_least_one("0").is_err());
        assert!(
            per_minute("4294967296")
                .expect_err("big")
                .contains("too large")
        );
    }

    #[test]
    fn a_report_says_what_and_what_to_do() {
        let e = advise("cannot reach the host at http://x", "start one")
            .context("listing capabilities");
        assert_eq!(
            report(&e),
            "error: listing capabilities: cannot reach the host at http://x\n  what to do: start one"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(report(&plain), "error: outer: inner");
    }
}
