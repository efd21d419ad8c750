//! A track's 2023 MQTT boards: one link per track, as the 2023 state manager was one client of its broker.
//!
//! - The sim track: the virtual boards run the festival firmware on their own broker (the embedded one, or one
//!   given for tests), moving the simulated servos and pressed by the simulation's detectors.
//! - The live track: the real boards on the festival's broker (`--broker`). The virtual boards never share it:
//!   a board whose client id is taken over is pushed off, and the 2023 firmware never connects again.
//!
//! Each link answers its boards' `get`s while its track is in use (a real board that boots in sim mode is told
//! its state on the switch to live) and retains every device's desired state on its broker meanwhile, so a
//! board that comes back (the 2025 build subscribes again but never asks) is handed its states by the broker
//! as it subscribes, whatever the broker tells of its clients. Presence, where the broker tells it, only shows
//! a board up or down. Block reports of the track in use are events, and in live mode they move the mirror.
//!
//! What stays on the broker when the twin stops: the last desired state of every device, retained, if its
//! track was in use (the boards' broker of the track in use); a board that boots meanwhile takes those. A
//! twin that starts retains its own desired states (the journal's, else the layout's) before any virtual
//! board boots, replacing them; the live link only once live mode is in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crossbeam_channel::Sender;
use sim::layout::{BoardId, BoardKind, OnOff};
use sim::track::DevicePosition;
use sim::twin::thread::Request as SimRequest;
use sim::twin::{EventKind, SimCommand};
use tokio::sync::broadcast;

use super::sim_link::{sim_command, sim_send, sim_state, try_state};
use super::{BoardHealth, Failure, Inner, Mode, Outcome, TrackEvent};
use crate::boards2023::firmware::Build;
use crate::boards2023::link::{BoardBroker, Boards2023, client_id};
use crate::boards2023::presence::Presence;
use crate::boards2023::virtual_board::VirtualMqttBoard;
use crate::virtual_devices::rig::MqttBoards;

/// How long a virtual 2023 board has to move a device after its `…/delta`.
pub const MQTT_ACT: Duration = Duration::from_secs(2);

/// How long the twin waits for a boards' broker at start before its virtual boards boot anyway.
pub const BROKER_WAIT: Duration = Duration::from_secs(10);

/// The 2023 boards' side of a track (see the module documentation).
pub(super) struct Mqtt {
    /// The sim track's link, to the virtual boards' broker.
    sim: Option<Side>,
    /// The live track's link, to the real boards' broker.
    live: Option<Side>,
    /// The virtual boards, on the sim track's broker.
    boards: Option<MqttBoards>,
}

/// One track's link and what it knows of its boards.
struct Side {
    link: Boards2023,
    /// Each MQTT board's health, and what is known of its presence.
    health: Mutex<HashMap<BoardId, (BoardHealth, Seen)>>,
}

/// What a link knows of a board's presence on its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Nothing yet (a broker that tells only what happens after the link subscribed).
    Unknown,
    /// Not connected since the twin started.
    NotYet,
    /// Connected.
    Up,
    /// Connected once, gone since.
    Away,
}

impl Side {
    /// Whether `board` is known to be away from the broker.
    fn down(&self, board: BoardId) -> bool {
        let health = self.health.lock().expect("health");
        health.get(&board).is_some_and(|(_, seen)| matches!(seen, Seen::NotYet | Seen::Away))
    }
}

/// Starts the 2023 boards' side of a track: the links (each subscribed before any virtual board starts: a board
/// asks its state only once, at its first connect), the virtual boards on the sim track's broker (`requests`:
/// the simulation's command channel), and the presence followers, before any board can come.
pub(super) async fn start(
    inner: &Arc<Inner>,
    sim_broker: Option<&BoardBroker>,
    live_broker: Option<&BoardBroker>,
    build: Build,
    requests: Sender<SimRequest>,
) {
    let layout = inner.layout.clone();
    let mut presence = Vec::new();
    let mut side = |mode: Mode, broker: &BoardBroker| {
        let weak = Arc::downgrade(inner);
        let desired: crate::boards2023::link::Desired = Arc::new(move |d| {
            let inner = weak.upgrade()?;
            let core = inner.core();
            (mode == Mode::Sim || core.mode() == mode).then(|| core.desired(d))
        });
        let (reports, reported) = tokio::sync::mpsc::unbounded_channel();
        let role = if mode == Mode::Sim { "sim" } else { "live" };
        let link = Boards2023::start(layout.clone(), role, broker, desired, reports);
        presence.push((mode, link.presence()));
        tokio::spawn(take_reports(Arc::downgrade(inner), mode, reported));
        let seen = if link.told_from_start() { Seen::NotYet } else { Seen::Unknown };
        let address = |name: &str| format!("{} on {}:{}", client_id(name), broker.host, broker.port);
        let health = |name: &str| BoardHealth {
            name: name.into(),
            address: address(name),
            alive: false,
            restoring: false,
            unknown: false,
        };
        let boards = layout.boards.iter().enumerate().filter(|(_, b)| b.kind == BoardKind::Mqtt);
        let health = Mutex::new(boards.map(|(id, b)| (id, (health(&b.name), seen))).collect());
        Side { link, health }
    };
    let sim = sim_broker.map(|b| side(Mode::Sim, b));
    let live = live_broker.map(|b| side(Mode::Live, b));
    if let Some(sim) = &sim {
        let desired = desired_states(inner);
        sim.link.retain_all(|d| desired[d]);
    }
    for (side, broker) in sim.iter().zip(sim_broker).chain(live.iter().zip(live_broker)) {
        if !side.link.subscribed(BROKER_WAIT).await {
            tracing::warn!(
                "the 2023 boards' broker {}:{} is not there yet: boards that start now go unanswered until they \
                 ask again",
                broker.host,
                broker.port
            );
        }
    }
    let boards = sim_broker.map(|broker| {
        // In live mode the simulation is the mirror of the real boards: a virtual board acting late (a retained
        // state or a `get` answered as it booted) must not move it.
        let weak = Arc::downgrade(inner);
        let sink: crate::virtual_devices::device::SimSink = Arc::new(move |cmd| {
            if weak.upgrade().is_some_and(|inner| inner.core().mode() == Mode::Sim) {
                let _ = requests.send(SimRequest::Command { id: 0, cmd });
            }
        });
        MqttBoards::start(layout.clone(), sink, &broker.host, broker.port, broker.login.clone(), |_| build)
    });
    let _ = inner.mqtt.set(Mqtt { sim, live, boards });
    for (mode, receiver) in presence {
        // The boards' arrivals since the link started wait in the receiver.
        tokio::spawn(follow_presence(Arc::downgrade(inner), mode, receiver));
    }
    // Starting live: real boards that connected before the twin asked their state unanswered; tell them.
    if inner.core().mode() == Mode::Live
        && let Some(mqtt) = inner.mqtt.get()
    {
        mqtt.switched(inner, Mode::Live);
    }
}

impl Mqtt {
    fn side(&self, mode: Mode) -> Option<&Side> {
        match mode {
            Mode::Sim => self.sim.as_ref(),
            Mode::Live => self.live.as_ref(),
        }
    }

    /// The health of the MQTT boards of the track in `mode` (a board not heard from on a broker that does not
    /// tell its clients is unknown, neither up nor down).
    pub(super) fn health(&self, mode: Mode) -> Vec<(BoardId, BoardHealth)> {
        let Some(side) = self.side(mode) else { return Vec::new() };
        let health = side.health.lock().expect("health");
        let shown = |(h, seen): &(BoardHealth, Seen)| match seen {
            Seen::Unknown => BoardHealth { unknown: true, ..h.clone() },
            _ => h.clone(),
        };
        health.iter().map(|(&id, h)| (id, shown(h))).collect()
    }

    /// Before a switch to live: each MQTT board (name, address, whether it may be there: up, or not known to
    /// be down), or why live mode cannot drive them.
    pub(super) fn check_live(&self) -> Result<Vec<(String, String, bool)>, String> {
        let Some(live) = &self.live else {
            return Err("the layout's 2023 boards are driven live through their broker: start the twin with \
                        --broker mqtt://HOST:PORT (the broker the boards connect to)"
                .into());
        };
        let health = live.health.lock().expect("health");
        let may_be_there = |seen: &Seen| matches!(seen, Seen::Up | Seen::Unknown);
        Ok(health.values().map(|(h, seen)| (h.name.clone(), h.address.clone(), may_be_there(seen))).collect())
    }

    /// After a switch to `to` (or a start in it): its boards' health told; the live link retains the desired
    /// states in live mode (every board there is told them at once) and takes them off in sim mode.
    pub(super) fn switched(&self, inner: &Arc<Inner>, to: Mode) {
        if let Some(live) = &self.live {
            match to {
                Mode::Live => {
                    let desired = desired_states(inner);
                    live.link.retain_all(|d| desired[d]);
                    // Told is done: the mirror's devices take the states the real boards are told.
                    let on_mqtt =
                        |d: &usize| inner.layout.boards[inner.layout.devices[*d].board].kind == BoardKind::Mqtt;
                    for device in (0..desired.len()).filter(on_mqtt) {
                        drop(sim_send(inner, SimCommand::SetDevice { device, state: desired[device] }));
                    }
                }
                Mode::Sim => live.link.clear(),
            }
        }
        for (_, h) in self.health(to) {
            let _ = inner.events.send(TrackEvent::Board(h));
        }
    }

    /// The simulation pressed or released a detector: its virtual board's switch follows.
    pub(super) fn detector_changed(&self, detector: usize, closed: bool) {
        if let Some(boards) = &self.boards {
            boards.detector_changed(detector, closed);
        }
    }

    /// The virtual boards.
    pub(super) fn virtual_boards(&self) -> Vec<VirtualMqttBoard> {
        self.boards.as_ref().map(|b| b.boards()).unwrap_or_default()
    }

    /// Messages the links could not read so far.
    pub(super) fn unreadable(&self) -> u64 {
        self.sim.iter().chain(&self.live).map(|s| s.link.unreadable()).sum()
    }

    /// Disconnects the links and the virtual boards.
    pub(super) fn stop(&self) {
        for side in self.sim.iter().chain(&self.live) {
            side.link.stop();
        }
        if let Some(boards) = &self.boards {
            boards.stop();
        }
    }
}

/// A device on a 2023 MQTT board, on the track in use. Its new state becomes the desired one (what a board's
/// `get` is answered with) and is told to the boards (`…/delta`). In sim mode the virtual board moves the
/// simulated servo, and the command is carried out once the device stands there (within [`MQTT_ACT`]); in live
/// mode the 2023 protocol acknowledges nothing: told is done, and the mirror follows. A board known to be away
/// from its broker fails the command at once. Without a sim broker, in sim mode the device moves in the
/// simulation directly (as a train without a controller has its speed set there).
pub(super) async fn command(inner: &Inner, device: usize, state: OnOff) -> Outcome {
    let d = &inner.layout.devices[device];
    let board = &inner.layout.boards[d.board].name;
    let mode = inner.core().mode();
    let side = inner.mqtt.get().and_then(|m| m.side(mode));
    let Some(side) = side else {
        if mode == Mode::Live {
            return Outcome::Failed(Failure::NoBroker { device: d.name.clone(), board: board.clone() });
        }
        return match sim_command(inner, SimCommand::SetDevice { device, state }).await {
            Ok(()) => {
                inner.core().commanded(device, state);
                Outcome::Applied
            }
            Err(e) => Outcome::Failed(e.into()),
        };
    };
    if side.down(d.board) {
        return Outcome::Failed(Failure::NotConnected { board: board.clone() });
    }
    let mut events = inner.events.subscribe();
    inner.core().commanded(device, state);
    if let Err(e) = side.link.delta(device, state) {
        return Outcome::Failed(Failure::NotPublished { device: d.name.clone(), error: e.to_string() });
    }
    if mode == Mode::Live {
        return match sim_command(inner, SimCommand::SetDevice { device, state }).await {
            Ok(()) => Outcome::Applied,
            Err(error) => Outcome::Failed(Failure::MirrorBehind { board: board.clone(), error }),
        };
    }
    let wanted = DevicePosition::from(state);
    let deadline = tokio::time::Instant::now() + MQTT_ACT;
    if try_state(inner).await.is_some_and(|s| s.devices[device] == wanted) {
        return Outcome::Applied;
    }
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(TrackEvent::Sim(e))) => match e.kind {
                EventKind::DeviceChanged { device: moved, position } if moved == device && position == wanted => {
                    return Outcome::Applied;
                }
                _ => {}
            },
            Ok(Ok(_)) => {}
            // Events missed: the state says where the device is.
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                if try_state(inner).await.is_some_and(|s| s.devices[device] == wanted) {
                    return Outcome::Applied;
                }
            }
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                return Outcome::Failed(Failure::NotMoved {
                    device: d.name.clone(),
                    board: board.clone(),
                    seconds: MQTT_ACT.as_secs(),
                });
            }
        }
    }
}

/// Takes one link's block reports while its track is in use: events, and in live mode the hardware's word on
/// the block ([`crate::boards2023::block_word`]), with the mirror snapped to a healthy detector's report. Reports that came
/// meanwhile are taken together, the mirror snapped once per block and word, so a flood is taken as fast as it
/// comes.
async fn take_reports(
    inner: Weak<Inner>,
    mode: Mode,
    mut reported: tokio::sync::mpsc::UnboundedReceiver<(usize, bool)>,
) {
    let mut batch = Vec::new();
    while reported.recv_many(&mut batch, 1024).await > 0 {
        let Some(inner) = inner.upgrade() else { return };
        if inner.core().mode() != mode {
            batch.clear();
            continue;
        }
        let mut follow: Vec<(usize, bool, Option<usize>)> = Vec::new();
        for (block, close) in batch.drain(..) {
            let _ = inner.events.send(TrackEvent::BlockReport { block, close });
            if mode != Mode::Live {
                continue;
            }
            let taken = inner.word().report(&inner.layout, block, close, inner.now_ms());
            inner.tell(taken.notes);
            follow.retain(|r| (r.0, r.1) != (block, close));
            if taken.follow {
                follow.push((block, close, taken.found));
            }
        }
        for (block, close, found) in follow {
            let Some(state) = sim_state(&inner).await else { return };
            let (snap, divergence) = {
                let mut mirror = inner.mirror.lock().expect("mirror");
                // The train put back from an uncertain block went in after all: it is where the detector says.
                match found.and_then(|train| mirror.found(&inner.layout, &state, block, close, train)) {
                    Some(cmd) => (Some(cmd), None),
                    None => mirror.on_block_report(&inner.layout, block, close, &state),
                }
            };
            if let Some(cmd) = snap {
                let _ = sim_command(&inner, cmd).await;
            }
            if let Some(d) = divergence {
                let _ = inner.events.send(TrackEvent::Divergence(d));
            }
        }
    }
}

/// Follows one link's boards: a 2023 board is up while its client id is connected (the newest word on it
/// counts). What a board that comes back needs, the broker hands it (the retained states).
async fn follow_presence(inner: Weak<Inner>, mode: Mode, mut presence: broadcast::Receiver<Presence>) {
    loop {
        let (id, up) = match presence.recv().await {
            Ok(Presence::Connected(id)) => (id, true),
            Ok(Presence::Gone(id)) => (id, false),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Words were missed, a board's going perhaps among them: no board is known up or down any more
                // until the broker's next word on it.
                let Some(inner) = inner.upgrade() else { return };
                tracing::warn!("2023 boards: {missed} presence reports missed; every board's presence is unknown");
                let Some(side) = inner.mqtt.get().and_then(|m| m.side(mode)) else { return };
                let changed: Vec<BoardHealth> = {
                    let mut all = side.health.lock().expect("health");
                    all.values_mut()
                        .filter(|(_, seen)| *seen != Seen::Unknown)
                        .map(|(h, seen)| {
                            *seen = Seen::Unknown;
                            h.alive = false;
                            BoardHealth { unknown: true, ..h.clone() }
                        })
                        .collect()
                };
                if inner.core().mode() == mode {
                    for h in changed {
                        let _ = inner.events.send(TrackEvent::Board(h));
                    }
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        let Some(board) =
            inner.layout.boards.iter().position(|b| b.kind == BoardKind::Mqtt && client_id(&b.name) == id)
        else {
            continue;
        };
        let Some(side) = inner.mqtt.get().and_then(|m| m.side(mode)) else { return };
        let changed = {
            let mut all = side.health.lock().expect("health");
            let (h, seen) = all.get_mut(&board).expect("every MQTT board");
            let was = *seen;
            *seen = match (up, was) {
                (true, _) => Seen::Up,
                (false, Seen::NotYet) => Seen::NotYet,
                (false, _) => Seen::Away,
            };
            h.alive = up;
            (was != *seen).then(|| h.clone())
        };
        let Some(h) = changed else { continue };
        if inner.core().mode() != mode {
            continue;
        }
        let _ = inner.events.send(TrackEvent::Board(h));
    }
}

/// Every device's desired state now.
fn desired_states(inner: &Inner) -> Vec<OnOff> {
    let core = inner.core();
    (0..inner.layout.devices.len()).map(|d| core.desired(d)).collect()
}
