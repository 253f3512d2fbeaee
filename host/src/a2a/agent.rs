//! The A2A agent itself: the market it fronts and its task table (the
//! other rooms add its methods).

use super::tasks::Tasks;
use crate::market::Market;
use std::sync::{Arc, Mutex};

/// The A2A agent behind `/a2a`.
pub struct A2a {
    pub(super) market: Arc<Market>,
    tasks: Arc<Mutex<Tasks>>,
}

/// A new task, context or message id.
pub(super) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl A2a {
    /// The agent over `market`.
    pub fn new(market: Arc<Market>) -> Self {
        let tasks = Arc::new(Mutex::new(Tasks::default()));
        super::tasks::follow_cancels(&market, tasks.clone());
        A2a { market, tasks }
    }

    /// The configured public URL, if any.
    pub fn public_url(&self) -> Option<&str> {
        self.market.config().public_url.as_deref()
    }

    pub(super) fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}
