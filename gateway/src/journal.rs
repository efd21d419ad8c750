//! The journal: desired device states and the record of each session (every command with its result, and the
//! other inputs: see `wire::record`), in an embedded store (redb) under the data directory.
//!
//! Writes go through one writer thread that gathers whatever is waiting into one transaction (group commit):
//! one disk sync serves many commands, and nothing that publishes track changes waits for the disk. A command
//! is acknowledged only once [`Writer::commit`] returns, so an acknowledged state survives `kill -9`; every
//! transaction is committed whole or not at all.
//!
//! A damaged journal (a file the store cannot read through, or an empty file) is never silently reset and never
//! crashes the server: it is moved aside (`journal.redb.damaged-<unix seconds>`) and a new one is started, and
//! [`Opened::Recovered`] says so, for the server to warn about.
//!
//! The history is bounded: it keeps the latest [`DEFAULT_KEEP`] entries (or what [`Journal::keep`] says); older
//! ones are dropped with the transaction that goes past the bound. The store's page cache is bounded too.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use sim::layout::{Layout, OnOff};
use tokio::sync::oneshot;

const DEVICES: TableDefinition<&str, &str> = TableDefinition::new("devices");
const HISTORY: TableDefinition<u64, &str> = TableDefinition::new("history");

/// Most writes gathered into one transaction.
const BATCH: usize = 512;

/// History entries kept by default (about a festival hour at the peak of a hundred commands a second).
pub const DEFAULT_KEEP: u64 = 200_000;

/// Bytes of the store's page cache.
const CACHE_BYTES: usize = 16 << 20;

/// Why the journal failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("journal: {0}")]
pub struct JournalError(String);

fn err(e: impl std::fmt::Display) -> JournalError {
    JournalError(e.to_string())
}

/// An open journal.
pub struct Journal {
    db: Arc<Database>,
    keep: u64,
    /// The layout file's text the track runs, recorded with each session (for a replay).
    layout_toml: Option<String>,
}

/// How a journal was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// There was none: a new, empty one.
    Created,
    /// The existing one, read through without fault.
    Existing,
    /// The existing one was damaged: it was moved aside and a new one started.
    Recovered {
        /// Where the damaged file now is.
        aside: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// One thing to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A device's desired state, as it is when the entry is written (so a late entry never stores an older
    /// state over a newer one).
    Device(usize),
    /// A history entry (the writer adds its sequence number's key).
    History(Value),
}

/// What the writer thread takes: entries, and whom to tell when they are on disk.
struct Write {
    entries: Vec<Entry>,
    done: Option<oneshot::Sender<Result<(), JournalError>>>,
}

/// The writing end of a journal (see the module documentation). Cheap to clone; the thread ends with the last
/// clone.
#[derive(Clone)]
pub struct Writer {
    writes: crossbeam_channel::Sender<Write>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`. A damaged one is moved aside and replaced by a new one (see the
    /// module documentation); only a directory or file the process cannot write is an error.
    pub fn open(dir: &Path) -> Result<(Journal, Opened), JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("journal.redb");
        let opened = match std::fs::metadata(&path) {
            Err(_) => Opened::Created,
            Ok(m) if m.len() == 0 => set_aside(&path, "the file is empty".into())?,
            Ok(_) => match read_through(&path) {
                Ok(()) => Opened::Existing,
                Err(reason) => set_aside(&path, reason)?,
            },
        };
        let db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(&path).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(DEVICES).map_err(err)?;
        txn.open_table(HISTORY).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok((Journal { db: Arc::new(db), keep: DEFAULT_KEEP, layout_toml: None }, opened))
    }

    /// Keeps at most `entries` history entries (at least one), from the writer's next transaction on.
    pub fn keep(mut self, entries: u64) -> Journal {
        self.keep = entries.max(1);
        self
    }

    /// Records `text`, the layout file's text, with each session (a replay runs the layout it was recorded on).
    pub fn layout_toml(mut self, text: &str) -> Journal {
        self.layout_toml = Some(text.to_string());
        self
    }

    /// The layout file's text recorded with each session, if given.
    pub fn recorded_layout(&self) -> Option<&str> {
        self.layout_toml.as_deref()
    }

    /// The stored desired state of every device of `layout` (`None` for a device never stored).
    pub fn device_states(&self, layout: &Layout) -> Result<Vec<Option<OnOff>>, JournalError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(DEVICES).map_err(err)?;
        layout
            .devices
            .iter()
            .map(|d| Ok(table.get(d.name.as_str()).map_err(err)?.and_then(|v| word_state(v.value()))))
            .collect()
    }

    /// The latest `limit` history entries before sequence number `before` (all if `None`), newest first, each with
    /// its sequence number `seq`.
    pub fn history(&self, limit: usize, before: Option<u64>) -> Result<Vec<Value>, JournalError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(HISTORY).map_err(err)?;
        let mut out = Vec::new();
        for row in table.range(..before.unwrap_or(u64::MAX)).map_err(err)?.rev().take(limit) {
            let (k, v) = row.map_err(err)?;
            let mut entry: Value = serde_json::from_str(v.value()).map_err(err)?;
            entry["seq"] = Value::from(k.value());
            out.push(entry);
        }
        Ok(out)
    }

    /// Starts the writer thread. `names` are the devices' names; `desired` reads a device's desired state at
    /// the moment its entry is written.
    pub fn writer(
        &self,
        names: Vec<String>,
        desired: impl Fn(usize) -> OnOff + Send + 'static,
    ) -> Result<Writer, JournalError> {
        let next = {
            let txn = self.db.begin_read().map_err(err)?;
            let history = txn.open_table(HISTORY).map_err(err)?;
            history.last().map_err(err)?.map_or(0, |(k, _)| k.value() + 1)
        };
        let (writes, inbox) = crossbeam_channel::unbounded::<Write>();
        let db = self.db.clone();
        let keep = self.keep;
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_loop(&db, &names, desired, (next, keep), inbox))
            .map_err(err)?;
        Ok(Writer { writes })
    }
}

impl Writer {
    /// Writes `entries` and returns once they are on disk.
    pub async fn commit(&self, entries: Vec<Entry>) -> Result<(), JournalError> {
        let (done, on_disk) = oneshot::channel();
        self.writes.send(Write { entries, done: Some(done) }).map_err(|_| err("the writer has stopped"))?;
        on_disk.await.map_err(|_| err("the writer has stopped"))?
    }

    /// Writes `entries` with the next transaction, without waiting for it.
    pub fn submit(&self, entries: Vec<Entry>) {
        // The writer stops only with the last handle, so this cannot fail while `self` lives.
        let _ = self.writes.send(Write { entries, done: None });
    }
}

/// Takes what is waiting (up to [`BATCH`] writes), commits it in one transaction, tells the waiters; until every
/// [`Writer`] is gone.
fn write_loop(
    db: &Database,
    names: &[String],
    desired: impl Fn(usize) -> OnOff,
    (mut next, keep): (u64, u64),
    inbox: crossbeam_channel::Receiver<Write>,
) {
    while let Ok(first) = inbox.recv() {
        let batch: Vec<Write> = std::iter::once(first).chain(inbox.try_iter().take(BATCH - 1)).collect();
        let result = write_batch(db, names, &desired, (&mut next, keep), &batch);
        if let Err(e) = &result {
            tracing::error!("{e}");
        }
        for w in batch {
            if let Some(done) = w.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

fn write_batch(
    db: &Database,
    names: &[String],
    desired: &impl Fn(usize) -> OnOff,
    (next, keep): (&mut u64, u64),
    batch: &[Write],
) -> Result<(), JournalError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let mut devices = txn.open_table(DEVICES).map_err(err)?;
        let mut history = txn.open_table(HISTORY).map_err(err)?;
        for entry in batch.iter().flat_map(|w| &w.entries) {
            match entry {
                Entry::Device(d) => {
                    devices.insert(names[*d].as_str(), wire::word(&desired(*d)).as_str()).map_err(err)?;
                }
                Entry::History(value) => {
                    history.insert(*next, value.to_string().as_str()).map_err(err)?;
                    *next += 1;
                }
            }
        }
        // The oldest entries beyond the bound go with this transaction.
        let oldest_kept = next.saturating_sub(keep);
        if history.first().map_err(err)?.is_some_and(|(k, _)| k.value() < oldest_kept) {
            history.retain_in(..oldest_kept, |_, _| false).map_err(err)?;
        }
    }
    txn.commit().map_err(err)
}

/// What [`read_history`] found: every history entry it could read, in order (sequence number, JSON text), and
/// where it stopped if the journal is damaged.
#[derive(Debug, Default)]
pub struct History {
    /// Each entry read: its sequence number and its JSON text.
    pub entries: Vec<(u64, String)>,
    /// Why reading stopped early (damage), after the last entry in `entries`.
    pub damage: Option<String>,
}

/// Reads the history of the journal in `dir` without changing anything (a replay's or an export's read): every
/// entry up to the first it cannot read, and why it stopped there. The journal must not be open in a running
/// gateway (the store allows one process at a time): that is an error, as is a directory without one.
pub fn read_history(dir: &Path) -> Result<History, JournalError> {
    let path = dir.join("journal.redb");
    if !path.exists() {
        return Err(err(format!("no journal in {} (a gateway started with --data-dir keeps one)", dir.display())));
    }
    let read = || -> Result<History, JournalError> {
        let db = Database::open(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                err(format!("{} is in use by a running gateway: stop it first", path.display()))
            }
            e => err(format!("{} cannot be read: {e}", path.display())),
        })?;
        let txn = db.begin_read().map_err(err)?;
        let table = txn.open_table(HISTORY).map_err(err)?;
        let mut history = History::default();
        for row in table.iter().map_err(err)? {
            match row {
                Ok((k, v)) => history.entries.push((k.value(), v.value().to_string())),
                Err(e) => {
                    history.damage = Some(e.to_string());
                    break;
                }
            }
        }
        Ok(history)
    };
    quietly(read).unwrap_or_else(|reason| Err(err(format!("{} is damaged: {reason}", path.display()))))
}

/// Opens the journal at `path` and reads every entry of it, checking the store's integrity first; why it cannot
/// be read, if so (a panic of the store on some damage included, see [`quietly`]).
fn read_through(path: &Path) -> Result<(), String> {
    let check = || -> Result<(), String> {
        let mut db = Database::open(path).map_err(|e| e.to_string())?;
        if !db.check_integrity().map_err(|e| e.to_string())? {
            return Err("the store found damage and repaired what it could".into());
        }
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        for row in txn.open_table(DEVICES).map_err(|e| e.to_string())?.iter().map_err(|e| e.to_string())? {
            let (k, v) = row.map_err(|e| e.to_string())?;
            let _ = (k.value(), v.value());
        }
        for row in txn.open_table(HISTORY).map_err(|e| e.to_string())?.iter().map_err(|e| e.to_string())? {
            let (_, v) = row.map_err(|e| e.to_string())?;
            serde_json::from_str::<Value>(v.value()).map_err(|e| format!("a history entry is not JSON: {e}"))?;
        }
        Ok(())
    };
    quietly(check).unwrap_or_else(Err)
}

/// Runs `read`, catching a panic of the store (it panics on some damage) quietly: the panic comes back as the
/// reason, so that a damaged file never takes the server down.
fn quietly<T>(read: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(read));
    std::panic::set_hook(hook);
    result.map_err(|panic| {
        let what =
            panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
        format!("the store failed reading it ({})", what.unwrap_or_else(|| "a panic".into()))
    })
}

/// Moves a damaged journal aside; says where and why.
fn set_aside(path: &Path, reason: String) -> Result<Opened, JournalError> {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let aside = path.with_extension(format!("redb.damaged-{unix}"));
    std::fs::rename(path, &aside).map_err(|e| err(format!("cannot move the damaged {} aside: {e}", path.display())))?;
    Ok(Opened::Recovered { aside, reason })
}

/// A stored word read back (`None` for anything else).
fn word_state(word: &str) -> Option<OnOff> {
    serde_json::from_value(Value::String(word.to_string())).ok()
}
