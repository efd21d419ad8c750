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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;
use sim::interlocking::{Interlocking, Rejection, Request};
use sim::layout::{BoardId, BoardKind, Layout, OnOff};
use sim::twin::thread::{Output, Request as SimRequest, SimHandle};
use sim::twin::{SimCommand, SimError, SimEvent, TrackState};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{broadcast, oneshot};

use crate::client::{BoardClient, ClientConfig, Failure, servo_command};
use crate::ingest::SensorReading;
use crate::mirror::{Divergence, Mirror};
use crate::protocol::{BoardCommand, ServoOp};
use crate::rig::{Rig, RigError};
use crate::virtual_boards::VirtualBoard;

/// Settings of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackConfig {
    /// How often every board's health is polled.
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
            health_every: Duration::from_secs(1),
            init_spacing: Duration::from_millis(500),
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
    /// It was allowed but could not be carried out; the reason in words.
    Failed(String),
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
}

/// Which track the commands drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// In live mode, a real sensor report contradicted the mirror.
    Divergence(Divergence),
    /// The mode changed.
    Mode(Mode),
    /// A hall-sensor board reported a train (accepted by the ingest endpoint), in either mode.
    SensorReport(SensorReading),
    /// Where the trains are now (sent when any train moved, about every `supervise_every`).
    Trains(Vec<TrainPosition>),
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

/// Everything about the track at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The mode.
    pub mode: Mode,
    /// Devices and trains (the simulation's, or in live mode the mirror's).
    pub state: TrackState,
    /// Health of every servo board, by board id.
    pub boards: Vec<(BoardId, BoardHealth)>,
}

/// Where a track starts.
#[derive(Debug, Clone, PartialEq)]
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
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            listen: HashMap::new(),
            live_boards: HashMap::new(),
            mode: Mode::Sim,
            desired: None,
            config: TrackConfig::default(),
        }
    }
}

/// Why a switch of mode was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// Boards of the target track do not answer (switch with `force` to go anyway).
    #[error("boards not answering: {}", .0.join(", "))]
    Unhealthy(Vec<String>),
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
    sim_addresses: Vec<String>,
    live_addresses: Vec<String>,
    mode: Mutex<Mode>,
    mirror: Mutex<Mirror>,
    desired: Mutex<Vec<OnOff>>,
    health: Mutex<HashMap<BoardId, BoardHealth>>,
    events: broadcast::Sender<TrackEvent>,
    readings: UnboundedSender<SensorReading>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<(), SimError>>>>,
    next_id: AtomicU64,
    commands: tokio::sync::Mutex<()>,
}

/// A running track (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Track {
    inner: Arc<Inner>,
    boards: Vec<VirtualBoard>,
    sim: Arc<Mutex<Option<SimHandle>>>,
}

impl Track {
    /// Starts a track: the simulation and its virtual boards, and the real boards' addresses. Every device is
    /// then initialised through its board, in the starting mode.
    pub async fn start(layout: Arc<Layout>, setup: Setup) -> Result<Track, RigError> {
        let config = setup.config;
        let rig = Rig::start(layout.clone(), &setup.listen, config.pace).await?;
        let sim_addresses = rig.addresses();
        let Rig { sim: handle, boards, .. } = rig;
        let live_addresses: Vec<String> = layout
            .boards
            .iter()
            .map(|b| {
                setup
                    .live_boards
                    .get(&b.name)
                    .or_else(|| setup.live_boards.get(&b.address))
                    .unwrap_or(&b.address)
                    .clone()
            })
            .collect();
        let addresses = if setup.mode == Mode::Sim { &sim_addresses } else { &live_addresses };
        let health = layout
            .boards
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind == BoardKind::Servo)
            .map(|(i, b)| {
                (i, BoardHealth { name: b.name.clone(), address: addresses[i].clone(), alive: true, restoring: true })
            })
            .collect();
        let (events, _) = broadcast::channel(4096);
        let (readings_tx, readings_rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            interlocking: Interlocking::new(layout.clone(), config.interlocking),
            desired: Mutex::new(
                setup
                    .desired
                    .filter(|d| d.len() == layout.devices.len())
                    .unwrap_or_else(|| layout.devices.iter().map(|d| d.initial).collect()),
            ),
            health: Mutex::new(health),
            mirror: Mutex::new(Mirror::new(&layout, config.overdue_ms)),
            layout,
            config,
            sim: handle.requests.clone(),
            client: BoardClient::new(config.client),
            sim_addresses,
            live_addresses,
            mode: Mutex::new(setup.mode),
            events,
            readings: readings_tx,
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            commands: tokio::sync::Mutex::new(()),
        });
        pump(inner.clone(), handle.outputs.clone());
        let track = Track { inner, boards, sim: Arc::new(Mutex::new(Some(handle))) };
        for board in track.inner.health.lock().expect("health").keys().copied().collect::<Vec<_>>() {
            tokio::spawn(restore(track.inner.clone(), board));
        }
        tokio::spawn(watch_health(Arc::downgrade(&track.inner)));
        tokio::spawn(supervise(Arc::downgrade(&track.inner)));
        tokio::spawn(follow(Arc::downgrade(&track.inner), readings_rx));
        Ok(track)
    }

    /// Where sensor reports go (the ingest endpoint's channel); in live mode they drive the mirror.
    pub fn readings(&self) -> UnboundedSender<SensorReading> {
        self.inner.readings.clone()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        *self.inner.mode.lock().expect("mode")
    }

    /// Switches between the simulated and the real track. Commands that arrive meanwhile wait and then go
    /// to the new track: none is lost or applied twice. To live: the real boards' health is checked first,
    /// and the switch refused with the list of boards that do not answer unless `force`. Then the desired
    /// state of every device is pushed to the target boards, and commands are routed to them.
    pub async fn switch_mode(&self, to: Mode, force: bool) -> Result<SwitchReport, SwitchError> {
        let inner = &self.inner;
        let _turn = inner.commands.lock().await;
        let targets = if to == Mode::Sim { &inner.sim_addresses } else { &inner.live_addresses };
        let boards: Vec<BoardId> = inner.health.lock().expect("health").keys().copied().collect();
        let mut checked = Vec::new();
        for &b in &boards {
            let alive = inner.client.health(&targets[b]).await;
            checked.push((inner.layout.boards[b].name.clone(), targets[b].clone(), alive));
        }
        checked.sort();
        if self.mode() == to {
            return Ok(SwitchReport { mode: to, checked });
        }
        let down: Vec<String> = checked.iter().filter(|c| !c.2).map(|c| format!("{} ({})", c.0, c.1)).collect();
        if !down.is_empty() && !force {
            return Err(SwitchError::Unhealthy(down));
        }
        *inner.mode.lock().expect("mode") = to;
        for &b in &boards {
            let address = targets[b].clone();
            set_health(inner, b, |h| h.address = address);
        }
        let restores: Vec<_> = boards.iter().map(|&b| tokio::spawn(restore(self.inner.clone(), b))).collect();
        for r in restores {
            let _ = r.await;
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

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<TrackEvent> {
        self.inner.events.subscribe()
    }

    /// Health of every servo board, by board id.
    pub fn boards(&self) -> Vec<(BoardId, BoardHealth)> {
        let mut all: Vec<_> = self.inner.health.lock().expect("health").clone().into_iter().collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Whether every board is alive and restored.
    pub fn ready(&self) -> bool {
        self.inner.health.lock().expect("health").values().all(|h| h.alive && !h.restoring)
    }

    /// The mode, the devices and trains, and the boards' health.
    pub async fn snapshot(&self) -> Snapshot {
        Snapshot { mode: self.mode(), state: self.state().await, boards: self.boards() }
    }

    /// Like [`Track::state`], but `None` once the track is stopped.
    pub async fn try_state(&self) -> Option<TrackState> {
        try_state(&self.inner).await
    }

    /// The state of the simulated track, once every command sent so far has been taken.
    pub async fn state(&self) -> TrackState {
        state(&self.inner).await
    }

    /// Checks a command with the interlocking and carries it out.
    pub async fn apply(&self, req: Request) -> Outcome {
        let inner = &self.inner;
        let _turn = inner.commands.lock().await;
        let state = state(inner).await;
        if let Err(r) = inner.interlocking.check(&req, &state) {
            return Outcome::Rejected(r);
        }
        match req {
            Request::Device { device, state } => {
                let board = inner.layout.devices[device].board;
                let health = inner.health.lock().expect("health").get(&board).cloned();
                match health {
                    Some(h) if !h.alive => return Outcome::Failed(format!("board {} is not answering", h.name)),
                    Some(h) if h.restoring => {
                        return Outcome::Failed(format!("board {} is being restored; try again shortly", h.name));
                    }
                    _ => {}
                }
                match drive(inner, device, state).await {
                    Ok(()) => {
                        inner.desired.lock().expect("desired")[device] = state;
                        Outcome::Applied
                    }
                    Err(f) => Outcome::Failed(f.to_string()),
                }
            }
            Request::Speed { .. } => match sim_command(inner, req.command()).await {
                Ok(()) => Outcome::Applied,
                Err(e) => Outcome::Failed(e.to_string()),
            },
        }
    }

    /// Stops the simulation (the virtual boards stop with the runtime).
    pub fn stop(&self) {
        if let Some(handle) = self.sim.lock().expect("sim handle").take() {
            handle.stop();
        }
    }
}

/// Sends a device's state to its board; a board that does not answer is marked down.
async fn drive(inner: &Inner, device: usize, state: OnOff) -> Result<(), Failure> {
    let d = &inner.layout.devices[device];
    let live = *inner.mode.lock().expect("mode") == Mode::Live;
    let result = inner.client.send(&address(inner, d.board), &servo_command(d, state)).await;
    match result {
        // The mirror follows acknowledged commands (in sim mode the virtual board moved the device).
        Ok(_) if live => {
            let _ = sim_command(inner, SimCommand::SetDevice { device, state }).await;
        }
        Err(Failure::Unreachable(_) | Failure::Timeout(_) | Failure::BadAnswer { .. }) => {
            set_health(inner, d.board, |h| h.alive = false);
        }
        _ => {}
    }
    result.map(|_| ())
}

/// The address of a board on the track the mode selects.
fn address(inner: &Inner, board: BoardId) -> String {
    match *inner.mode.lock().expect("mode") {
        Mode::Sim => inner.sim_addresses[board].clone(),
        Mode::Live => inner.live_addresses[board].clone(),
    }
}

fn set_health(inner: &Inner, board: BoardId, change: impl FnOnce(&mut BoardHealth)) {
    let changed = {
        let mut all = inner.health.lock().expect("health");
        let Some(h) = all.get_mut(&board) else { return };
        let before = h.clone();
        change(h);
        (*h != before).then(|| h.clone())
    };
    if let Some(h) = changed {
        // No subscriber is not an error.
        let _ = inner.events.send(TrackEvent::Board(h));
    }
}

async fn state(inner: &Inner) -> TrackState {
    try_state(inner).await.expect("the track's simulation runs until the track is stopped")
}

/// The state, or `None` once the simulation has stopped (the background tasks end then).
async fn try_state(inner: &Inner) -> Option<TrackState> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    inner.sim.send(SimRequest::Snapshot(tx)).ok()?;
    tokio::task::spawn_blocking(move || rx.recv().ok()).await.ok().flatten()
}

async fn sim_command(inner: &Inner, cmd: SimCommand) -> Result<(), SimError> {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    inner.pending.lock().expect("pending").insert(id, tx);
    inner.sim.send(SimRequest::Command { id, cmd }).expect("simulation running");
    rx.await.expect("the pump answers every command")
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
                        if *inner.mode.lock().expect("mode") == Mode::Live {
                            inner.mirror.lock().expect("mirror").on_mirror_event(&inner.layout, &e);
                        }
                        for cmd in inner.interlocking.protect_after(std::slice::from_ref(&e)) {
                            if let SimCommand::SetDevice { device, state } = cmd {
                                let inner = inner.clone();
                                runtime.spawn(async move {
                                    if drive(&inner, device, state).await.is_ok() {
                                        inner.desired.lock().expect("desired")[device] = state;
                                    }
                                });
                            }
                        }
                        let _ = inner.events.send(TrackEvent::Sim(e));
                    }
                }
            }
        })
        .expect("spawn pump thread");
}

/// Re-sends the desired state of every device of a board, `init_spacing` apart; the board accepts new
/// commands again when all went through.
async fn restore(inner: Arc<Inner>, board: BoardId) {
    set_health(&inner, board, |h| h.restoring = true);
    // Set the board's clock first: a board whose clock is lost again has rebooted.
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if inner.client.send(&address(&inner, board), &BoardCommand::SetClock { unix }).await.is_err() {
        set_health(&inner, board, |h| h.alive = false);
        return;
    }
    let devices: Vec<usize> =
        (0..inner.layout.devices.len()).filter(|&d| inner.layout.devices[d].board == board).collect();
    for (i, device) in devices.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(inner.config.init_spacing).await;
        }
        let state = inner.desired.lock().expect("desired")[device];
        if drive(&inner, device, state).await.is_err() {
            // Still down: the health watch restores it again when it answers.
            return;
        }
    }
    set_health(&inner, board, |h| {
        h.alive = true;
        h.restoring = false;
    });
}

/// Polls every board's health; a board that comes back is restored.
async fn watch_health(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let every = strong.config.health_every;
        let boards: Vec<(BoardId, BoardHealth)> = strong.health.lock().expect("health").clone().into_iter().collect();
        for (board, before) in boards {
            let alive = strong.client.health(&address(&strong, board)).await;
            set_health(&strong, board, |h| h.alive = alive);
            // A board that failed and answers again gets its devices back (an aborted restore also left it down),
            // and so does one that lost its clock: it rebooted, and its servos are at their power-on angle.
            if (alive && !before.alive) || (alive && !before.restoring && rebooted(&strong, board).await) {
                tokio::spawn(restore(strong.clone(), board));
            }
        }
        drop(strong);
        tokio::time::sleep(every).await;
    }
}

/// Unix times before this mean a board's clock was never set since it booted.
const CLOCK_SET_AFTER: u64 = 1_000_000_000;

/// Whether a board has lost the clock the track set: its servos' `last_update` reads as seconds since boot.
async fn rebooted(inner: &Inner, board: BoardId) -> bool {
    let Some(device) = inner.layout.devices.iter().find(|d| d.board == board) else { return false };
    let probe = BoardCommand::Servo { pin: device.pin, op: ServoOp::Get };
    matches!(inner.client.send(&address(inner, board), &probe).await, Ok(last_update) if last_update < CLOCK_SET_AFTER)
}

/// Runs the interlocking's speed supervision on the simulated track.
/// Also sends the trains' positions when any moved.
async fn supervise(inner: std::sync::Weak<Inner>) {
    let mut last: Vec<TrainPosition> = Vec::new();
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let every = strong.config.supervise_every;
        let Some(state) = try_state(&strong).await else { return };
        for cmd in strong.interlocking.supervise(&state) {
            let _ = sim_command(&strong, cmd).await;
        }
        let positions: Vec<TrainPosition> = state
            .trains
            .iter()
            .map(|t| TrainPosition {
                train: t.id,
                front: t.body.front(&strong.layout),
                speed: t.effective_speed(),
                status: t.status,
            })
            .collect();
        if positions != last {
            let _ = strong.events.send(TrackEvent::Trains(positions.clone()));
            last = positions;
        }
        drop(strong);
        tokio::time::sleep(every).await;
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
        if *inner.mode.lock().expect("mode") != Mode::Live {
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
