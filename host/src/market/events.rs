//! An organisation's event feed (budget alerts, pauses, approvals waiting),
//! also POSTed to its webhook with retries.
//!
//! A webhook is a URL a tenant chose, fetched by the host: each delivery
//! resolves it and refuses any target that is not a public address
//! (loopback, private, link-local, multicast, …) unless the operator listed
//! its host in `webhook_allowed_hosts`; the connection goes to the addresses
//! that were checked (no second lookup to rebind), redirects are never
//! followed, and every attempt is bounded in time.

use super::{Market, Result, now_ms};
use crate::store::Tree;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// Events returned per request.
pub const EVENTS_MAX: usize = 100;
/// Webhook deliveries in flight at once; more are skipped (the feed keeps them).
const DELIVERIES_MAX: usize = 16;
/// Attempts per webhook delivery, and the waits between them.
const RETRY_DELAYS_MS: [u64; 2] = [200, 1_000];

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Event {
    /// Id (`evt_…`, time-ordered).
    pub event_id: String,
    /// The organisation.
    pub org_id: String,
    /// `budget_alert`, `budget_exhausted` or `approval_requested`.
    pub kind: String,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// What happened.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// The header each delivery is signed in: `t=<unix ms>,v1=<hex>`, where
/// the hex is HMAC-SHA256 under the organisation's webhook secret of
/// `<t>.<body>` (a receiver recomputes it and refuses stale `t`).
pub const SIGNATURE_HEADER: &str = "mercato-signature";

/// The `Mercato-Signature` value for `body` sent at `at_ms` under `secret`.
pub fn webhook_signature(secret: &str, at_ms: u64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(at_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={at_ms},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// How long one delivery attempt may take, and the lookup before it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a receiver checks that a delivery came from this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct WebhookSecret {
    /// The organisation's signing secret (`whsec_…`); keep it private.
    pub webhook_secret: String,
    /// The header each delivery carries.
    pub header: String,
    /// How the header is made.
    pub scheme: String,
}

/// Bounded webhook delivery.
pub(super) struct Webhooks {
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            slots: Arc::new(tokio::sync::Semaphore::new(DELIVERIES_MAX)),
        }
    }
}

/// Whether `ip` is an address anyone on the internet could be: not
/// loopback, private, link-local, shared (CGNAT), multicast, broadcast,
/// documentation, benchmarking or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x0064 && v6.segments()[1] == 0xff9b))
        }
    }
}

/// Where a webhook may be delivered (or any URL a tenant or stranger names
/// fetched): the URL and the checked addresses of its host, or why not.
pub(super) async fn target(
    url: &str,
    allowed_hosts: &[String],
) -> Result<(Url, String, Vec<SocketAddr>), String> {
    let url = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("not http(s)".into());
    }
    let host = url.host_str().ok_or("no host")?.to_string();
    let port = url.port_or_known_default().ok_or("no port")?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        ATTEMPT_TIMEOUT,
        tokio::net::lookup_host((bare.as_str(), port)),
    )
    .await
    .map_err(|_| "the lookup timed out".to_string())?
    .map_err(|e| format!("lookup: {e}"))?
    .take(16)
    .collect();
    if addrs.is_empty() {
        return Err("the host has no address".into());
    }
    let with_port = format!("{host}:{port}");
    let allowed = allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(&with_port));
    if !allowed && let Some(private) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!("{} is not a public address", private.ip()));
    }
    Ok((url, bare, addrs))
}

impl Market {
    /// Records an event in the organisation's feed and sends it to its
    /// webhook, if it set one.
    pub(super) fn emit(&self, org_id: &str, kind: &str, details: serde_json::Value) -> Result<()> {
        let event = Event {
            event_id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            org_id: org_id.into(),
            kind: kind.into(),
            at_ms: now_ms(),
            details,
        };
        self.store.put(
            Tree::Events,
            &format!("{org_id}:{}", event.event_id),
            &event,
        )?;
        if let Some(url) = self.settlement.budget(org_id).webhook_url {
            self.deliver(url, event);
        }
        Ok(())
    }

    fn deliver(&self, url: String, event: Event) {
        let Ok(permit) = self.webhooks.slots.clone().try_acquire_owned() else {
            tracing::warn!(org = %event.org_id, "webhook deliveries saturated; the feed keeps the event");
            return;
        };
        let allowed_hosts = self.config.webhook_allowed_hosts.clone();
        let secret = self.market_key.webhook_secret(&event.org_id);
        let refused = self.metrics.webhooks_refused.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (checked, host, addrs) = match target(&url, &allowed_hosts).await {
                Ok(target) => target,
                Err(why) => {
                    refused.inc();
                    tracing::warn!(org = %event.org_id, %url, %why, "webhook refused");
                    return;
                }
            };
            // To the addresses checked above, never following a redirect.
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(ATTEMPT_TIMEOUT)
                .resolve_to_addrs(&host, &addrs)
                .build();
            let Ok(client) = client else {
                tracing::warn!(org = %event.org_id, "webhook client");
                return;
            };
            let Ok(body) = serde_json::to_vec(&event) else {
                return;
            };
            for attempt in 0..=RETRY_DELAYS_MS.len() {
                // Signed at each attempt: `t` is when it was sent.
                let signature = webhook_signature(&secret, now_ms(), &body);
                let sent = client
                    .post(checked.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature)
                    .body(body.clone())
                    .send()
                    .await;
                if sent.as_ref().is_ok_and(|r| r.status().is_success()) {
                    return;
                }
                match RETRY_DELAYS_MS.get(attempt) {
                    Some(delay) => {
                        tokio::time::sleep(std::time::Duration::from_millis(*delay)).await
                    }
                    None => tracing::warn!(org = %event.org_id, %url, "webhook delivery failed"),
                }
            }
        });
    }

    /// How `org_id`'s receivers check its deliveries.
    pub fn webhook_secret(&self, org_id: &str) -> WebhookSecret {
        WebhookSecret {
            webhook_secret: self.market_key.webhook_secret(org_id),
            header: "Mercato-Signature".into(),
            scheme: "t=<unix ms>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>".into(),
        }
    }

    /// The latest events of an organisation, newest last.
    pub fn events(&self, org_id: &str) -> Result<Vec<Event>> {
        let mut events: Vec<Event> = self
            .store
            .scan_prefix::<Event>(Tree::Events, &format!("{org_id}:"))?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let skip = events.len().saturating_sub(EVENTS_MAX);
        events.drain(..skip);
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn a_signature_is_hmac_sha256_of_the_time_and_the_body() {
        // Stable for the same inputs; the time and the key both change it.
        let signature = webhook_signature("Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(signature.len(), "t=0,v1=".len() + 64);
        let again = webhook_signature("Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(signature, again);
        assert_ne!(
            signature,
            webhook_signature("Jefe", 1, b"what do ya want for nothing?")
        );
        assert_ne!(
            signature,
            webhook_signature("jefe", 0, b"what do ya want for nothing?")
        );
    }

    #[tokio::test]
    async fn a_webhook_to_a_private_address_is_refused_unless_allowed() {
        let refused = target("http://127.0.0.1:9/hook", &[]).await;
        assert!(refused.is_err_and(|e| e.contains("127.0.0.1")));
        let refused = target("http://[::1]:9/hook", &[]).await;
        assert!(refused.is_err());
        let refused = target("http://localhost:9/hook", &[]).await;
        assert!(refused.is_err());
        assert!(target("ftp://127.0.0.1/", &[]).await.is_err());
        let (_, host, addrs) = target("http://127.0.0.1:9/hook", &["127.0.0.1".into()])
            .await
            .expect("allowed by the operator");
        assert_eq!(host, "127.0.0.1");
        assert_eq!(
            addrs,
            vec!["127.0.0.1:9".parse::<SocketAddr>().expect("addr")]
        );
    }
}
