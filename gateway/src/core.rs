//! What every door of the gateway (the WebSockets, gRPC, the HTTP API) shares: the track, the feeds, the
//! journal, the metrics, the visitor limits and the operator token; and the one place where a command is
//! carried out ([`Core::apply`]) and an operator action performed ([`Core::operate`]), so that every door
//! records, journals and answers them alike.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hil::track::{Outcome, Track};
use serde_json::{Value, json};
use sim::interlocking::Request;

use crate::feeds::Feeds;
use crate::journal::{Entry, Journal, JournalError, Writer};
use crate::limits::{Limits, PerAddress};
use crate::metrics::Metrics;
use crate::operator;
use crate::wire::v2::OperatorAction;

/// How a gateway is set up.
#[derive(Clone, Default)]
pub struct Options {
    /// The operator token; without one, operator actions are refused.
    pub operator_token: Option<String>,
    /// Visitor limits.
    pub limits: Limits,
    /// Where desired states and the command history are kept, if anywhere.
    pub journal: Option<Arc<Journal>>,
}

/// The gateway's shared core (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Core {
    /// The track.
    pub track: Track,
    /// The feeds of track changes.
    pub feeds: Feeds,
    /// This gateway's metrics.
    pub metrics: Arc<Metrics>,
    /// How it was set up.
    pub options: Arc<Options>,
    /// Commands per address, across all of an address's connections.
    pub per_address: Arc<PerAddress>,
    /// History reads allowed at once (each holds a page in memory while it is encoded).
    pub history_reads: Arc<tokio::sync::Semaphore>,
    journal: Option<Writer>,
}

/// History reads served at once.
pub const HISTORY_READS: usize = 2;

/// What became of an operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operated {
    /// Without the operator token: nothing done.
    Denied,
    /// Done; what it did, in words.
    Done(String),
    /// Not (wholly) done; why, in words.
    Failed(String),
}

impl Core {
    /// The core over `track`: starts the feeds and the journal's writer.
    pub async fn start(track: Track, options: Options) -> Result<Core, JournalError> {
        let metrics = Arc::new(Metrics::default());
        metrics.mode(track.mode());
        for (_, h) in track.boards() {
            metrics.event(&hil::track::TrackEvent::Board(h));
        }
        let journal = match &options.journal {
            Some(j) => {
                let names = track.layout().devices.iter().map(|d| d.name.clone()).collect();
                let desired = track.clone();
                Some(j.writer(names, move |d| desired.desired(d))?)
            }
            None => None,
        };
        let feeds = Feeds::start(track.clone(), journal.clone(), metrics.clone()).await;
        tokio::spawn(sample_every_second(track.clone(), metrics.clone()));
        let history_reads = Arc::new(tokio::sync::Semaphore::new(HISTORY_READS));
        Ok(Core {
            track,
            feeds,
            metrics,
            options: Arc::new(options),
            per_address: Arc::default(),
            history_reads,
            journal,
        })
    }

    /// Carries out a request: the track's outcome, recorded in the metrics and, before it is returned, in the
    /// journal (an applied device state with it), so that an acknowledgement survives a crash.
    pub async fn apply(&self, request: Request) -> Outcome {
        let started = Instant::now();
        let outcome = self.track.apply(request).await;
        let layout = self.track.layout();
        let (target, value) = match request {
            Request::Device { device, state } => (&layout.devices[device].name, json!(state)),
            Request::Speed { train, speed } => (&layout.trains[train].name, json!(speed)),
        };
        self.metrics.command(target, &outcome, started.elapsed());
        let (result, reason) = match &outcome {
            Outcome::Applied => ("applied", None),
            Outcome::Rejected(r) => ("rejected", Some(r.message.clone())),
            Outcome::Failed(f) => ("failed", Some(f.clone())),
        };
        let mut entries =
            vec![history(json!({ "target": target, "value": value, "result": result, "reason": reason }))];
        if let (Outcome::Applied, Request::Device { device, .. }) = (&outcome, request) {
            entries.push(Entry::Device(device));
        }
        match self.journal(entries).await {
            Err(e) if outcome == Outcome::Applied => {
                Outcome::Failed(format!("carried out on the track, but not recorded in the journal: {e}"))
            }
            _ => outcome,
        }
    }

    /// Performs an operator action if `token` is the operator token, and records it in the journal.
    pub async fn operate(&self, token: &str, action: OperatorAction) -> Operated {
        if !operator::authorised(self.options.operator_token.as_deref(), token) {
            return Operated::Denied;
        }
        let result = operator::perform(self, action).await;
        let (done, text) = match &result {
            Ok(detail) => ("applied", detail),
            Err(reason) => ("failed", reason),
        };
        let action_word = json!(action);
        let _ = self.journal(vec![history(json!({ "operator": action_word, "result": done, "reason": text }))]).await;
        match result {
            Ok(detail) => Operated::Done(detail),
            Err(reason) => Operated::Failed(reason),
        }
    }

    /// Writes `entries` to the journal (if there is one) and waits until they are on disk.
    async fn journal(&self, entries: Vec<Entry>) -> Result<(), JournalError> {
        match &self.journal {
            Some(writer) => writer.commit(entries).await,
            None => Ok(()),
        }
    }
}

/// A history entry stamped with the time.
fn history(mut entry: Value) -> Entry {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    entry["unix_ms"] = json!(now);
    Entry::History(entry)
}

/// Samples the simulation's real-time factor and the process's memory and CPU time every second while the track
/// runs.
async fn sample_every_second(track: Track, metrics: Arc<Metrics>) {
    let started = Instant::now();
    let Some(first) = track.try_state().await else { return };
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let Some(now) = track.try_state().await else { return };
        let wall = started.elapsed().as_secs_f64();
        metrics.real_time_factor((now.time_ms - first.time_ms) as f64 / 1000.0 / wall);
        metrics.resident_memory();
        metrics.cpu_time();
    }
}
