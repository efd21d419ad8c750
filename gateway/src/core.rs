//! What every door of the gateway (the WebSockets, gRPC, the HTTP API, video) shares: the [`Link`] to the track,
//! the metrics, the visitor limits and the options; and the one place where a door carries out a command
//! ([`Core::apply`]) or an operator action ([`Core::operate`]), so that every door records and answers them
//! alike, whichever link it has.

use std::sync::Arc;
use std::time::Instant;

use hil::track::{Outcome, Track};
use sim::interlocking::Request;
use sim::layout::Layout;

use crate::feeds::Feeds;
use crate::journal::{Journal, JournalError};
use crate::limits::{Limits, PerAddress};
use crate::link::Link;
pub use crate::link::Operated;
use crate::local::Local;
use crate::metrics::Metrics;
use wire::record::Caller;
use wire::v2::OperatorAction;

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
    /// The track, in this process or across a broker.
    pub link: Arc<dyn Link>,
    /// This gateway's metrics.
    pub metrics: Arc<Metrics>,
    /// How it was set up.
    pub options: Arc<Options>,
    /// Commands per address, across all of an address's connections.
    pub per_address: Arc<PerAddress>,
    /// History reads allowed at once (each holds a page in memory while it is encoded).
    pub history_reads: Arc<tokio::sync::Semaphore>,
}

/// History reads served at once.
pub const HISTORY_READS: usize = 2;

impl Core {
    /// The core over `track` in this process: starts the feeds and the journal's writer.
    pub async fn start(track: Track, options: Options) -> Result<Core, JournalError> {
        let metrics = Arc::new(Metrics::default());
        let local =
            Local::start(track, options.journal.as_deref(), options.operator_token.as_deref(), metrics.clone()).await?;
        Ok(Core::over(Arc::new(local), options, metrics))
    }

    /// The core over any link, recording into `metrics` (and the process's memory and CPU time every second).
    pub fn over(link: Arc<dyn Link>, options: Options, metrics: Arc<Metrics>) -> Core {
        let sampled = Arc::downgrade(&metrics);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                // Until the gateway is gone.
                let Some(metrics) = sampled.upgrade() else { return };
                metrics.resident_memory();
                metrics.cpu_time();
            }
        });
        Core {
            link,
            metrics,
            options: Arc::new(options),
            per_address: Arc::default(),
            history_reads: Arc::new(tokio::sync::Semaphore::new(HISTORY_READS)),
        }
    }

    /// The layout the track runs.
    pub fn layout(&self) -> &Arc<Layout> {
        self.link.layout()
    }

    /// The feeds of the track's changes.
    pub fn feeds(&self) -> &Feeds {
        self.link.feeds()
    }

    /// Carries out a request from `caller` through the link, and records its outcome and latency in the metrics.
    pub async fn apply(&self, request: Request, caller: Caller) -> Outcome {
        let started = Instant::now();
        let outcome = self.link.apply(request, caller).await;
        let layout = self.layout();
        let target = match request {
            Request::Device { device, .. } => &layout.devices[device].name,
            Request::Speed { train, .. } => &layout.trains[train].name,
        };
        self.metrics.command(target, &outcome, started.elapsed());
        outcome
    }

    /// Performs an operator action through the link (the track's side checks the token).
    pub async fn operate(&self, token: &str, action: OperatorAction) -> Operated {
        self.link.operate(token.to_string(), action).await
    }
}
