//! The one track interface the gateway uses, whatever the track is.
//!
//! A [`Track`] owns a simulation running paced to the wall clock and the servo boards it drives. Every
//! command passes the interlocking, then device commands go to the boards over HTTP with the
//! [`BoardClient`](crate::client::BoardClient): in sim mode to virtual boards on loopback that move the
//! simulated devices (the same code path as live mode). The track polls every board's health, and when a
//! board comes back (or at start-up) it re-sends the desired state of the board's devices one at a time,
//! 500 ms apart, refusing new commands for them until it is done.

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
use tokio::sync::{broadcast, oneshot};

use crate::client::{BoardClient, ClientConfig, Failure, servo_command};
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
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            health_every: Duration::from_secs(1),
            init_spacing: Duration::from_millis(500),
            supervise_every: Duration::from_millis(100),
            client: ClientConfig::default(),
            interlocking: true,
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

/// What the track reports.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackEvent {
    /// Something happened in the simulation (device moved, sensor passed, collision, ...).
    Sim(SimEvent),
    /// A board's health changed.
    Board(BoardHealth),
}

struct Inner {
    layout: Arc<Layout>,
    interlocking: Interlocking,
    config: TrackConfig,
    sim: Sender<SimRequest>,
    client: BoardClient,
    addresses: Vec<String>,
    desired: Mutex<Vec<OnOff>>,
    health: Mutex<HashMap<BoardId, BoardHealth>>,
    events: broadcast::Sender<TrackEvent>,
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
    /// Starts a simulated track: the simulation paced to the wall clock, and a virtual board for every servo
    /// board (listening where `listen` says, by board name or layout address, else on a free loopback port).
    /// Every device is then initialised through its board.
    pub async fn start_sim(
        layout: Arc<Layout>,
        listen: &HashMap<String, SocketAddr>,
        config: TrackConfig,
    ) -> Result<Track, RigError> {
        let rig = Rig::start(layout.clone(), listen, 1.0).await?;
        let addresses = rig.addresses();
        let Rig { sim: handle, boards, .. } = rig;
        let (events, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            interlocking: Interlocking::new(layout.clone(), config.interlocking),
            desired: Mutex::new(layout.devices.iter().map(|d| d.initial).collect()),
            health: Mutex::new(
                layout
                    .boards
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.kind == BoardKind::Servo)
                    .map(|(i, b)| {
                        (
                            i,
                            BoardHealth {
                                name: b.name.clone(),
                                address: addresses[i].clone(),
                                alive: true,
                                restoring: true,
                            },
                        )
                    })
                    .collect(),
            ),
            layout,
            config,
            sim: handle.requests.clone(),
            client: BoardClient::new(config.client),
            addresses,
            events,
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
        Ok(track)
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
    let result = inner.client.send(&inner.addresses[d.board], &servo_command(d, state)).await;
    if let Err(Failure::Unreachable(_) | Failure::Timeout(_) | Failure::BadAnswer { .. }) = result {
        set_health(inner, d.board, |h| h.alive = false);
    }
    result.map(|_| ())
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
    let (tx, rx) = crossbeam_channel::bounded(1);
    inner.sim.send(SimRequest::Snapshot(tx)).expect("simulation running");
    tokio::task::spawn_blocking(move || rx.recv().expect("simulation answers")).await.expect("snapshot task")
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
    if inner.client.send(&inner.addresses[board], &BoardCommand::SetClock { unix }).await.is_err() {
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
            let alive = strong.client.health(&strong.addresses[board]).await;
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
    matches!(inner.client.send(&inner.addresses[board], &probe).await, Ok(last_update) if last_update < CLOCK_SET_AFTER)
}

/// Runs the interlocking's speed supervision on the simulated track.
async fn supervise(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let every = strong.config.supervise_every;
        let state = state(&strong).await;
        for cmd in strong.interlocking.supervise(&state) {
            let _ = sim_command(&strong, cmd).await;
        }
        drop(strong);
        tokio::time::sleep(every).await;
    }
}
