//! A track's 2023 MQTT boards: one link per track, as the 2023 state manager was one client of its broker.
//!
//! - The sim track: the virtual boards run the festival firmware on their own broker (the embedded one, or one
//!   given for tests), moving the simulated servos and pressed by the simulation's detectors.
//! - The live track: the real boards on the festival's broker (`--broker`). The virtual boards never share it:
//!   a board whose client id is taken over is pushed off, and the 2023 firmware never connects again.
//!
//! Each link answers its boards' `get`s while its track is in use (a real board that boots in sim mode is told
//! its state on the switch to live) and follows their presence; a board that comes up on the track in use is
//! told the desired state of its devices, one per restore spacing (the firmware asks only at its first
//! connect). Block reports of the track in use are events, and in live mode they move the mirror.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crossbeam_channel::Sender;
use sim::layout::{BoardId, BoardKind, OnOff};
use sim::track::DevicePosition;
use sim::twin::thread::Request as SimRequest;
use sim::twin::{EventKind, SimCommand};
use tokio::sync::broadcast;

use super::{BoardHealth, Inner, Mode, Outcome, TrackEvent, sim_command, try_state};
use crate::boards2023::{BoardBroker, Boards2023, client_id, setting_of};
use crate::firmware2023::Build;
use crate::presence::Presence;
use crate::virtual_mqtt_boards::{Servo, VirtualMqttBoard};

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
    /// The virtual boards, by layout board.
    boards: Vec<(BoardId, VirtualMqttBoard)>,
    /// Each detector's virtual board (index into `boards`) and its index in that board's setting.
    slots: Vec<Option<(usize, usize)>>,
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
        let desired: crate::boards2023::Desired = Arc::new(move |d| {
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
        let health =
            |name: &str| BoardHealth { name: name.into(), address: address(name), alive: false, restoring: false };
        let boards = layout.boards.iter().enumerate().filter(|(_, b)| b.kind == BoardKind::Mqtt);
        let health = Mutex::new(boards.map(|(id, b)| (id, (health(&b.name), seen))).collect());
        Side { link, health }
    };
    let sim = sim_broker.map(|b| side(Mode::Sim, b));
    let live = live_broker.map(|b| side(Mode::Live, b));
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
    let mut boards = Vec::new();
    let mut slots = vec![None; layout.detectors.len()];
    if let Some(broker) = sim_broker {
        for (id, _) in layout.boards.iter().enumerate().filter(|(_, b)| b.kind == BoardKind::Mqtt) {
            let pins: Vec<(u32, usize)> =
                layout.devices.iter().enumerate().filter(|(_, d)| d.board == id).map(|(i, d)| (d.pin, i)).collect();
            let requests = requests.clone();
            let servo: Servo = Arc::new(move |pin, angle| {
                if let Some(&(_, device)) = pins.iter().find(|(p, _)| *p == pin as u32) {
                    let cmd = SimCommand::SetAngle { device, angle };
                    let _ = requests.send(SimRequest::Command { id: 0, cmd });
                }
            });
            let wired = layout.detectors.iter().enumerate().filter(|(_, d)| d.wiring.is_some_and(|(b, _)| b == id));
            for (slot, (detector, _)) in wired.enumerate() {
                slots[detector] = Some((boards.len(), slot));
            }
            let setting = setting_of(&layout, id);
            let board = VirtualMqttBoard::start(setting, build, &broker.host, broker.port, broker.login.clone(), servo);
            boards.push((id, board));
        }
    }
    let _ = inner.mqtt.set(Mqtt { sim, live, boards, slots });
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

    /// The health of the MQTT boards of the track in `mode` (a board not known yet is shown down, its address
    /// saying so).
    pub(super) fn health(&self, mode: Mode) -> Vec<(BoardId, BoardHealth)> {
        let Some(side) = self.side(mode) else { return Vec::new() };
        let health = side.health.lock().expect("health");
        let shown = |(h, seen): &(BoardHealth, Seen)| match seen {
            Seen::Unknown => BoardHealth { address: format!("{} (not heard from yet)", h.address), ..h.clone() },
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

    /// After a switch to `to`: its boards' health told, and each board there told its devices' desired states.
    pub(super) fn switched(&self, inner: &Arc<Inner>, to: Mode) {
        let Some(side) = self.side(to) else { return };
        for (board, h) in self.health(to) {
            let _ = inner.events.send(TrackEvent::Board(h));
            if !side.down(board) {
                tokio::spawn(resync(inner.clone(), to, board));
            }
        }
    }

    /// The simulation pressed or released a detector: its virtual board's switch follows.
    pub(super) fn detector_changed(&self, detector: usize, closed: bool) {
        if let Some((board, slot)) = self.slots[detector] {
            self.boards[board].1.set_detector(slot, closed);
        }
    }

    /// The virtual boards.
    pub(super) fn virtual_boards(&self) -> Vec<VirtualMqttBoard> {
        self.boards.iter().map(|(_, b)| b.clone()).collect()
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
        for (_, board) in &self.boards {
            board.cut();
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
            return Outcome::Failed(format!("{} is on MQTT board {board}, and the twin has no broker for it", d.name));
        }
        return match sim_command(inner, SimCommand::SetDevice { device, state }).await {
            Ok(()) => {
                inner.core().commanded(device, state);
                Outcome::Applied
            }
            Err(e) => Outcome::Failed(e.to_string()),
        };
    };
    if side.down(d.board) {
        return Outcome::Failed(format!("board {board} is not connected to the broker"));
    }
    let mut events = inner.events.subscribe();
    inner.core().commanded(device, state);
    if let Err(e) = side.link.delta(device, state) {
        return Outcome::Failed(format!("{}: {e}", d.name));
    }
    if mode == Mode::Live {
        return match sim_command(inner, SimCommand::SetDevice { device, state }).await {
            Ok(()) => Outcome::Applied,
            Err(e) => Outcome::Failed(format!("told board {board}, but the mirror cannot follow: {e}")),
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
                return Outcome::Failed(format!(
                    "{} was told over MQTT but board {board} did not move it within {} s; it is told again when the \
                     board connects again",
                    d.name,
                    MQTT_ACT.as_secs()
                ));
            }
        }
    }
}

/// Takes one link's block reports: events while its track is in use, and in live mode the mirror snaps to them.
async fn take_reports(
    inner: Weak<Inner>,
    mode: Mode,
    mut reported: tokio::sync::mpsc::UnboundedReceiver<(usize, bool)>,
) {
    while let Some((block, close)) = reported.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        if inner.core().mode() != mode {
            continue;
        }
        let _ = inner.events.send(TrackEvent::BlockReport { block, close });
        if mode != Mode::Live {
            continue;
        }
        let Some(state) = try_state(&inner).await else { return };
        let (snap, divergence) =
            inner.mirror.lock().expect("mirror").on_block_report(&inner.layout, block, close, &state);
        if let Some(cmd) = snap {
            let _ = sim_command(&inner, cmd).await;
        }
        if let Some(d) = divergence {
            let _ = inner.events.send(TrackEvent::Divergence(d));
        }
    }
}

/// Follows one link's boards: a 2023 board is up while its client id is connected (the newest word on it
/// counts). A board that comes back on the track in use (known to have been away) is told the desired state of
/// its devices; one seen for the first time asks it itself, or was told on the switch to its track.
async fn follow_presence(inner: Weak<Inner>, mode: Mode, mut presence: broadcast::Receiver<Presence>) {
    loop {
        let (id, up) = match presence.recv().await {
            Ok(Presence::Connected(id)) => (id, true),
            Ok(Presence::Gone(id)) => (id, false),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        let Some(board) =
            inner.layout.boards.iter().position(|b| b.kind == BoardKind::Mqtt && client_id(&b.name) == id)
        else {
            continue;
        };
        let Some(side) = inner.mqtt.get().and_then(|m| m.side(mode)) else { return };
        let (changed, back) = {
            let mut all = side.health.lock().expect("health");
            let (h, seen) = all.get_mut(&board).expect("every MQTT board");
            let was = *seen;
            *seen = match (up, was) {
                (true, _) => Seen::Up,
                (false, Seen::NotYet) => Seen::NotYet,
                (false, _) => Seen::Away,
            };
            h.alive = up;
            ((was != *seen).then(|| h.clone()), up && was == Seen::Away)
        };
        let Some(h) = changed else { continue };
        if inner.core().mode() != mode {
            continue;
        }
        let _ = inner.events.send(TrackEvent::Board(h));
        if back {
            tokio::spawn(resync(inner.clone(), mode, board));
        }
    }
}

/// Tells a 2023 board the desired state of each of its devices, one per restore spacing (the first a spacing
/// from now: a board that just connected has subscribed by then), while its track is in use.
async fn resync(inner: Arc<Inner>, mode: Mode, board: BoardId) {
    let Some(side) = inner.mqtt.get().and_then(|m| m.side(mode)) else { return };
    for device in (0..inner.layout.devices.len()).filter(|&d| inner.layout.devices[d].board == board) {
        tokio::time::sleep(inner.config.init_spacing).await;
        if inner.core().mode() != mode {
            return;
        }
        let state = inner.core().desired(device);
        if let Err(e) = side.link.delta(device, state) {
            tracing::warn!("2023 boards: cannot tell {} its state: {e}", inner.layout.devices[device].name);
        }
    }
}
