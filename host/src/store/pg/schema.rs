//! The schema, as numbered migrations applied in order at start.
//!
//! Replicas starting together take a transaction-scoped advisory lock first,
//! so exactly one applies a migration and the others find it applied. A
//! database whose schema is newer than this binary knows is refused: an old
//! replica must not write under rules it does not know.

use super::super::{Error, Result};
use postgres::Client;

/// Advisory lock taken while migrating (an arbitrary constant: "mercato1").
const MIGRATION_LOCK: i64 = 0x6d65_7263_6174_6f31;

/// The migrations, the first applied as version 1. Never edit one that has
/// shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: records by tree and key (keys as bytes, ordered as sled orders
    // them), the money journal in append order, and the row a flush updates
    // so that its synchronous commit makes every earlier write durable.
    "CREATE TABLE records (
         tree  text  NOT NULL,
         key   bytea NOT NULL,
         value bytea NOT NULL,
         PRIMARY KEY (tree, key)
     );
     CREATE TABLE journal (
         seq    bigint PRIMARY KEY CHECK (seq > 0),
         record bytea  NOT NULL
     );
     CREATE TABLE heartbeat (
         id    integer PRIMARY KEY CHECK (id = 1),
         beats bigint  NOT NULL
     );
     INSERT INTO heartbeat (id, beats) VALUES (1, 0);",
    // 2: the change feed replicas follow (catalog changes), in order.
    "CREATE TABLE changes (
         seq     bigserial   PRIMARY KEY,
         origin  text        NOT NULL,
         subject text        NOT NULL,
         at      timestamptz NOT NULL DEFAULT now()
     );",
    // 3: the replicas alive (each beats every second), for what they share
    // out among themselves (rate limits).
    "CREATE TABLE replicas (
         origin  text        PRIMARY KEY,
         seen_at timestamptz NOT NULL
     );",
];

/// The schema version this binary writes.
pub(super) fn latest() -> i32 {
    MIGRATIONS.len() as i32
}

/// Applies the migrations the database lacks; the version it is at after.
pub(super) fn migrate(client: &mut Client) -> Result<i32> {
    let mut tx = client.transaction().map_err(super::pool::classify)?;
    let step = |e| super::pool::classify(e);
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(step)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS mercato_schema (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .map_err(step)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM mercato_schema", &[])
        .map_err(step)?
        .get(0);
    if current > latest() {
        return Err(Error::Postgres(format!(
            "the database's schema is at version {current}, newer than this mercato knows ({}): \
             run the newer mercato, or restore a database of this version",
            latest()
        )));
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = n as i32 + 1;
        tx.batch_execute(sql).map_err(step)?;
        tx.execute(
            "INSERT INTO mercato_schema (version) VALUES ($1)",
            &[&version],
        )
        .map_err(step)?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().map_err(step)?;
    Ok(latest())
}
