//! OAuth 2.1 rules without I/O: PKCE (S256 only), scopes, redirect URIs,
//! fresh secrets, and what a request made with an access token may do.
//!
//! The authorization server that keeps clients, codes and tokens is
//! `market::oauth`; these are the checks it applies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The scopes a token may carry: `discover` reads the catalog (listing and
/// discovery), `invoke` also calls capabilities, spending within the
/// token's cap.
pub const SCOPES: [&str; 2] = ["discover", "invoke"];

/// What a request authenticated with an OAuth access token may do: set on
/// the calling [`super::Org`] by authentication, never stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAccess {
    /// The grant the token belongs to (a person's consent to one client).
    pub grant_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// The most one call may hold, in micros.
    pub per_call_max_micros: Option<u64>,
    /// The most spent and held per UTC day, in micros.
    pub daily_max_micros: Option<u64>,
}

impl TokenAccess {
    /// Whether the token carries `scope`.
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// A fresh secret: `prefix` and 32 random bytes in base64url (256 bits).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a PKCE `code_challenge` is what S256 produces: 43 base64url
/// characters (the SHA-256 of the verifier).
pub fn challenge_is_valid(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` answers `challenge` under S256 (RFC 7636 §4.6): 43 to
/// 128 unreserved characters whose SHA-256, in base64url, is the challenge.
/// Compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed || !challenge_is_valid(challenge) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    super::hashes_equal(&computed, challenge)
}

/// The scopes a request asks for (space-separated), checked: unknown ones
/// are refused, none means all, and `offline_access` is accepted and dropped
/// (a refresh token is always issued).
pub fn requested_scopes(requested: Option<&str>) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in requested.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if scope == "offline_access" {
            continue;
        }
        if !SCOPES.contains(&scope) {
            return Err(format!(
                "unknown scope `{}`; the scopes are {}",
                scope.chars().take(64).collect::<String>(),
                SCOPES.join(", ")
            ));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    if scopes.is_empty() {
        scopes = SCOPES.iter().map(|s| s.to_string()).collect();
    }
    // `invoke` implies reading the catalog it calls into.
    if scopes.iter().any(|s| s == "invoke") && !scopes.iter().any(|s| s == "discover") {
        scopes.insert(0, "discover".into());
    }
    Ok(scopes)
}

/// Longest redirect URI accepted, in bytes.
pub const REDIRECT_URI_BYTES_MAX: usize = 2_000;

/// Whether a client may register `uri` as a redirect URI: an absolute URI
/// without a fragment that is `https`, `http` on a loopback host (a native
/// app's local listener, RFC 8252 §7.3), or a private-use scheme named
/// after a domain (`com.example.app:/callback`, RFC 8252 §7.1).
pub fn redirect_uri_acceptable(uri: &str) -> Result<(), String> {
    if uri.len() > REDIRECT_URI_BYTES_MAX {
        return Err(format!(
            "a redirect URI is at most {REDIRECT_URI_BYTES_MAX} bytes"
        ));
    }
    let parsed = url::Url::parse(uri).map_err(|e| format!("redirect URI `{uri}`: {e}"))?;
    if parsed.fragment().is_some() {
        return Err(format!("redirect URI `{uri}` has a fragment"));
    }
    if parsed.username() != "" || parsed.password().is_some() {
        return Err(format!("redirect URI `{uri}` carries credentials"));
    }
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" => match parsed.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Domain("localhost")) => Ok(()),
            _ => Err(format!(
                "redirect URI `{uri}`: plain http only to a loopback address; use https"
            )),
        },
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
            Err(format!("redirect URI `{uri}` has a forbidden scheme"))
        }
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "redirect URI `{uri}`: use https, http on a loopback address, or a private-use \
             scheme named after your domain (com.example.app:/callback)"
        )),
    }
}

/// Whether a redirect URI presented at authorization matches a registered
/// one: exactly, except that the port of a loopback `http` URI may differ
/// (RFC 8252 §7.3: a native app picks a free port when it runs).
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (url::Url::parse(registered), url::Url::parse(presented)) else {
        return false;
    };
    let loopback = |u: &url::Url| {
        u.scheme() == "http"
            && match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            }
    };
    loopback(&r)
        && loopback(&p)
        && r.scheme() == p.scheme()
        && r.host() == p.host()
        && r.path() == p.path()
        && r.query() == p.query()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_checked_as_rfc_7636_says() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        // A plain challenge (the verifier itself) is not S256.
        assert!(!pkce_matches(verifier, verifier));
        // Too short a verifier, or characters outside the unreserved set.
        assert!(!pkce_matches("short", challenge));
        assert!(!pkce_matches(&format!("{verifier}!"), challenge));
        assert!(challenge_is_valid(challenge));
        assert!(!challenge_is_valid(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c+"
        ));
    }

    #[test]
    fn scopes_are_known_ones_and_none_means_all() {
        assert_eq!(requested_scopes(None).unwrap(), ["discover", "invoke"]);
        assert_eq!(
            requested_scopes(Some("discover offline_access")).unwrap(),
            ["discover"]
        );
        assert_eq!(
            requested_scopes(Some("invoke")).unwrap(),
            ["discover", "invoke"]
        );
        assert!(requested_scopes(Some("admin")).is_err());
    }

    #[test]
    fn redirect_uris_are_https_loopback_or_private_use() {
        for ok in [
            "https://app.example/callback",
            "http://127.0.0.1:8765/callback",
            "http://localhost/cb",
            "http://[::1]:9000/cb",
            "com.example.app:/oauth",
        ] {
            assert!(redirect_uri_acceptable(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/callback",
            "https://app.example/cb#frag",
            "javascript:alert(1)",
            "data:text/html,hi",
            "myapp:/cb",
            "/relative",
            "https://user:pw@app.example/cb",
        ] {
            assert!(redirect_uri_acceptable(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_loopback_port_may_differ() {
        assert!(redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5555/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5555/other"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://evil.example/cb"
        ));
    }
}
