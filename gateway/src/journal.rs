//! The journal: desired device states and every command with its result, in an embedded store (redb) under
//! the data directory. Every write is a committed transaction, so after a crash (even `kill -9` in the
//! middle of a write) the store opens with every completed write and none half-done.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use sim::layout::{Layout, OnOff};

const DEVICES: TableDefinition<&str, &str> = TableDefinition::new("devices");
const HISTORY: TableDefinition<u64, &str> = TableDefinition::new("history");

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
#[error("journal: {0}")]
pub struct JournalError(String);

fn err(e: impl std::fmt::Display) -> JournalError {
    JournalError(e.to_string())
}

/// An open journal.
pub struct Journal {
    db: Database,
    next: AtomicU64,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let db = Database::create(dir.join("journal.redb")).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        let last = {
            txn.open_table(DEVICES).map_err(err)?;
            let history = txn.open_table(HISTORY).map_err(err)?;
            history.last().map_err(err)?.map(|(k, _)| k.value())
        };
        txn.commit().map_err(err)?;
        Ok(Journal { db, next: AtomicU64::new(last.map_or(0, |k| k + 1)) })
    }

    /// The stored desired state of every device of `layout` (`None` for a device never stored).
    pub fn device_states(&self, layout: &Layout) -> Result<Vec<Option<OnOff>>, JournalError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(DEVICES).map_err(err)?;
        layout
            .devices
            .iter()
            .map(|d| {
                Ok(table.get(d.name.as_str()).map_err(err)?.and_then(|v| match v.value() {
                    "ON" => Some(OnOff::On),
                    "OFF" => Some(OnOff::Off),
                    _ => None,
                }))
            })
            .collect()
    }

    /// Stores a device's desired state.
    pub fn set_device(&self, name: &str, state: OnOff) -> Result<(), JournalError> {
        let txn = self.db.begin_write().map_err(err)?;
        txn.open_table(DEVICES)
            .map_err(err)?
            .insert(name, if state == OnOff::On { "ON" } else { "OFF" })
            .map_err(err)?;
        txn.commit().map_err(err)
    }

    /// Appends an entry to the command history; returns its sequence number.
    pub fn record(&self, entry: &Value) -> Result<u64, JournalError> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let txn = self.db.begin_write().map_err(err)?;
        txn.open_table(HISTORY).map_err(err)?.insert(seq, entry.to_string().as_str()).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(seq)
    }

    /// The latest `limit` history entries, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<Value>, JournalError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(HISTORY).map_err(err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(err)?.rev().take(limit) {
            let (k, v) = row.map_err(err)?;
            let mut entry: Value = serde_json::from_str(v.value()).map_err(err)?;
            entry["seq"] = Value::from(k.value());
            out.push(entry);
        }
        Ok(out)
    }
}
