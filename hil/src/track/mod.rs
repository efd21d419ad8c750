//! The one track interface the gateway uses, whatever the track is.
//!
//! A [`Track`] owns a simulation running paced to the wall clock, virtual boards on top of it, and the
//! addresses of the real boards. Every command passes the interlocking, then device commands go to the
//! boards over HTTP with the [`BoardClient`]: in sim mode to the virtual boards on
//! loopback, which move the simulated devices; in live mode to the real boards, and the simulation becomes a
//! mirror of the real track ([`crate::track::mirror`]): devices follow acknowledged commands, trains follow the
//! sensor reports, and the interlocking's occupancy comes from it. The track polls every board's health, and
//! when a board comes back (or at start-up, or after a switch of mode) it re-sends the desired state of the
//! board's devices one at a time, 500 ms apart, refusing new commands for them until it is done.
//!
//! Housekeeping (health polls, restores) gives way to commands: each board takes one request at a time, and a
//! command that wants the board makes a poll or restore step holding it give way at once
//! ([`crate::boards2021::client::Turn::unless_preempted`]). A healthy servo board's poll drives one of its devices to its
//! desired state in turn (a servo in place does not move), so every device is re-asserted once per round of
//! polls; an answer whose clock reads as seconds since boot shows a reboot, and the board is restored at once
//! ([`core`]).
//!
//! A train with an onboard speed controller has its speed sent to the controller over the 2021 gRPC
//! ([`crate::controllers2021::client`]), in sim mode to a virtual controller that drives the simulated train
//! ([`crate::controllers2021::virtual_controller`]), in live mode to the real one (and the mirror follows an acknowledged
//! speed); speed supervision reaches it the same way, so a real train closing on another is slowed and stopped.
//! A train without a controller has its speed set in the simulation only, and in live mode runs at its own
//! speed: only the stop rails stop it.
//!
//! The bookkeeping (mode, desired states, health, restore queues) is plain data in [`core::TrackCore`]; this
//! module is its thin tokio driver: one task per servo board (health polls and restore steps), one that
//! supervises train speeds and publishes their positions, one that follows sensor reports, and a thread that
//! pumps the simulation's output.
//!
//! Commands: the interlocking's check is made one command at a time (`checking`, held for the check only, never
//! across IO), against the track as it is and every device command still on its way (any of which may or may
//! not have been carried out: [`Interlocking::check_pending`]); a command then waits for its board in the order
//! of the checks (`order`, one fair queue per board or controller) and goes, while commands for other boards go
//! at the same time. So a slow board holds up its own commands only.
//!
//! Locks: the core, the mirror, the block word, automatic operation's bookkeeping, the in-flight table and the table of pending simulation commands each sit
//! behind their own mutex, held only for a plain-data call and never two at once, so there is no lock order to
//! keep. Commands hold `mode` for reading across their IO, and a switch of mode holds it for writing, so that
//! a command never sees a switch half done.
//!
//! Its modules, along those seams:
//! - `api`: the [`Track`] handle's methods (start, the live-mode switch, what the doors read, commands);
//! - `command`: the command path (check, fair queue per board, drive, unknown outcomes protected);
//! - `housekeeping`: each board's task (health polls, restore steps);
//! - `sim_link`: the bridge to the simulation thread (snapshots, acknowledged commands, the output pump);
//! - `supervise`: speed supervision and the trains' published positions;
//! - `follow`: live follow (sensor reports into the mirror, the detectors' word on the blocks);
//! - `mqtt`: the 2023 boards' links and their brokers;
//! - `automatic`: automatic operation's driver;
//! - [`core`]: the plain-data bookkeeping (mode, desired states, health, restore queues);
//! - [`mirror`]: the live mirror's plain-data bookkeeping;
//! - `failure`: a command's typed failure.

mod api;
mod automatic;
mod command;
pub mod core;
mod failure;
mod follow;
mod housekeeping;
pub mod mirror;
mod mqtt;
mod sim_link;
mod supervise;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use sim::interlocking::{Interlocking, Rejection, Request};
use sim::layout::{BoardId, Layout, OnOff};
use sim::twin::thread::{Request as SimRequest, SimHandle};
use sim::twin::{Mode, SimError, SimEvent, TrackState};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, broadcast, oneshot};

pub use self::automatic::AUTO_EVERY;

use self::core::TrackCore;

pub use self::failure::Failure;
pub use self::mqtt::{BROKER_WAIT, MQTT_ACT};
use crate::boards2021::client::{self, BoardClient, ClientConfig};
use crate::boards2021::ingest::{Senders, SensorReading};
use crate::boards2021::virtual_board::VirtualBoard;
use crate::boards2023::block_word::{BlockWord, DetectorHealth, Note};
use crate::boards2023::firmware::Build;
use crate::boards2023::link::BoardBroker;
use crate::boards2023::virtual_board::VirtualMqttBoard;
use crate::controllers2021::client::SpeedClient;
use crate::controllers2021::virtual_controller::VirtualController;
use crate::track::mirror::{Divergence, Mirror};

/// Settings of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackConfig {
    /// How often every board's health is polled (a healthy servo board's poll re-drives one of its devices, so
    /// a round over a board's devices takes this times their number).
    pub health_every: Duration,
    /// Spacing between devices when a board's state is (re)sent (servo current at start-up).
    pub init_spacing: Duration,
    /// How often the interlocking's speed supervision runs.
    pub supervise_every: Duration,
    /// Board client settings.
    pub client: ClientConfig,
    /// Whether the interlocking checks commands.
    pub interlocking: bool,
    /// Speed-up of the simulation over real time (1.0 for a real track).
    pub pace: f64,
    /// Simulated time after the mirror passes a sensor within which the real train must report it, ms.
    pub overdue_ms: u64,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            // 400 ms: the 2021 board with the most devices (11) has each one re-asserted within 4.4 s.
            health_every: Duration::from_millis(400),
            // 250 ms: a servo's move (80 degrees, about 0.15 s) and its start-up current are over before the
            // next; a full restore of 11 devices takes 2.75 s, so a board rebooted twice while it was being
            // restored (and the failed step's timeouts) is still back well within 10 s.
            init_spacing: Duration::from_millis(250),
            supervise_every: Duration::from_millis(100),
            client: ClientConfig::default(),
            interlocking: true,
            pace: 1.0,
            overdue_ms: 3000,
        }
    }
}

/// The result of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The device was driven (or the speed set).
    Applied,
    /// The interlocking refused it.
    Rejected(Rejection),
    /// It was allowed but could not be carried out, and why.
    Failed(Failure),
}

/// A servo board's health as the track sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardHealth {
    /// Board name.
    pub name: String,
    /// Address the track drives it at.
    pub address: String,
    /// Whether its last health check or command got an answer.
    pub alive: bool,
    /// Whether its desired state is being re-sent (commands for its devices wait).
    pub restoring: bool,
    /// Whether nothing is known of it (a 2023 board on a broker that does not tell its clients, not heard from
    /// yet): neither up nor down.
    pub unknown: bool,
}

/// What the track reports.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackEvent {
    /// Something happened in the simulation (device moved, sensor passed, collision, ...).
    Sim(SimEvent),
    /// A board's health changed.
    Board(BoardHealth),
    /// A train's speed was commanded (on the 2021 scale), also when it already had that speed.
    Speed {
        /// The train.
        train: usize,
        /// Its speed now.
        speed: i32,
    },
    /// A device command found the device already in the state it asked for (no device moved, so the
    /// simulation reports no change; the 2021 protocol echoes it nonetheless).
    Confirmed {
        /// The device.
        device: usize,
        /// Its state.
        state: OnOff,
    },
    /// In live mode, a real sensor report contradicted the mirror.
    Divergence(Divergence),
    /// The mode changed.
    Mode(Mode),
    /// The operation changed (manual, auto, mixed).
    Operation(sim::auto::Operation),
    /// Automatic operation's plan for each train changed (by train), at this simulation time.
    Plans {
        /// Simulation time, ms.
        time_ms: u64,
        /// Each train's plan.
        plans: Vec<sim::auto::TrainPlan>,
    },
    /// Automatic operation did or found something (a train arrived or departed, a deadlock).
    Auto(sim::auto::AutoEvent),
    /// Automatic operation made a request, with its outcome (for the history: a visitor's or the operator's
    /// request is recorded by whoever made it).
    AutoRequest {
        /// The request.
        request: Request,
        /// What came of it.
        outcome: Outcome,
    },
    /// A hall-sensor board reported a train (accepted by the ingest endpoint), in either mode.
    SensorReport(SensorReading),
    /// Where the trains are now (sent when any train moved, about every `supervise_every`).
    Trains(Vec<TrainPosition>),
    /// What every door shows of a block changed (in live mode its detectors' last report, see
    /// [`crate::boards2023::block_word`]; in sim mode the simulation's).
    Block {
        /// The block.
        block: usize,
        /// Occupied.
        occupied: bool,
    },
    /// A 2023 pass detector's health changed (stuck, chattering, out of service, ok again).
    Detector {
        /// The detector.
        detector: usize,
        /// Its health now.
        health: DetectorHealth,
    },
    /// A 2023 board's detector reported its block over MQTT (`block/{id}/update`).
    BlockReport {
        /// The block.
        block: usize,
        /// `CLOSE` (a train is in it), else `OPEN`.
        close: bool,
    },
}

/// A train's position for views.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainPosition {
    /// The train.
    pub train: usize,
    /// Where its front is.
    pub front: sim::layout::Placement,
    /// Speed it runs at, mm/s.
    pub speed: u32,
    /// Running, crashed, derailed or removed.
    pub status: sim::twin::TrainStatus,
}

impl TrainPosition {
    /// Where a simulated train is.
    pub fn of(layout: &Layout, t: &sim::twin::TrainState) -> TrainPosition {
        TrainPosition { train: t.id, front: t.body.front(layout), speed: t.effective_speed(), status: t.status }
    }
}

/// Everything about the track at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The mode.
    pub mode: Mode,
    /// How the layout is run.
    pub operation: sim::auto::Operation,
    /// Automatic operation's plan for each train, by train.
    pub plans: Vec<sim::auto::TrainPlan>,
    /// Devices and trains (the simulation's, or in live mode the mirror's).
    pub state: TrackState,
    /// Health of every servo board, speed controller and (where the broker tells) 2023 MQTT board, by board id.
    pub boards: Vec<(BoardId, BoardHealth)>,
    /// Every train's speed as last commanded, on the 2021 scale.
    pub speeds: Vec<i32>,
    /// Each 2023 pass detector's health, by detector.
    pub detectors: Vec<DetectorHealth>,
}

/// A board's address in live mode: where `live_boards` (by board name or layout address) maps it, else the
/// layout's.
pub fn live_address(live_boards: &HashMap<String, String>, board: &sim::layout::Board) -> String {
    live_boards.get(&board.name).or_else(|| live_boards.get(&board.address)).unwrap_or(&board.address).clone()
}

/// Where a track starts.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Where virtual boards listen, by board name or layout address (others: a free loopback port).
    pub listen: HashMap<String, SocketAddr>,
    /// Addresses of real boards that differ from the layout's, by board name or layout address.
    pub live_boards: HashMap<String, String>,
    /// The mode at start.
    pub mode: Mode,
    /// Desired device states to start from (e.g. from the journal), by device; default the layout's initial.
    pub desired: Option<Vec<OnOff>>,
    /// Settings.
    pub config: TrackConfig,
    /// The broker of the layout's virtual 2023 MQTT boards (sim mode); without one, their devices move in the
    /// simulation directly.
    pub boards2023: Option<BoardBroker>,
    /// The broker of the real 2023 MQTT boards (live mode); never the virtual boards' one.
    pub live2023: Option<BoardBroker>,
    /// The firmware the virtual 2023 boards run (sim mode).
    pub firmware2023: Build,
    /// How the layout is run at start.
    pub operation: sim::auto::Operation,
    /// Mixed operation: how long a station or train stays a visitor's after their last command.
    pub quiet: Duration,
}

/// Mixed operation's quiet period by default.
pub const QUIET: Duration = Duration::from_secs(30);

impl Default for Setup {
    fn default() -> Self {
        Setup {
            listen: HashMap::new(),
            live_boards: HashMap::new(),
            mode: Mode::Sim,
            desired: None,
            config: TrackConfig::default(),
            boards2023: None,
            live2023: None,
            firmware2023: Build::default(),
            operation: sim::auto::Operation::Manual,
            quiet: QUIET,
        }
    }
}

/// Why a switch of mode was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// Boards of the target track do not answer (switch with `force` to go anyway).
    #[error("boards not answering: {}", .0.join(", "))]
    Unhealthy(Vec<String>),
    /// The twin cannot drive this track live (yet).
    #[error("{0}")]
    Unsupported(String),
}

/// What a switch of mode checked and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchReport {
    /// The mode now.
    pub mode: Mode,
    /// Each board of the target track, with its address and whether it answered the health check.
    pub checked: Vec<(String, String, bool)>,
}

struct Inner {
    layout: Arc<Layout>,
    interlocking: Interlocking,
    config: TrackConfig,
    sim: Sender<SimRequest>,
    client: BoardClient,
    speed: SpeedClient,
    core: Mutex<TrackCore>,
    mirror: Mutex<Mirror>,
    events: broadcast::Sender<TrackEvent>,
    readings: UnboundedSender<SensorReading>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<(), SimError>>>>,
    next_id: AtomicU64,
    /// Held for reading by every command across its IO, for writing by a switch of mode.
    mode_lock: tokio::sync::RwLock<()>,
    /// Held while one command is checked (never across IO).
    checking: tokio::sync::Mutex<()>,
    /// Device commands checked and not yet carried out (or failed), by ticket.
    in_flight: Mutex<Vec<(u64, usize, OnOff)>>,
    /// Bounds the device commands in flight (the check looks at every combination of theirs).
    in_flight_slots: tokio::sync::Semaphore,
    /// One fair queue per board (servo board or controller, by board id): its commands go in the order of
    /// their checks.
    order: Vec<Arc<tokio::sync::Mutex<()>>>,
    /// Wakes a board's task when its restore is queued (by board id).
    wake: HashMap<BoardId, Notify>,
    /// Told whenever a restore step is done.
    restored: Notify,
    /// The 2023 MQTT boards' links, with their brokers.
    mqtt: std::sync::OnceLock<mqtt::Mqtt>,
    /// The operation and automatic operation's bookkeeping.
    automatic: Mutex<automatic::Automatic>,
    /// The hardware's word on the blocks beside the mirror's.
    word: Mutex<BlockWord>,
    /// When the track started (the detectors' clock).
    epoch: Instant,
}

/// A running track (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Track {
    inner: Arc<Inner>,
    boards: Vec<VirtualBoard>,
    controllers: Vec<VirtualController>,
    senders: Senders,
    sim: Arc<Mutex<Option<SimHandle>>>,
}

impl Inner {
    /// The hardware's word on the blocks, for one plain-data call.
    fn word(&self) -> std::sync::MutexGuard<'_, BlockWord> {
        self.word.lock().expect("block word")
    }

    /// Milliseconds since the track started.
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Tells subscribers what the block word noted.
    fn tell(&self, notes: Vec<Note>) {
        for note in notes {
            let _ = self.events.send(match note {
                Note::Block { block, occupied } => TrackEvent::Block { block, occupied },
                Note::Detector { detector, health } => TrackEvent::Detector { detector, health },
                Note::Supplied { block, ahead } => TrackEvent::Divergence(Divergence::MissedOpen { block, ahead }),
            });
        }
    }

    /// The core, for one plain-data call.
    fn core(&self) -> std::sync::MutexGuard<'_, TrackCore> {
        self.core.lock().expect("track core")
    }

    /// Tells subscribers of a board's new health, if it changed. No subscriber is not an error.
    fn announce(&self, changed: Option<BoardHealth>) {
        if let Some(h) = changed {
            let _ = self.events.send(TrackEvent::Board(h));
        }
    }

    /// Where `board` (a servo board or a speed controller) is driven in the current mode, and whether that is
    /// the real track.
    fn target(&self, board: BoardId) -> (String, bool) {
        let core = self.core();
        (core.address(board).to_string(), core.mode() == Mode::Live)
    }

    /// A board (or controller) that did not answer, or gave an answer it never gives, is marked down.
    fn down_unless_answered(&self, board: BoardId, failure: &client::Failure) {
        if failure.transient() {
            let changed = self.core().unreachable(board);
            self.announce(changed);
        }
    }

    /// A servo board answered with its clock: one that reads as seconds since boot shows it rebooted, and it
    /// is restored.
    fn answered(&self, board: BoardId, clock: i64) {
        let mut core = self.core();
        if core.rebooted(board, clock) {
            let changed = core.polled(board, true, true, Instant::now());
            drop(core);
            self.announce(changed);
            self.wake[&board].notify_one();
        }
    }
}
