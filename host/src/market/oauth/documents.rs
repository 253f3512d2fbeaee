//! Client ID metadata documents: a client whose `client_id` is a URL
//! describes itself in the JSON document at that URL (the MCP
//! authorization revision 2025-11-25's preferred way), instead of
//! registering. The document is fetched as a webhook is delivered: its
//! host resolved and refused unless every address is public (the
//! operator's `client_metadata_allowed_hosts` opens named hosts, also to
//! plain http for development), the connection made to the checked
//! addresses, no redirect followed, 5 s and 64 KiB at most. It must name
//! its own URL as `client_id`; its metadata is checked as a registration's,
//! and such clients are public (PKCE alone). A good document is kept an
//! hour.

use super::records::{ClientMetadata, Oauth, OauthClient, OauthError, check_metadata};
use crate::identity::secret_hash;
use crate::market::{Market, now_ms};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Largest document read, in bytes.
const DOCUMENT_BYTES_MAX: usize = 64 * 1024;
/// How long a fetched document is trusted before it is fetched again.
const DOCUMENT_TTL_MS: u64 = 3_600_000;
/// Longest wait for a document.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Documents fetched per minute, from every client together.
const FETCHES_PER_MINUTE: u32 = 120;
/// Longest client ID URL.
const URL_BYTES_MAX: usize = 2_000;

/// Whether a client id names a metadata document (an http(s) URL).
pub fn is_document_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    client: OauthClient,
    fetched_at_ms: u64,
}

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(default)]
    client_id: String,
    #[serde(flatten)]
    metadata: ClientMetadata,
}

fn key(client_id: &str) -> String {
    format!("cimd/{}", secret_hash(client_id))
}

impl Market {
    /// The client a metadata document describes: kept, or fetched now.
    pub(super) async fn document_client(&self, client_id: &str) -> Oauth<OauthClient> {
        let invalid = |m: String| OauthError::new("invalid_client", m);
        if client_id.len() > URL_BYTES_MAX {
            return Err(invalid(format!(
                "a client ID URL is at most {URL_BYTES_MAX} bytes"
            )));
        }
        let url = url::Url::parse(client_id)
            .map_err(|e| invalid(format!("client_id is not a URL: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let with_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        let allowed = self
            .config
            .client_metadata_allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(&with_port));
        if url.scheme() != "https" && !allowed {
            return Err(invalid(
                "a client ID metadata document is fetched over https only".into(),
            ));
        }
        if matches!(url.path(), "" | "/")
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(invalid(
                "a client ID URL names a document (a path), without fragment or credentials".into(),
            ));
        }
        let now = now_ms();
        if let Some(kept) = self.store.get::<Kept>(Tree::Oauth, &key(client_id))?
            && kept.fetched_at_ms + DOCUMENT_TTL_MS > now
        {
            return Ok(kept.client);
        }
        self.rates
            .take(
                "cimd",
                "fetch",
                FETCHES_PER_MINUTE,
                std::time::Instant::now(),
            )
            .map_err(|_| {
                OauthError::new(
                    "temporarily_unavailable",
                    "too many client metadata documents fetched lately; retry in a minute",
                )
            })?;
        let body = fetch(client_id, &self.config.client_metadata_allowed_hosts)
            .await
            .map_err(|why| {
                invalid(format!(
                    "the client ID metadata document could not be fetched: {why}"
                ))
            })?;
        let document: Document = serde_json::from_slice(&body).map_err(|e| {
            invalid(format!(
                "the client ID metadata document is not client metadata (JSON): {e}"
            ))
        })?;
        if document.client_id != client_id {
            return Err(invalid(
                "the client ID metadata document must name its own URL as client_id".into(),
            ));
        }
        let method = check_metadata(&document.metadata, "none")?;
        if method != "none" {
            return Err(invalid(
                "a client known by its metadata document is public here: \
                 token_endpoint_auth_method none"
                    .into(),
            ));
        }
        let client = OauthClient {
            client_id: client_id.to_string(),
            client_name: document.metadata.client_name.map(|n| n.trim().to_string()),
            redirect_uris: document.metadata.redirect_uris,
            token_endpoint_auth_method: method,
            secret_sha256: None,
            created_at_ms: now,
        };
        if self.store.count_prefix(Tree::Oauth, "cimd/") < super::records::CLIENTS_MAX {
            self.store.put(
                Tree::Oauth,
                &key(client_id),
                &Kept {
                    client: client.clone(),
                    fetched_at_ms: now,
                },
            )?;
        }
        Ok(client)
    }

    /// The client a metadata document described when it was last fetched
    /// (its name for the grant), or just its id.
    pub(super) fn document_client_cached(&self, client_id: &str) -> OauthClient {
        self.store
            .get::<Kept>(Tree::Oauth, &key(client_id))
            .ok()
            .flatten()
            .map(|kept| kept.client)
            .unwrap_or_else(|| OauthClient {
                client_id: client_id.to_string(),
                client_name: None,
                redirect_uris: Vec::new(),
                token_endpoint_auth_method: "none".into(),
                secret_sha256: None,
                created_at_ms: now_ms(),
            })
    }
}

/// GETs `url` as a webhook is delivered: checked addresses only, no
/// redirect, bounded in time and size.
async fn fetch(url: &str, allowed_hosts: &[String]) -> Result<Vec<u8>, String> {
    let (checked, host, addrs) = crate::market::events::target(url, allowed_hosts).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .resolve_to_addrs(&host, &addrs)
        .build()
        .map_err(|e| e.to_string())?;
    let mut response = client
        .get(checked)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > DOCUMENT_BYTES_MAX {
            return Err(format!("it is larger than {DOCUMENT_BYTES_MAX} bytes"));
        }
    }
    Ok(body)
}
