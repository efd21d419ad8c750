//! The track's bookkeeping as plain data, with no IO and no clock of its own (`now` is passed in): the mode,
//! the desired state of every device, the speed wanted of every train and the cap speed supervision puts on
//! it, every servo board's and speed controller's health, and each one's restore queue (the steps that bring
//! its devices or trains back to their desired states after start-up, a failure, a reboot or a switch of
//! mode). The driver ([`super`]) does the IO and the waiting and tells the core what came of it.
//!
//! A healthy servo board's health poll drives one of its devices to its desired state, in turn
//! ([`TrackCore::poll`]): a servo already there does not move, and one that is not (a reboot, a glitch, a hand)
//! is put back, so every device is re-asserted once per round of polls, whatever the board can tell. The
//! answer's clock tells more: the 2021 firmware's clock counts from 0 after a reboot until it is set, so an
//! answer below [`CLOCK_SET_AFTER`] means the board rebooted, and it is restored in full at once.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use sim::interlocking::on_scale;
use sim::layout::{BoardId, BoardKind, Layout, OnOff, TrainId};

use super::{BoardHealth, Failure, Mode};

/// One step of a board's restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStep {
    /// Set the board's clock (a board whose clock is lost again has rebooted).
    SetClock,
    /// Drive a device to its desired state.
    Device(usize),
    /// Send a train's speed to its onboard controller.
    Speed(TrainId),
}

/// Board clocks (unix seconds) below this were never set since the board booted.
pub const CLOCK_SET_AFTER: i64 = 1_000_000_000;

/// What a health poll sends a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Drive this device to its desired state (a servo already there does not move).
    Device(usize),
    /// Set the clock (moves nothing): a board being restored or down, or one with no device.
    Clock,
    /// Ask a speed controller for a connection (any `ControlSpeed` would kick its motor).
    Connect,
}

/// What the driver should do next for a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Carry out this restore step now (of the restore with this number, to hand back with its result).
    Step(RestoreStep, u64),
    /// The next restore step is due then.
    At(Instant),
    /// Nothing to restore.
    Idle,
}

/// A servo board or speed controller as the core keeps it.
#[derive(Debug, Clone)]
struct Board {
    health: BoardHealth,
    /// What a restore drives: the board's devices, or the controller's trains.
    steps: Vec<RestoreStep>,
    restore: VecDeque<RestoreStep>,
    /// Where the health polls' rotation over the board's devices stands.
    rotation: usize,
    due: Instant,
    /// Counts the board's restores, so that the result of a step of an abandoned restore is not taken for one
    /// of the restore that replaced it.
    number: u64,
}

/// A train's speed as the core keeps it, on the 2021 scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrainSpeed {
    /// The speed last commanded (or started from).
    wanted: i32,
    /// The cap from speed supervision.
    limit: Option<i32>,
    /// The speed its controller last took.
    sent: Option<i32>,
}

/// The track's bookkeeping (see the module documentation).
#[derive(Debug, Clone)]
pub struct TrackCore {
    mode: Mode,
    desired: Vec<OnOff>,
    speeds: Vec<TrainSpeed>,
    boards: BTreeMap<BoardId, Board>,
    addresses: [Vec<String>; 2],
    spacing: Duration,
}

impl TrackCore {
    /// The core of a track that starts in `mode` with the `desired` device states and the layout's starting
    /// speeds; every servo board's and speed controller's restore is due at `now`. `sim` and `live` are the
    /// boards' addresses in each mode, by board id;
    /// `spacing` is the time between two devices of a restore.
    pub fn new(
        layout: &Layout,
        mode: Mode,
        desired: Vec<OnOff>,
        [sim, live]: [Vec<String>; 2],
        spacing: Duration,
        now: Instant,
    ) -> TrackCore {
        let addresses = [sim, live];
        let boards = layout
            .boards
            .iter()
            .enumerate()
            .filter(|(_, b)| matches!(b.kind, BoardKind::Servo | BoardKind::Speed))
            .map(|(id, b)| {
                let health = BoardHealth {
                    name: b.name.clone(),
                    address: addresses[mode as usize][id].clone(),
                    alive: true,
                    restoring: true,
                    unknown: false,
                };
                let steps = match b.kind {
                    BoardKind::Speed => (0..layout.trains.len())
                        .filter(|&t| layout.trains[t].controller == Some(id))
                        .map(RestoreStep::Speed)
                        .collect(),
                    _ => std::iter::once(RestoreStep::SetClock)
                        .chain(
                            (0..layout.devices.len())
                                .filter(|&d| layout.devices[d].board == id)
                                .map(RestoreStep::Device),
                        )
                        .collect(),
                };
                let board = Board { health, steps, restore: VecDeque::new(), rotation: 0, due: now, number: 0 };
                (id, board)
            })
            .collect();
        let speeds = (0..layout.trains.len())
            .map(|t| TrainSpeed { wanted: on_scale(layout, t, layout.trains[t].speed), limit: None, sent: None })
            .collect();
        let mut core = TrackCore { mode, desired, speeds, boards, addresses, spacing };
        for id in core.boards.keys().copied().collect::<Vec<_>>() {
            core.start_restore(id, now);
        }
        core
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A device's desired state.
    pub fn desired(&self, device: usize) -> OnOff {
        self.desired[device]
    }

    /// The speed last commanded for a train (or started from), on the 2021 scale.
    pub fn wanted_speed(&self, train: TrainId) -> i32 {
        self.speeds[train].wanted
    }

    /// Every train's [`TrackCore::wanted_speed`], by train.
    pub fn wanted_speeds(&self) -> Vec<i32> {
        self.speeds.iter().map(|s| s.wanted).collect()
    }

    /// What a train's controller is to run it at now: its wanted speed, no more than supervision's cap.
    pub fn controller_speed_now(&self, train: TrainId) -> i32 {
        self.controller_speed(train, self.speeds[train].wanted)
    }

    /// What a train's controller is to run it at if `wanted` is commanded: `wanted`, no more than the cap of
    /// speed supervision.
    pub fn controller_speed(&self, train: TrainId, wanted: i32) -> i32 {
        self.speeds[train].limit.map_or(wanted, |l| wanted.min(l))
    }

    /// A visitor or operator commanded a train's speed (and it was carried out).
    pub fn speed_commanded(&mut self, train: TrainId, speed: i32) {
        self.speeds[train].wanted = speed;
    }

    /// A train's controller took `speed`.
    pub fn controller_took(&mut self, train: TrainId, speed: i32) {
        self.speeds[train].sent = Some(speed);
    }

    /// Speed supervision capped a train at `limit` (on the 2021 scale), or lifted its cap. Returns the speed
    /// to send its controller if that now differs from what it last took.
    pub fn speed_limit(&mut self, train: TrainId, limit: Option<i32>) -> Option<i32> {
        self.speeds[train].limit = limit;
        let now = self.controller_speed_now(train);
        (self.speeds[train].sent != Some(now)).then_some(now)
    }

    /// The address of a board in the current mode.
    pub fn address(&self, board: BoardId) -> &str {
        &self.addresses[self.mode as usize][board]
    }

    /// The addresses of the servo boards and speed controllers in `mode`, by board id.
    pub fn addresses_in(&self, mode: Mode) -> Vec<(BoardId, String)> {
        self.boards.keys().map(|&b| (b, self.addresses[mode as usize][b].clone())).collect()
    }

    /// Every servo board's and speed controller's health, by board id.
    pub fn health(&self) -> Vec<(BoardId, BoardHealth)> {
        self.boards.iter().map(|(&id, b)| (id, b.health.clone())).collect()
    }

    /// Whether every board is alive and restored.
    pub fn ready(&self) -> bool {
        self.boards.values().all(|b| b.health.alive && !b.health.restoring)
    }

    /// Whether any board's restore still has steps to go.
    pub fn restoring(&self) -> bool {
        self.boards.values().any(|b| !b.restore.is_empty())
    }

    /// Whether a command for `board`'s device may go to the board now; else why not.
    pub fn admit(&self, board: BoardId) -> Result<(), Failure> {
        match self.boards.get(&board).map(|b| &b.health) {
            Some(h) if !h.alive => Err(Failure::BoardDown { board: h.name.clone() }),
            Some(h) if h.restoring => Err(Failure::BoardRestoring { board: h.name.clone() }),
            _ => Ok(()),
        }
    }

    /// A device was driven to `state` by command: its new desired state.
    pub fn commanded(&mut self, device: usize, state: OnOff) {
        self.desired[device] = state;
    }

    /// A request to `board` got no answer (or a bad one): it is down. Returns its health if that changed.
    pub fn unreachable(&mut self, board: BoardId) -> Option<BoardHealth> {
        self.change(board, |b| b.health.alive = false)
    }

    /// What to do next for `board`'s restore.
    pub fn next(&self, board: BoardId, now: Instant) -> Next {
        match self.boards.get(&board) {
            Some(b) if !b.restore.is_empty() && b.due <= now => Next::Step(b.restore[0], b.number),
            Some(b) if !b.restore.is_empty() => Next::At(b.due),
            _ => Next::Idle,
        }
    }

    /// The first step of `board`'s restore `number` was carried out (`ok`) or failed. A failed step ends the
    /// restore: the board is down, and is restored again from the start when it answers. The result of a step
    /// of an older restore changes nothing. Returns the board's health if that changed.
    pub fn step_done(&mut self, board: BoardId, number: u64, ok: bool, now: Instant) -> Option<BoardHealth> {
        let spacing = self.spacing;
        self.change(board, |b| {
            if b.number != number || b.restore.is_empty() {
                return;
            }
            if !ok {
                b.restore.clear();
                b.health.alive = false;
                return;
            }
            // Devices one at a time, `spacing` apart (servo current); the first right after the clock.
            if let Some(RestoreStep::Device(_)) = b.restore.pop_front() {
                b.due = now + spacing;
            }
            if b.restore.is_empty() {
                b.health.alive = true;
                b.health.restoring = false;
            }
        })
    }

    /// What the next health poll of `board` sends; a device poll moves the rotation on.
    pub fn poll(&mut self, board: BoardId) -> Poll {
        let Some(b) = self.boards.get_mut(&board) else { return Poll::Clock };
        if !b.steps.contains(&RestoreStep::SetClock) {
            return Poll::Connect;
        }
        let devices: Vec<usize> =
            b.steps.iter().filter_map(|s| if let RestoreStep::Device(d) = s { Some(*d) } else { None }).collect();
        if devices.is_empty() || !b.health.alive || !b.restore.is_empty() {
            return Poll::Clock;
        }
        b.rotation = (b.rotation + 1) % devices.len();
        Poll::Device(devices[b.rotation])
    }

    /// A health poll of `board` (or any request to it): whether it answered, and whether its clock shows it
    /// rebooted ([`TrackCore::rebooted`]). A board that answers again, or rebooted, is restored. Returns its
    /// health if that changed.
    pub fn polled(&mut self, board: BoardId, alive: bool, rebooted: bool, now: Instant) -> Option<BoardHealth> {
        let before = self.boards.get(&board)?.health.clone();
        let came_back = alive && !before.alive && self.boards[&board].restore.is_empty();
        let mut changed = self.change(board, |b| b.health.alive = alive);
        if came_back || (alive && !before.restoring && rebooted) {
            changed = self.start_restore(board, now).or(changed);
        }
        changed
    }

    /// Whether a servo board's answer with `clock` (its `last_update`) shows it rebooted: its clock was set when
    /// it was restored, so seconds since boot mean it started again since.
    pub fn rebooted(&self, board: BoardId, clock: i64) -> bool {
        self.boards.get(&board).is_some_and(|b| b.steps.contains(&RestoreStep::SetClock)) && clock < CLOCK_SET_AFTER
    }

    /// Switches the mode: every board is then driven at its address in `to` and restored from the start.
    /// Returns the boards whose health changed.
    pub fn switch(&mut self, to: Mode, now: Instant) -> Vec<BoardHealth> {
        self.mode = to;
        let boards: Vec<BoardId> = self.boards.keys().copied().collect();
        boards
            .into_iter()
            .filter_map(|id| {
                let address = self.addresses[to as usize][id].clone();
                let moved = self.change(id, |b| b.health.address = address);
                self.start_restore(id, now).or(moved)
            })
            .collect()
    }

    /// Queues `board`'s whole restore, due at `now`.
    fn start_restore(&mut self, board: BoardId, now: Instant) -> Option<BoardHealth> {
        self.change(board, |b| {
            b.restore = b.steps.iter().copied().collect();
            b.due = now;
            b.number += 1;
            // A controller no train names has nothing to restore.
            b.health.restoring = !b.restore.is_empty();
        })
    }

    /// Applies `f` to a board; its health if that changed.
    fn change(&mut self, board: BoardId, f: impl FnOnce(&mut Board)) -> Option<BoardHealth> {
        let b = self.boards.get_mut(&board)?;
        let before = b.health.clone();
        f(b);
        (b.health != before).then(|| b.health.clone())
    }
}

#[cfg(test)]
mod tests;
