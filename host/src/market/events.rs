//! An organisation's event feed (budget alerts, pauses, approvals waiting),
//! also POSTed to its webhook with retries.

use super::{Market, Result, now_ms};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
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

/// Bounded webhook delivery.
pub(super) struct Webhooks {
    client: reqwest::Client,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            slots: Arc::new(tokio::sync::Semaphore::new(DELIVERIES_MAX)),
        }
    }
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
        let client = self.webhooks.client.clone();
        tokio::spawn(async move {
            let _permit = permit;
            for attempt in 0..=RETRY_DELAYS_MS.len() {
                let sent = client.post(&url).json(&event).send().await;
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
