//! The one track interface the gateway uses, whatever the track is.
//!
//! A [`Track`] owns a simulation running paced to the wall clock, virtual boards on top of it, and the
//! addresses of the real boards. Every command passes the interlocking, then device commands go to the
//! boards over HTTP with the [`BoardClient`](crate::client::BoardClient): in sim mode to the virtual boards on
//! loopback, which move the simulated devices; in live mode to the real boards, and the simulation becomes a
//! mirror of the real track ([`crate::mirror`]): devices follow acknowledged commands, trains follow the
//! sensor reports, and the interlocking's occupancy comes from it. The track polls every board's health, and
//! when a board comes back (or at start-up, or after a switch of mode) it re-sends the desired state of the
//! board's devices one at a time, 500 ms apart, refusing new commands for them until it is done.
//!
//! Housekeeping (health polls, restores) gives way to commands: each board takes one request at a time, and a
//! command that wants the board makes a poll or restore step holding it give way at once
//! ([`crate::client::Turn::unless_preempted`]). A healthy servo board's poll drives one of its devices to its
//! desired state in turn (a servo in place does not move), so every device is re-asserted once per round of
//! polls; an answer whose clock reads as seconds since boot shows a reboot, and the board is restored at once
//! ([`core`]).
//!
//! A train with an onboard speed controller has its speed sent to the controller over the 2021 gRPC
//! ([`crate::speed`]), in sim mode to a virtual controller that drives the simulated train
//! ([`crate::virtual_controllers`]), in live mode to the real one (and the mirror follows an acknowledged
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

mod automatic;
pub mod core;
mod failure;
mod mqtt;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use sim::interlocking::{Interlocking, Rejection, Request, on_scale};
use sim::layout::{BoardId, BoardKind, Layout, OnOff};
use sim::track::DevicePosition;
use sim::twin::thread::{Output, Request as SimRequest, SimHandle};
use sim::twin::{SimCommand, SimError, SimEvent, TrackState};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{Notify, broadcast, oneshot};

pub use self::automatic::AUTO_EVERY;
use self::core::{Next, Poll, RestoreStep, TrackCore};
pub use self::failure::Failure;
pub use self::mqtt::{BROKER_WAIT, MQTT_ACT};
use crate::block_word::{BlockWord, DetectorHealth, Note};
use crate::boards2023::BoardBroker;
use crate::client::{self, BoardClient, ClientConfig, Priority, Turn, servo_command};
use crate::firmware2023::Build;
use crate::ingest::{Senders, SensorReading};
use crate::mirror::{Divergence, Mirror};
use crate::protocol::BoardCommand;
use crate::rig::{Rig, RigError};
use crate::speed::SpeedClient;
use crate::virtual_boards::VirtualBoard;
use crate::virtual_controllers::VirtualController;
use crate::virtual_mqtt_boards::VirtualMqttBoard;

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

/// Which track the commands drive; `sim` or `live` in the protocols (serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The simulated track behind virtual boards.
    Sim,
    /// The real boards; the simulation mirrors them.
    Live,
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
    /// [`crate::block_word`]; in sim mode the simulation's).
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

impl Track {
    /// Starts a track: the simulation and its virtual boards, and the real boards' addresses. Every device is
    /// then initialised through its board, in the starting mode.
    pub async fn start(layout: Arc<Layout>, setup: Setup) -> Result<Track, RigError> {
        let config = setup.config;
        let rig = Rig::start(layout.clone(), &setup.listen, config.pace).await?;
        let sim_addresses = rig.addresses();
        let Rig { sim: handle, boards, controllers, .. } = rig;
        let live_addresses: Vec<String> = layout.boards.iter().map(|b| live_address(&setup.live_boards, b)).collect();
        let senders = Senders::new(&live_addresses);
        let desired = setup
            .desired
            .filter(|d| d.len() == layout.devices.len())
            .unwrap_or_else(|| layout.devices.iter().map(|d| d.initial).collect());
        let core = TrackCore::new(
            &layout,
            setup.mode,
            desired,
            [sim_addresses, live_addresses],
            config.init_spacing,
            Instant::now(),
        );
        let order = layout.boards.iter().map(|_| Arc::default()).collect();
        let mut word = BlockWord::new(&layout, first_blocks(&handle.requests).await?);
        word.set_live(setup.mode == Mode::Live);
        word.set_pace(config.pace);
        let driven: Vec<BoardId> = core.health().into_iter().map(|(id, _)| id).collect();
        let (events, _) = broadcast::channel(4096);
        let (readings_tx, readings_rx) = tokio::sync::mpsc::unbounded_channel();
        let automatic = automatic::Automatic::new(&layout, setup.operation, setup.quiet);
        let inner = Arc::new(Inner {
            interlocking: Interlocking::new(layout.clone(), config.interlocking),
            core: Mutex::new(core),
            mirror: Mutex::new(Mirror::new(&layout, config.overdue_ms)),
            layout,
            config,
            sim: handle.requests.clone(),
            client: BoardClient::new(config.client),
            speed: SpeedClient::new(config.client),
            events,
            readings: readings_tx,
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            mode_lock: tokio::sync::RwLock::new(()),
            checking: tokio::sync::Mutex::new(()),
            in_flight: Mutex::default(),
            in_flight_slots: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            order,
            wake: driven.iter().map(|&b| (b, Notify::new())).collect(),
            restored: Notify::new(),
            mqtt: std::sync::OnceLock::new(),
            automatic: Mutex::new(automatic),
            word: Mutex::new(word),
            epoch: Instant::now(),
        });
        if setup.boards2023.is_some() || setup.live2023.is_some() {
            let (sim, live) = (setup.boards2023.as_ref(), setup.live2023.as_ref());
            mqtt::start(&inner, sim, live, setup.firmware2023, handle.requests.clone()).await;
        }
        pump(inner.clone(), handle.outputs.clone());
        let track = Track { inner, boards, controllers, senders, sim: Arc::new(Mutex::new(Some(handle))) };
        for board in driven {
            tokio::spawn(run_board(Arc::downgrade(&track.inner), board));
        }
        tokio::spawn(watch_trains(Arc::downgrade(&track.inner)));
        tokio::spawn(follow(Arc::downgrade(&track.inner), readings_rx));
        tokio::spawn(automatic::run(Arc::downgrade(&track.inner), track.inner.layout.clone()));
        tokio::spawn(watch_blocks(Arc::downgrade(&track.inner)));
        Ok(track)
    }

    /// Where sensor reports go (the ingest endpoint's channel); in live mode they drive the mirror.
    pub fn readings(&self) -> UnboundedSender<SensorReading> {
        self.inner.readings.clone()
    }

    /// Where each sensor board's reports must come from (the real boards' addresses), for the ingest endpoint.
    pub fn senders(&self) -> Senders {
        self.senders.clone()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.core().mode()
    }

    /// Switches between the simulated and the real track. Commands that arrive meanwhile wait and then go
    /// to the new track: none is lost or applied twice. To live: the real boards' health is checked first,
    /// and the switch refused with the list of boards that do not answer unless `force`. Then the desired
    /// state of every device is pushed to the target boards, and commands are routed to them.
    pub async fn switch_mode(&self, to: Mode, force: bool) -> Result<SwitchReport, SwitchError> {
        let inner = &self.inner;
        let has_mqtt = inner.layout.boards.iter().any(|b| b.kind == BoardKind::Mqtt);
        let mut checked = match (to, inner.mqtt.get()) {
            (Mode::Live, Some(mqtt)) => mqtt.check_live().map_err(SwitchError::Unsupported)?,
            (Mode::Live, None) if has_mqtt => {
                return Err(SwitchError::Unsupported("the layout's 2023 boards have no broker".into()));
            }
            _ => Vec::new(),
        };
        let _switch = inner.mode_lock.write().await;
        let targets = inner.core().addresses_in(to);
        for (b, address) in targets {
            let alive = reachable(inner, b, &address).await;
            checked.push((inner.layout.boards[b].name.clone(), address, alive));
        }
        checked.sort();
        if self.mode() == to {
            return Ok(SwitchReport { mode: to, checked });
        }
        let down: Vec<String> = checked.iter().filter(|c| !c.2).map(|c| format!("{} ({})", c.0, c.1)).collect();
        if !down.is_empty() && !force {
            return Err(SwitchError::Unhealthy(down));
        }
        let changed = inner.core().switch(to, Instant::now());
        for h in changed {
            let _ = inner.events.send(TrackEvent::Board(h));
        }
        if let Some(mqtt) = inner.mqtt.get() {
            mqtt.switched(inner, to);
        }
        let notes = inner.word().set_live(to == Mode::Live);
        inner.tell(notes);
        for wake in inner.wake.values() {
            wake.notify_one();
        }
        // Every board's restore runs to its end (done, or given up on a board that does not answer).
        loop {
            let step = inner.restored.notified();
            if !inner.core().restoring() {
                break;
            }
            step.await;
        }
        let _ = inner.events.send(TrackEvent::Mode(to));
        Ok(SwitchReport { mode: to, checked })
    }

    /// The layout of the track.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.inner.layout
    }

    /// The virtual boards (sim mode).
    pub fn virtual_boards(&self) -> &[VirtualBoard] {
        &self.boards
    }

    /// The virtual speed controllers (sim mode).
    pub fn virtual_controllers(&self) -> &[VirtualController] {
        &self.controllers
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<TrackEvent> {
        self.inner.events.subscribe()
    }

    /// Health of every servo board, speed controller and (where the broker tells) 2023 MQTT board, by board id.
    pub fn boards(&self) -> Vec<(BoardId, BoardHealth)> {
        let mut all = self.inner.core().health();
        if let Some(mqtt) = self.inner.mqtt.get() {
            all.extend(mqtt.health(self.mode()));
            all.sort_by_key(|(id, _)| *id);
        }
        all
    }

    /// A device's desired state: the last one commanded (or started from).
    pub fn desired(&self, device: usize) -> OnOff {
        self.inner.core().desired(device)
    }

    /// A train's speed: the last one commanded (or started from), on the 2021 scale.
    pub fn speed(&self, train: usize) -> i32 {
        self.inner.core().wanted_speed(train)
    }

    /// Every train's speed as [`Track::speed`] gives it, by train.
    pub fn speeds(&self) -> Vec<i32> {
        self.inner.core().wanted_speeds()
    }

    /// Whether every board is alive and restored.
    pub fn ready(&self) -> bool {
        self.inner.core().ready()
    }

    /// The mode, the devices and trains, and the boards' health.
    pub async fn snapshot(&self) -> Snapshot {
        let (operation, plans) = self.automatic();
        Snapshot {
            mode: self.mode(),
            operation,
            plans,
            state: self.state().await,
            boards: self.boards(),
            speeds: self.speeds(),
            detectors: self.detectors(),
        }
    }

    /// Like [`Track::state`], but `None` once the track is stopped.
    pub async fn try_state(&self) -> Option<TrackState> {
        let mut state = sim_state(&self.inner).await?;
        state.blocks = self.inner.word().shown_view(&state.blocks);
        Some(state)
    }

    /// The state of the simulated track (in live mode the mirror), once every command sent so far has been
    /// taken; its blocks as every door shows them (in live mode the detectors' last reports).
    pub async fn state(&self) -> TrackState {
        self.try_state().await.expect("the track's simulation runs until the track is stopped")
    }

    /// Each block as the interlocking takes it (occupied if the hardware or the mirror says so, or a faulty
    /// detector keeps it); `None` once the track is stopped.
    pub async fn held_blocks(&self) -> Option<Vec<bool>> {
        Some(try_state(&self.inner).await?.blocks)
    }

    /// Each 2023 pass detector's health, by detector.
    pub fn detectors(&self) -> Vec<DetectorHealth> {
        self.inner.word().health()
    }

    /// The detectors' counts so far (reports taken and ignored, faults and phantoms found).
    pub fn detector_counts(&self) -> crate::block_word::Counts {
        self.inner.word().counts()
    }

    /// The operator takes a detector out of service (its reports ignored, so a stuck one no longer holds its
    /// block) or puts it back; what was done in words, or why not.
    pub fn set_detector_in_service(&self, name: &str, in_service: bool) -> Result<String, String> {
        let layout = &self.inner.layout;
        let Some(detector) = crate::block_word::detector_id(layout, name) else {
            return Err(format!(
                "the layout has no detector `{name}` (a block's id and CLOSE or OPEN, e.g. `{}`)",
                layout.blocks.first().map_or("chofu_down_b1/CLOSE".into(), |b| format!("{}/CLOSE", b.id))
            ));
        };
        let notes = self.inner.word().set_in_service(detector, in_service);
        let done = !notes.is_empty();
        self.inner.tell(notes);
        let name = crate::block_word::detector_name(layout, detector);
        Ok(match (done, in_service) {
            (true, false) => format!("detector {name} out of service: its reports are ignored"),
            (true, true) => format!("detector {name} back in service"),
            (false, false) => format!("detector {name} was out of service already"),
            (false, true) => format!("detector {name} was in service already"),
        })
    }

    /// The operator places a train in a block (the mirror's train, in live mode, where the hardware says a
    /// train is); what was done, or why not.
    pub async fn place_in_block(&self, train: &str, block: &str) -> Result<String, String> {
        let layout = &self.inner.layout;
        let t =
            layout.trains.iter().position(|t| t.name == train).ok_or(format!("the layout has no train `{train}`"))?;
        let b = layout.block_id(block).ok_or(format!("the layout has no block `{block}`"))?;
        let state = sim_state(&self.inner).await.ok_or(SimError::Stopped.to_string())?;
        let front = crate::mirror::in_block(layout, &state, b, layout.trains[t].length)
            .ok_or(format!("block {block} has no entry and exit detector on one way to place a train between"))?;
        self.inner.word().placed(b, self.inner.now_ms());
        sim_command(&self.inner, SimCommand::Place { train: t, front }).await.map_err(|e| e.to_string())?;
        Ok(format!("{train} placed in block {block}"))
    }

    /// A visitor's command: refused under automatic operation (in mixed operation it holds its station or
    /// train), else checked with the interlocking and carried out.
    pub async fn apply(&self, req: Request) -> Outcome {
        let visitor = self.inner.automatic.lock().expect("automatic").visitor(&self.inner.layout, &req, Instant::now());
        if let Err(r) = visitor {
            return Outcome::Rejected(r);
        }
        carry_out(&self.inner, req).await
    }

    /// Carries out an operator's request (emergency stop, reset): as [`Track::apply`], whatever the operation.
    pub async fn apply_as_operator(&self, req: Request) -> Outcome {
        carry_out(&self.inner, req).await
    }

    /// How the layout is run, and automatic operation's plan for each train (by train).
    pub fn automatic(&self) -> (sim::auto::Operation, Vec<sim::auto::TrainPlan>) {
        let automatic = self.inner.automatic.lock().expect("automatic");
        (automatic.operation(), automatic.plans())
    }

    /// Sets how the layout is run (the operator's); told to subscribers if it changed.
    pub fn set_operation(&self, operation: sim::auto::Operation) {
        if self.inner.automatic.lock().expect("automatic").set(operation) {
            let _ = self.inner.events.send(TrackEvent::Operation(operation));
        }
    }

    /// Stops the simulation (the virtual boards stop with the runtime).
    pub fn stop(&self) {
        if let Some(handle) = self.sim.lock().expect("sim handle").take() {
            handle.stop();
        }
        if let Some(mqtt) = self.inner.mqtt.get() {
            mqtt.stop();
        }
    }

    /// The virtual 2023 boards (sim mode with a boards' broker), by name.
    pub fn virtual_mqtt_boards(&self) -> Vec<VirtualMqttBoard> {
        self.inner.mqtt.get().map(|m| m.virtual_boards()).unwrap_or_default()
    }

    /// Messages on the boards' broker the twin could not read so far (0 without a boards' broker).
    pub fn unreadable_mqtt(&self) -> u64 {
        self.inner.mqtt.get().map_or(0, |m| m.unreadable())
    }
}

/// Carries out a request checked by the interlocking (see [`Track::apply`]), whoever asks it.
async fn carry_out(inner: &Arc<Inner>, req: Request) -> Outcome {
    let _mode = inner.mode_lock.read().await;
    // A place among the device commands in flight (their combinations are checked).
    let _slot = match req {
        Request::Device { .. } => Some(inner.in_flight_slots.acquire().await.expect("never closed")),
        Request::Speed { .. } => None,
    };
    let checked = {
        let _check = inner.checking.lock().await;
        let Some(now) = try_state(inner).await else { return Outcome::Failed(SimError::Stopped.into()) };
        let pending: Vec<(usize, OnOff)> =
            inner.in_flight.lock().expect("in flight").iter().map(|&(_, d, s)| (d, s)).collect();
        if let Err(r) = inner.interlocking.check_pending(&req, &now, &pending) {
            return Outcome::Rejected(r);
        }
        match req {
            Request::Device { device, state } => {
                let board = inner.layout.devices[device].board;
                if let Err(reason) = inner.core().admit(board) {
                    return Outcome::Failed(reason);
                }
                let ticket = InFlight::new(inner, device, state);
                let order = queue_now(inner.order[board].clone().lock_owned()).await;
                Checked::Device { device, state, was: now.devices[device], ticket, order }
            }
            Request::Speed { train, speed } => match inner.layout.trains[train].controller {
                Some(board) => {
                    if let Err(reason) = inner.core().admit(board) {
                        return Outcome::Failed(reason);
                    }
                    let order = queue_now(inner.order[board].clone().lock_owned()).await;
                    Checked::Controller { train, speed, order }
                }
                None if inner.core().mode() == Mode::Live => {
                    return Outcome::Failed(Failure::NoController { train: inner.layout.trains[train].name.clone() });
                }
                // Sent now, so that speeds reach the simulation in the order of their checks.
                None => {
                    let ack = sim_send(inner, Request::Speed { train, speed }.command(&inner.layout));
                    Checked::Simulation { train, speed, ack }
                }
            },
        }
    };
    let (train, speed, result) = match checked {
        Checked::Device { device, state, was, ticket, order } => {
            let _order = order.wait().await;
            let outcome = command_device(inner, device, state).await;
            if outcome == Outcome::Applied && was == DevicePosition::from(state) {
                let _ = inner.events.send(TrackEvent::Confirmed { device, state });
            }
            drop(ticket);
            return outcome;
        }
        Checked::Controller { train, speed, order } => {
            let _order = order.wait().await;
            let sent = inner.core().controller_speed(train, speed);
            (train, speed, control(inner, train, sent).await.map_err(Failure::from))
        }
        Checked::Simulation { train, speed, ack } => (train, speed, sim_ack(ack).await.map_err(Failure::from)),
    };
    match result {
        Ok(()) => {
            inner.core().speed_commanded(train, speed);
            let _ = inner.events.send(TrackEvent::Speed { train, speed });
            Outcome::Applied
        }
        Err(reason) => Outcome::Failed(reason),
    }
}

/// At most this many device commands are in flight at once (a check looks at up to 2^this combinations).
const MAX_IN_FLIGHT: usize = 6;

/// A command that passed the check, with its place in its board's queue.
enum Checked {
    /// A device command, in flight until its ticket is dropped.
    Device { device: usize, state: OnOff, was: DevicePosition, ticket: InFlight, order: Queued<OrderTurn> },
    /// A speed for a train's controller.
    Controller { train: usize, speed: i32, order: Queued<OrderTurn> },
    /// A speed for a train without a controller, sent to the simulation.
    Simulation { train: usize, speed: i32, ack: oneshot::Receiver<Result<(), SimError>> },
}

/// A board's place in the order of commands.
type OrderTurn = tokio::sync::OwnedMutexGuard<()>;

/// A device command in flight: in the table the check looks at until dropped.
struct InFlight {
    inner: Arc<Inner>,
    ticket: u64,
}

impl InFlight {
    fn new(inner: &Arc<Inner>, device: usize, state: OnOff) -> InFlight {
        let ticket = inner.next_id.fetch_add(1, Ordering::Relaxed);
        inner.in_flight.lock().expect("in flight").push((ticket, device, state));
        InFlight { inner: inner.clone(), ticket }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.in_flight.lock().expect("in flight").retain(|(t, _, _)| *t != self.ticket);
    }
}

/// A future that has taken its place in a fair queue (polled once), to be awaited later.
enum Queued<T> {
    Ready(T),
    Waiting(std::pin::Pin<Box<dyn Future<Output = T> + Send>>),
}

impl<T> Queued<T> {
    async fn wait(self) -> T {
        match self {
            Queued::Ready(out) => out,
            Queued::Waiting(f) => f.await,
        }
    }
}

/// Polls `fut` once, so that it takes its place in the queue it waits in (tokio's locks are fair), and hands
/// it back to be awaited later.
async fn queue_now<T>(fut: impl Future<Output = T> + Send + 'static) -> Queued<T> {
    let mut fut: std::pin::Pin<Box<dyn Future<Output = T> + Send>> = Box::pin(fut);
    let ready = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match fut.as_mut().poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await;
    ready.map_or(Queued::Waiting(fut), Queued::Ready)
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

/// A device command in its board's turn (a command's: housekeeping gives way): driven, and driven again at
/// once if its outcome is unknown; if still unknown, the commanded state becomes the desired one (see
/// [`uncertain`]).
async fn command_device(inner: &Inner, device: usize, state: OnOff) -> Outcome {
    let board = inner.layout.devices[device].board;
    if inner.layout.boards[board].kind == BoardKind::Mqtt {
        return mqtt::command(inner, device, state).await;
    }
    let (address, _) = inner.target(board);
    let turn = inner.client.turn(&address, Priority::Command).await;
    match drive(inner, &turn, device, state, Attempts::Retries).await {
        Ok(()) => Outcome::Applied,
        // The board may have moved the servo: say so by making it true, at once.
        Err(f) if f.uncertain() => match drive(inner, &turn, device, state, Attempts::Retries).await {
            Ok(()) => Outcome::Applied,
            Err(again) if again.uncertain() => Outcome::Failed(uncertain(inner, device, state, again).await),
            Err(again) => Outcome::Failed(again.into()),
        },
        Err(f) => Outcome::Failed(f.into()),
    }
}

/// How many attempts a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempts {
    /// One (a health poll: the next poll comes soon).
    One,
    /// The client's retries.
    Retries,
}

/// Sends a device's state to its board in `turn`; on success it is the device's desired state (set while
/// the turn is held, so that no poll re-drives an older one in between) and in live mode the mirror follows
/// it (in sim mode the virtual board moved the device). A board that does not answer is marked down; one
/// whose clock shows a reboot is restored.
async fn drive(
    inner: &Inner,
    turn: &Turn,
    device: usize,
    state: OnOff,
    attempts: Attempts,
) -> Result<(), client::Failure> {
    let d = &inner.layout.devices[device];
    let cmd = servo_command(d, state);
    let result = match attempts {
        Attempts::One => turn.attempt(&cmd).await,
        Attempts::Retries => turn.send(&cmd).await,
    };
    match &result {
        Ok(clock) => {
            if inner.core().mode() == Mode::Live {
                let _ = sim_command(inner, SimCommand::SetDevice { device, state }).await;
            }
            inner.core().commanded(device, state);
            inner.answered(d.board, *clock);
        }
        Err(f) => inner.down_unless_answered(d.board, f),
    }
    result.map(|_| ())
}

/// Automatic protection: drives a device (a stop rail raised behind a train) through its board, as a command
/// (housekeeping gives way to it), and makes it the device's desired state once done.
async fn protect(inner: Arc<Inner>, device: usize, state: OnOff) {
    if inner.layout.boards[inner.layout.devices[device].board].kind == BoardKind::Mqtt {
        let _ = mqtt::command(&inner, device, state).await;
        return;
    }
    let (address, _) = inner.target(inner.layout.devices[device].board);
    let turn = inner.client.turn(&address, Priority::Command).await;
    let _ = drive(&inner, &turn, device, state, Attempts::Retries).await;
}

/// A device command whose outcome is unknown (the board got it, its answers did not come back, twice): the
/// commanded state becomes the desired one, which the board's restore drives as soon as it answers again; in
/// live mode the mirror shows the device between positions until then (the interlocking treats that as unsafe).
/// Returns the failure, saying so.
async fn uncertain(inner: &Inner, device: usize, state: OnOff, failure: client::Failure) -> Failure {
    let d = &inner.layout.devices[device];
    inner.core().commanded(device, state);
    if inner.core().mode() == Mode::Live {
        let angle = (0..).find(|a| *a != d.on_angle && *a != d.off_angle).expect("a third angle");
        let _ = sim_command(inner, SimCommand::SetAngle { device, angle }).await;
    }
    Failure::Uncertain { failure, device: d.name.clone(), will_be: d.kind.words(state) }
}

/// Sends a train's controller the speed `speed` (already capped by speed supervision); a controller that does
/// not answer is marked down. In live mode the mirror follows an acknowledged speed (in sim mode the virtual
/// controller set the simulated train's speed).
async fn control(inner: &Inner, train: usize, speed: i32) -> Result<(), client::Failure> {
    let t = &inner.layout.trains[train];
    let board = t.controller.expect("only trains with a controller are controlled");
    let (address, live) = inner.target(board);
    let result = inner.speed.set(&address, &t.name, speed).await;
    match &result {
        Ok(()) => {
            inner.core().controller_took(train, speed);
            if live {
                let _ = sim_command(inner, Request::Speed { train, speed }.command(&inner.layout)).await;
            }
        }
        Err(f) => inner.down_unless_answered(board, f),
    }
    result
}

/// The state as the interlocking and automatic operation take it (a block occupied if the hardware or the
/// mirror says so), or `None` once the simulation has stopped (the background tasks end then).
async fn try_state(inner: &Inner) -> Option<TrackState> {
    let mut state = sim_state(inner).await?;
    state.blocks = inner.word().held_view(&state.blocks);
    Some(state)
}

/// The simulation's own state (in live mode the mirror's), or `None` once it has stopped.
async fn sim_state(inner: &Inner) -> Option<TrackState> {
    snapshot_of(&inner.sim).await
}

async fn snapshot_of(sim: &Sender<SimRequest>) -> Option<TrackState> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reply = move |state| {
        // A caller that stopped waiting for its snapshot is not an error.
        let _ = tx.send(state);
    };
    sim.send(SimRequest::SnapshotThen(Box::new(reply))).ok()?;
    rx.await.ok()
}

/// The simulation's blocks as it starts.
async fn first_blocks(sim: &Sender<SimRequest>) -> Result<Vec<bool>, RigError> {
    let state = snapshot_of(sim).await.ok_or(RigError::Stopped)?;
    Ok(state.blocks)
}

/// Sends a command to the simulation; its result comes on the receiver (`Stopped` once the simulation has
/// stopped: a task may still act while the track shuts down).
fn sim_send(inner: &Inner, cmd: SimCommand) -> oneshot::Receiver<Result<(), SimError>> {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    inner.pending.lock().expect("pending").insert(id, tx);
    if inner.sim.send(SimRequest::Command { id, cmd }).is_err()
        && let Some(tx) = inner.pending.lock().expect("pending").remove(&id)
    {
        let _ = tx.send(Err(SimError::Stopped));
    }
    rx
}

/// The result of a command sent with [`sim_send`] (`Stopped` if the simulation stopped before answering).
async fn sim_ack(rx: oneshot::Receiver<Result<(), SimError>>) -> Result<(), SimError> {
    rx.await.unwrap_or(Err(SimError::Stopped))
}

async fn sim_command(inner: &Inner, cmd: SimCommand) -> Result<(), SimError> {
    sim_ack(sim_send(inner, cmd)).await
}

/// Moves simulation output into the track: acks to their callers, events to subscribers, and the
/// interlocking's automatic protection (raise a stop rail behind a passing train) to the boards.
fn pump(inner: Arc<Inner>, outputs: crossbeam_channel::Receiver<Output>) {
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("track-pump".into())
        .spawn(move || {
            for output in outputs {
                match output {
                    Output::Ack { id, result, .. } => {
                        if let Some(tx) = inner.pending.lock().expect("pending").remove(&id) {
                            let _ = tx.send(result);
                        }
                    }
                    Output::Event(e) => {
                        if let (sim::twin::EventKind::DetectorChanged { detector, closed }, Some(mqtt)) =
                            (e.kind, inner.mqtt.get())
                        {
                            mqtt.detector_changed(detector, closed);
                        }
                        if let sim::twin::EventKind::BlockChanged { block, occupied } = e.kind {
                            let notes = inner.word().mirror_changed(block, occupied, inner.now_ms());
                            inner.tell(notes);
                        }
                        if inner.core().mode() == Mode::Live {
                            inner.mirror.lock().expect("mirror").on_mirror_event(&inner.layout, &e);
                        }
                        for cmd in inner.interlocking.protect_after(std::slice::from_ref(&e)) {
                            if let SimCommand::SetDevice { device, state } = cmd {
                                runtime.spawn(protect(inner.clone(), device, state));
                            }
                        }
                        let _ = inner.events.send(TrackEvent::Sim(e));
                    }
                }
            }
        })
        .expect("spawn pump thread");
}

/// One servo board's (or controller's) task: polls its health every `health_every` and carries out its
/// restore steps as the core asks for them, until the track is dropped. Both give way to commands.
async fn run_board(inner: std::sync::Weak<Inner>, board: BoardId) {
    let mut next_poll = Instant::now();
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let now = Instant::now();
        let next = strong.core().next(board, now);
        let wake_at = match next {
            Next::Step(step, number) => {
                // A step that gave way to a command is taken again (after the command).
                if let Some(ok) = restore_step(&strong, board, step).await {
                    let changed = strong.core().step_done(board, number, ok, Instant::now());
                    strong.announce(changed);
                    strong.restored.notify_waiters();
                }
                continue;
            }
            Next::At(at) => at.min(next_poll),
            Next::Idle => next_poll,
        };
        if now >= next_poll {
            if let Some((alive, rebooted)) = poll(&strong, board).await {
                let changed = strong.core().polled(board, alive, rebooted, Instant::now());
                strong.announce(changed);
            }
            next_poll = Instant::now() + strong.config.health_every;
            continue;
        }
        let wake = async { strong.wake[&board].notified().await };
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at.into()) => {}
            _ = wake => {}
        }
    }
}

/// Carries out one restore step as housekeeping; whether the board took it, or `None` if it gave way to a
/// command.
async fn restore_step(inner: &Inner, board: BoardId, step: RestoreStep) -> Option<bool> {
    let (address, _) = inner.target(board);
    match step {
        RestoreStep::SetClock => {
            let turn = inner.client.turn(&address, Priority::Housekeeping).await;
            let set = BoardCommand::SetClock { unix: unix_now() };
            turn.unless_preempted(turn.send(&set)).await.map(|r| r.is_ok())
        }
        RestoreStep::Device(device) => {
            let turn = inner.client.turn(&address, Priority::Housekeeping).await;
            // Read in the turn: a command for the device before it is not undone.
            let state = inner.core().desired(device);
            turn.unless_preempted(drive(inner, &turn, device, state, Attempts::Retries)).await.map(|r| r.is_ok())
        }
        RestoreStep::Speed(train) => {
            let speed = inner.core().controller_speed_now(train);
            Some(control(inner, train, speed).await.is_ok())
        }
    }
}

/// The time now in unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A health poll of `board` as the core says ([`Poll`]), as housekeeping: whether it answered, and whether its
/// clock shows a reboot; `None` if it gave way to a command. A servo board with devices has one of them driven
/// to its desired state (nothing moves if it is there); one being restored, or down, has its clock set; a
/// speed controller is asked for a connection.
async fn poll(inner: &Inner, board: BoardId) -> Option<(bool, bool)> {
    let (address, _) = inner.target(board);
    let poll = inner.core().poll(board);
    match poll {
        Poll::Connect => Some((inner.speed.reachable(&address).await, false)),
        Poll::Clock => Some((inner.client.probe(&address, unix_now()).await?.is_ok(), false)),
        Poll::Device(device) => {
            let turn = inner.client.turn(&address, Priority::Housekeeping).await;
            let state = inner.core().desired(device);
            let result = turn.unless_preempted(drive(inner, &turn, device, state, Attempts::One)).await?;
            // `drive` restored a board whose clock showed a reboot; an answer of any kind means it is there.
            Some((result.as_ref().map_or_else(|f| !f.transient(), |_| true), false))
        }
    }
}

/// Whether the board or controller at `address` answers, by a request that moves nothing (the check before a
/// switch of mode).
async fn reachable(inner: &Inner, board: BoardId, address: &str) -> bool {
    if inner.layout.boards[board].kind == BoardKind::Speed {
        return inner.speed.reachable(address).await;
    }
    loop {
        if let Some(result) = inner.client.probe(address, unix_now()).await {
            return result.is_ok();
        }
    }
}

/// Every `supervise_every`: the interlocking's speed supervision on the simulated track, and the trains'
/// positions published when any moved.
async fn watch_trains(inner: std::sync::Weak<Inner>) {
    let mut last: Vec<TrainPosition> = Vec::new();
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let every = strong.config.supervise_every;
        let Some(state) = try_state(&strong).await else { return };
        supervise(&strong, &state).await;
        publish_positions(&strong, &state, &mut last);
        drop(strong);
        tokio::time::sleep(every).await;
    }
}

/// Slows or stops trains closing on others, as the interlocking's speed supervision says: on the simulated
/// track (or the mirror), and through the train's controller if it has one; and raises the stop rails it says
/// to raise, through their boards.
async fn supervise(inner: &Arc<Inner>, state: &TrackState) {
    for cmd in inner.interlocking.supervise(state) {
        match cmd {
            SimCommand::SetDevice { device, state } => {
                tokio::spawn(protect(inner.clone(), device, state));
            }
            SimCommand::SetSpeedLimit { train, limit } => {
                let _ = sim_command(inner, cmd).await;
                if inner.layout.trains[train].controller.is_none() {
                    continue;
                }
                let limit = limit.map(|l| on_scale(&inner.layout, train, l));
                if let Some(speed) = inner.core().speed_limit(train, limit) {
                    let inner = inner.clone();
                    tokio::spawn(async move { control(&inner, train, speed).await });
                }
            }
            other => {
                let _ = sim_command(inner, other).await;
            }
        }
    }
}

/// Sends the trains' positions if any differs from the `last` sent.
fn publish_positions(inner: &Inner, state: &TrackState, last: &mut Vec<TrainPosition>) {
    let positions: Vec<TrainPosition> = state.trains.iter().map(|t| TrainPosition::of(&inner.layout, t)).collect();
    if positions != *last {
        let _ = inner.events.send(TrackEvent::Trains(positions.clone()));
        *last = positions;
    }
}

/// Every second: faulty detectors that fell silent are healthy again; in live mode, the mirror's trains in a
/// block its detectors reported left ([`crate::block_word::PHANTOM_AFTER_MS`] ago) are shown lost and taken off,
/// so the contradiction ends, and those in a block whose entry detector never confirmed them
/// ([`crate::block_word::CONFIRM_MS`]) are put back before it.
async fn watch_blocks(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(inner) = inner.upgrade() else { return };
        let now = inner.now_ms();
        let notes = inner.word().tick(now);
        inner.tell(notes);
        let phantoms = inner.word().phantoms(now);
        let unconfirmed = inner.word().unconfirmed(now);
        if phantoms.is_empty() && unconfirmed.is_empty() {
            continue;
        }
        let Some(state) = sim_state(&inner).await else { return };
        for block in phantoms {
            for train in crate::mirror::lost_in(&inner.layout, &state, block) {
                if sim_command(&inner, SimCommand::Remove { train }).await.is_ok() {
                    let _ = inner.events.send(TrackEvent::Divergence(Divergence::Lost { train, block }));
                }
            }
        }
        // The mirror's train went where the real one did not: back before the block, where the real one stands.
        for block in unconfirmed {
            let back = crate::mirror::before_block(&inner.layout, &state, block);
            for train in crate::mirror::lost_in(&inner.layout, &state, block) {
                let cmd = match back {
                    Some(front) => SimCommand::Place { train, front },
                    None => SimCommand::Remove { train },
                };
                if sim_command(&inner, cmd).await.is_ok() {
                    inner.word().put_back(block, train, now);
                    let _ = inner.events.send(TrackEvent::Divergence(Divergence::Unconfirmed { train, block }));
                }
            }
        }
    }
}

/// Live mode: snaps mirrored trains to the real sensor reports, and reports divergences (including trains
/// overdue at their next sensor, checked as time passes).
async fn follow(inner: std::sync::Weak<Inner>, mut readings: UnboundedReceiver<SensorReading>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let reading = tokio::select! {
            r = readings.recv() => match r { Some(r) => Some(r), None => return },
            _ = tick.tick() => None,
        };
        let Some(inner) = inner.upgrade() else { return };
        if let Some(r) = reading {
            let _ = inner.events.send(TrackEvent::SensorReport(r));
        }
        if inner.core().mode() != Mode::Live {
            continue;
        }
        let Some(state) = try_state(&inner).await else { return };
        let mut divergences = inner.mirror.lock().expect("mirror").overdue(state.time_ms);
        if let Some(reading) = reading {
            let (snap, divergence) = inner.mirror.lock().expect("mirror").on_reading(&inner.layout, reading, &state);
            if let Some(cmd) = snap {
                let _ = sim_command(&inner, cmd).await;
            }
            divergences.extend(divergence);
        }
        for d in divergences {
            let _ = inner.events.send(TrackEvent::Divergence(d));
        }
    }
}
