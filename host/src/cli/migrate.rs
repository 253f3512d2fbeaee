//! `mercato store migrate`: an embedded marketplace moved into PostgreSQL.

use crate::identity::market_key::{KEY_FILE, SHARED_KEY};
use crate::settlement::{Rules, Settlement};
use crate::store::{Database, Store, Tree, migrate};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Duration;

/// The committers' interval while migrating (everything is synced at the end).
const FLUSH: Duration = Duration::from_millis(100);

/// Copies the marketplace in `from` into the empty database at `to`, then
/// replays the books there and compares them with the source's: the
/// report, or why the move is not trustworthy.
pub async fn migrate_store(from: &Path, to: &str) -> Result<String> {
    if !from.join("db").is_dir() {
        bail!(
            "{} holds no embedded store (no db directory)",
            from.display()
        );
    }
    let password = std::env::var("MERCATO_DATABASE_PASSWORD").ok();
    let database = Database::parse(to, password).map_err(anyhow::Error::msg)?;
    let source = Store::open(from, FLUSH).with_context(|| {
        format!(
            "cannot open the store in {} (is its host still running?)",
            from.display()
        )
    })?;
    let journal = source.journal_snapshot();
    // Artifacts are not moved: the target's hosts compile their own.
    let scratch = std::env::temp_dir().join(format!("mercato-migrate-{}", std::process::id()));
    let target = Store::connect(&database, &scratch, FLUSH)
        .with_context(|| format!("cannot use {}", database.shown()))?;
    let copied = copy_all(from, &source, &journal, &target).await;
    // Closed whatever happened: the database's writer lock goes with it.
    let closed = target.close().await;
    drop(target);
    let copied = copied?;
    closed?;

    // The books as the target's hosts will see them: replayed from the
    // database, against the source's replayed from its own journal.
    let rules = Rules {
        fee_bps: 0,
        dispute_window_ms: 0,
        hold_timeout_ms: u64::MAX,
    };
    let now = crate::market::now_ms();
    let replayed = Store::connect(&database, &scratch, FLUSH)?;
    let before =
        Settlement::open(source.clone(), rules.clone(), now).context("the source's books")?;
    let after = Settlement::open(replayed.clone(), rules, now).context("the migrated books")?;
    let (audit, moved) = (before.audit(), after.audit());
    if let Some(problem) = &moved.problem {
        bail!("the migrated books do not balance: {problem}");
    }
    if audit != moved {
        bail!("the migrated books differ from the source's: {audit:?} against {moved:?}");
    }
    for (org_id, _) in source.scan_prefix_bytes(Tree::Orgs, "")? {
        if before.balance(&org_id, now) != after.balance(&org_id, now) {
            bail!("organisation {org_id}'s balance differs after the move");
        }
    }
    replayed.close().await?;
    source.close().await?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(format!(
        "moved {} records and {} journal entries from {} to {}; the books balance there: \
         {} micros deposited = {} with organisations + {} in escrow + {} in fees",
        copied.records,
        copied.journal_entries,
        from.display(),
        database.shown(),
        moved.deposited_micros,
        moved.organisations_micros,
        moved.escrow_micros,
        moved.fees_micros,
    ))
}

/// The records, the journal and the marketplace key, into `target`.
async fn copy_all(
    from: &Path,
    source: &Store,
    journal: &[Vec<u8>],
    target: &Store,
) -> Result<migrate::Copied> {
    let copied = migrate::copy(source, journal, target).await?;
    match std::fs::read_to_string(from.join(KEY_FILE)) {
        Ok(key) => {
            target.put(Tree::Meta, SHARED_KEY, &key.trim().to_string())?;
            target.sync().await?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("cannot read the marketplace key"),
    }
    Ok(copied)
}
