//! The interlocking: decides for every command whether it may reach the track.
//!
//! Plain Rust over plain data (the layout and a [`TrackState`]); no Bevy types. It enforces:
//! - the layout's static rule groups (a device state combination must match an allowed line);
//! - route locking: every train *claims* its body plus its route ahead up to the next raised stop rail
//!   (see [`route`]). Claims never overlap. A switch inside a claim cannot be thrown; a stop rail can only be
//!   lowered when the trains it releases get a safe, bounded route that overlaps no other claim;
//! - automatic protection: a stop rail is raised again once a train has passed it with its last car (closing
//!   the block behind the train), or earlier, while the train still covers it, as soon as another train's route
//!   ahead reaches it; and speed supervision caps a train that closes on another one.
//!
//! Raising a stop rail and slowing a train only shrink claims, so they are always accepted.

pub mod guarded;
pub mod route;

use std::sync::Arc;

use crate::layout::{DeviceId, DeviceKind, DevicePlace, Layout, OnOff, TrainId};
use crate::track::DevicePosition;
use crate::twin::{EventKind, SimCommand, SimEvent, TrackState, TrainStatus};
use route::{Claim, MARGIN_MM, RouteEnd, UnsafeAt, gap_to};

/// Distance (mm) within which speed supervision keeps a train no faster than the train ahead.
pub const HEADWAY_MM: f64 = 400.0;

/// The top of the speed scale every door speaks (the 2021 scale): speed `n` runs a train at `n`% of its top
/// speed.
pub const FULL_SPEED: i32 = 100;

/// A command as a visitor or operator asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Set a stop rail or switch ON or OFF.
    Device {
        /// Device.
        device: DeviceId,
        /// Wanted state.
        state: OnOff,
    },
    /// Set a train's speed on the 2021 scale, `-FULL_SPEED..=FULL_SPEED` (negative: reverse).
    Speed {
        /// Train.
        train: TrainId,
        /// Speed, percent of the train's top speed.
        speed: i32,
    },
}

impl Request {
    /// The simulation command that carries out this request on `layout`.
    pub fn command(self, layout: &Layout) -> SimCommand {
        match self {
            Request::Device { device, state } => SimCommand::SetDevice { device, state },
            Request::Speed { train, speed } => SimCommand::SetSpeed { train, speed: mm_s(layout, train, speed) },
        }
    }
}

/// A speed on the 2021 scale as mm/s of `train`.
pub fn mm_s(layout: &Layout, train: TrainId, speed: i32) -> i32 {
    (layout.trains[train].max_speed as i64 * speed as i64 / FULL_SPEED as i64) as i32
}

/// A speed in mm/s of `train` on the 2021 scale, rounded down.
pub fn on_scale(layout: &Layout, train: TrainId, mm_s: u32) -> i32 {
    (mm_s as i64 * FULL_SPEED as i64 / layout.trains[train].max_speed.max(1) as i64).min(FULL_SPEED as i64) as i32
}

/// Which rule refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// A station rule group does not allow the resulting combination.
    StationRule,
    /// A train occupies the switch or is routed over it.
    SwitchInUse,
    /// Releasing a train would send it into another train's track.
    RouteOccupied,
    /// Releasing a train would send it onto a switch set against it or stuck between positions.
    RouteUnsafe,
    /// Released, a train would find no raised stop rail ahead.
    NoStopAhead,
    /// Reverse running is not protected by the blocks.
    Reverse,
    /// A train would depart into a block its detectors report occupied.
    BlockOccupied,
    /// The command names a device or train the layout does not have.
    Unknown,
    /// A speed off the scale.
    OutOfRange,
    /// Automatic operation owns what the command is for.
    Automatic,
}

impl RejectKind {
    /// Every rule.
    pub const ALL: [RejectKind; 10] = [
        RejectKind::StationRule,
        RejectKind::SwitchInUse,
        RejectKind::RouteOccupied,
        RejectKind::RouteUnsafe,
        RejectKind::NoStopAhead,
        RejectKind::Reverse,
        RejectKind::BlockOccupied,
        RejectKind::Unknown,
        RejectKind::OutOfRange,
        RejectKind::Automatic,
    ];

    /// The rule whose [`RejectKind::label`] is `label`.
    pub fn from_label(label: &str) -> Option<RejectKind> {
        RejectKind::ALL.into_iter().find(|k| k.label() == label)
    }

    /// A short name for summaries.
    pub fn label(self) -> &'static str {
        match self {
            RejectKind::StationRule => "station rule",
            RejectKind::SwitchInUse => "switch in use",
            RejectKind::RouteOccupied => "route occupied",
            RejectKind::RouteUnsafe => "route unsafe",
            RejectKind::NoStopAhead => "no stop ahead",
            RejectKind::Reverse => "reverse running",
            RejectKind::BlockOccupied => "block occupied",
            RejectKind::Unknown => "unknown device or train",
            RejectKind::OutOfRange => "out of range",
            RejectKind::Automatic => "automatic operation",
        }
    }
}

/// A refusal, with a reason a visitor understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Which rule.
    pub kind: RejectKind,
    /// The reason in words, naming the device and the train.
    pub message: String,
}

/// The interlocking of one layout.
pub struct Interlocking {
    layout: Arc<Layout>,
    enabled: bool,
}

impl Interlocking {
    /// An interlocking for `layout`; `enabled = false` accepts everything (for tests that need collisions).
    pub fn new(layout: Arc<Layout>, enabled: bool) -> Interlocking {
        Interlocking { layout, enabled }
    }

    /// Whether it checks anything.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Decides whether `req` may be applied to the track in `state`.
    pub fn check(&self, req: &Request, state: &TrackState) -> Result<(), Rejection> {
        let unknown = |what: &str, id: usize| Rejection {
            kind: RejectKind::Unknown,
            message: format!("there is no {what} #{id}"),
        };
        match *req {
            Request::Device { device, .. } if device >= self.layout.devices.len() => {
                return Err(unknown("device", device));
            }
            Request::Speed { train, .. } if train >= self.layout.trains.len() => return Err(unknown("train", train)),
            Request::Speed { speed, .. } if speed.abs() > FULL_SPEED => {
                return Err(Rejection {
                    kind: RejectKind::OutOfRange,
                    message: format!("speed {speed} is out of range -{FULL_SPEED}..{FULL_SPEED}"),
                });
            }
            _ if !self.enabled => return Ok(()),
            _ => {}
        }
        match *req {
            Request::Speed { train, speed } if speed < 0 => Err(Rejection {
                kind: RejectKind::Reverse,
                message: format!(
                    "{} cannot run in reverse: the blocks only protect forward running",
                    self.train_name(train)
                ),
            }),
            Request::Speed { .. } => Ok(()),
            Request::Device { device, state: wanted } => {
                if state.devices[device] == DevicePosition::from(wanted) {
                    return Ok(());
                }
                let d = &self.layout.devices[device];
                if d.kind == DeviceKind::StopRail && wanted == OnOff::On {
                    return Ok(());
                }
                self.check_rules(device, wanted, &state.devices)?;
                match d.place {
                    DevicePlace::Switch { node } => {
                        let claims = self.claims(state, &state.devices);
                        match claims.iter().find(|c| c.holds_point(node)) {
                            Some(c) => Err(Rejection {
                                kind: RejectKind::SwitchInUse,
                                message: format!(
                                    "{} cannot be switched now: {} is on it or about to run over it",
                                    d.name,
                                    self.train_name(c.train)
                                ),
                            }),
                            None => Ok(()),
                        }
                    }
                    DevicePlace::StopRail { .. } => {
                        self.check_block(device, state)?;
                        self.check_release(device, state)
                    }
                }
            }
        }
    }

    /// [`Interlocking::check`] while device commands are still on their way to their boards: each of `pending`
    /// (device, state) may or may not have been carried out yet, so `req` is allowed only if it is allowed
    /// whichever of them have (every combination is checked: a device with several pending commands may stand
    /// at any of their states, or where it is now). The first refusal found is the answer.
    pub fn check_pending(
        &self,
        req: &Request,
        state: &TrackState,
        pending: &[(DeviceId, OnOff)],
    ) -> Result<(), Rejection> {
        let mut options: Vec<(DeviceId, Vec<DevicePosition>)> = Vec::new();
        for &(device, s) in pending.iter().filter(|(d, _)| *d < state.devices.len()) {
            let at = match options.iter_mut().find(|(d, _)| *d == device) {
                Some((_, at)) => at,
                None => {
                    options.push((device, vec![state.devices[device]]));
                    &mut options.last_mut().expect("just pushed").1
                }
            };
            if !at.contains(&DevicePosition::from(s)) {
                at.push(DevicePosition::from(s));
            }
        }
        let mut world = state.clone();
        let mut choice = vec![0; options.len()];
        loop {
            for ((device, at), &c) in options.iter().zip(&choice) {
                world.devices[*device] = at[c];
            }
            self.check(req, &world)?;
            // The next combination (a counter whose digits are the choices).
            let Some(i) = (0..choice.len()).find(|&i| choice[i] + 1 < options[i].1.len()) else { return Ok(()) };
            choice[i] += 1;
            choice[..i].fill(0);
        }
    }

    fn train_name(&self, id: TrainId) -> &str {
        &self.layout.trains[id].name
    }

    fn claims(&self, state: &TrackState, devices: &[DevicePosition]) -> Vec<Claim> {
        state.trains.iter().map(|t| Claim::of(&self.layout, devices, t)).collect()
    }

    /// A change of `device` to `wanted` must leave each station rule group it belongs to in an allowed state, or,
    /// where the group already is not (the protection raised a stop rail behind a train, which no rule may
    /// stop), no further from one: every device of the group stays usable, and the change that puts the group
    /// right is allowed.
    fn check_rules(&self, device: DeviceId, wanted: OnOff, devices: &[DevicePosition]) -> Result<(), Rejection> {
        let after = |d: DeviceId| {
            if d == device { Some(wanted) } else { devices[d].state() }
        };
        let before = |d: DeviceId| devices[d].state();
        for group in self.layout.rules.iter().filter(|g| g.devices.contains(&device)) {
            let (was, now) = (rule_distance(group, before), rule_distance(group, after));
            if !(now == 0 || (was > 0 && now <= was)) {
                let name = &self.layout.devices[device].name;
                let verb = self.layout.devices[device].kind.words(wanted);
                return Err(Rejection {
                    kind: RejectKind::StationRule,
                    message: format!(
                        "{name} cannot be {verb} now: station rule {} does not allow it with the other devices as they are",
                        group.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Lowering stop rail `device` where a layout has blocks: the block trains depart into from it must be free
    /// (`OPEN`), as its detectors report.
    fn check_block(&self, device: DeviceId, state: &TrackState) -> Result<(), Rejection> {
        let occupied = self
            .layout
            .blocks
            .iter()
            .enumerate()
            .find(|(id, b)| b.stops.contains(&device) && state.blocks.get(*id) == Some(&true));
        match occupied {
            Some((_, b)) => Err(Rejection {
                kind: RejectKind::BlockOccupied,
                message: format!(
                    "{} cannot be lowered now: block {} ahead is occupied",
                    self.layout.devices[device].name, b.id
                ),
            }),
            None => Ok(()),
        }
    }

    /// Lowering stop rail `device`: every train it releases needs a safe, bounded, unclaimed route.
    fn check_release(&self, device: DeviceId, state: &TrackState) -> Result<(), Rejection> {
        let name = &self.layout.devices[device].name;
        let before = self.claims(state, &state.devices);
        let mut devices = state.devices.clone();
        devices[device] = DevicePosition::Off;
        let released: Vec<usize> =
            (0..before.len()).filter(|&i| before[i].route.end == RouteEnd::StopRail(device)).collect();
        let after: Vec<Claim> = released.iter().map(|&i| Claim::of(&self.layout, &devices, &state.trains[i])).collect();
        for claim in &after {
            let train = self.train_name(claim.train);
            match claim.route.end {
                RouteEnd::StopRail(_) => {}
                RouteEnd::Unbounded => {
                    return Err(Rejection {
                        kind: RejectKind::NoStopAhead,
                        message: format!(
                            "{name} cannot be lowered now: no raised stop rail would stop {train} after it"
                        ),
                    });
                }
                RouteEnd::Unsafe(at) => {
                    let what = match at {
                        UnsafeAt::Switch(crate::track::Blocked::SwitchBetween(d)) => {
                            format!("{}, which is stuck between positions", self.layout.devices[d].name)
                        }
                        UnsafeAt::Switch(crate::track::Blocked::TrailedAgainst(d)) => {
                            format!("{}, which is set against it", self.layout.devices[d].name)
                        }
                        UnsafeAt::StopRail(d) => {
                            format!("{}, which is stuck between positions", self.layout.devices[d].name)
                        }
                    };
                    return Err(Rejection {
                        kind: RejectKind::RouteUnsafe,
                        message: format!("{name} cannot be lowered now: {train} would run onto {what}"),
                    });
                }
            }
            let others = before
                .iter()
                .filter(|c| c.train != claim.train)
                .map(|c| after.iter().find(|a| a.train == c.train).unwrap_or(c));
            for other in others {
                if claim.conflicts(other) {
                    return Err(Rejection {
                        kind: RejectKind::RouteOccupied,
                        message: format!(
                            "{name} cannot be lowered now: {train} would run into the track of {}",
                            self.train_name(other.train)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Automatic protection after a step: raise every lowered stop rail a train has just passed with its last
    /// car.
    pub fn protect_after(&self, events: &[SimEvent]) -> Vec<SimCommand> {
        if !self.enabled {
            return Vec::new();
        }
        events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::StopRailCleared { device, .. } => Some(SimCommand::SetDevice { device, state: OnOff::On }),
                _ => None,
            })
            .collect()
    }

    /// Speed supervision: a train closing on another is capped to the other's speed, and stopped at the margin;
    /// and a lowered stop rail that a train still covers is raised at once when another train's route ahead
    /// reaches it (it closes the block behind the first train before the second can enter it). Returns the
    /// limit changes and the stop rails to raise.
    pub fn supervise(&self, state: &TrackState) -> Vec<SimCommand> {
        if !self.enabled {
            return Vec::new();
        }
        let bodies: Vec<Vec<crate::track::Span>> =
            state.trains.iter().map(|t| t.body.spans(&self.layout).collect()).collect();
        let mut changes = Vec::new();
        for t in state.trains.iter().filter(|t| t.status == TrainStatus::Running && t.set_speed >= 0) {
            let route = route::route_ahead(&self.layout, &state.devices, t.body.front(&self.layout));
            for device in self.covered_on(&route, state, &bodies, t.id) {
                let raise = SimCommand::SetDevice { device, state: OnOff::On };
                if !changes.contains(&raise) {
                    changes.push(raise);
                }
            }
            let nearest = state
                .trains
                .iter()
                .filter(|o| o.id != t.id && o.status != TrainStatus::Removed)
                .filter_map(|o| gap_to(&route, &bodies[o.id]).map(|g| (g, o)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let limit = match nearest {
                Some((gap, _)) if gap < MARGIN_MM => Some(0),
                Some((gap, leader)) if gap < HEADWAY_MM => Some(leader.effective_speed()),
                _ => None,
            };
            if limit != t.limit {
                changes.push(SimCommand::SetSpeedLimit { train: t.id, limit });
            }
        }
        changes
    }

    /// The lowered stop rails along `route` (of train `own`) that another train's body covers.
    fn covered_on(
        &self,
        route: &route::Route,
        state: &TrackState,
        bodies: &[Vec<crate::track::Span>],
        own: TrainId,
    ) -> Vec<DeviceId> {
        let mut covered = Vec::new();
        for (span, _) in &route.spans {
            for (device, offset) in self.layout.stop_rails_on(span.seg) {
                if state.devices[device] != DevicePosition::Off || !span.contains(offset) {
                    continue;
                }
                let under = bodies.iter().enumerate().any(|(o, b)| {
                    o != own
                        && state.trains[o].status != TrainStatus::Removed
                        && b.iter().any(|s| s.seg == span.seg && s.contains(offset))
                });
                if under {
                    covered.push(device);
                }
            }
        }
        covered
    }
}

/// How far a station rule group's state (`state` of each device) is from an allowed one: the fewest devices that
/// differ from a line of the group (0: allowed).
fn rule_distance(group: &crate::layout::RuleGroup, state: impl Fn(DeviceId) -> Option<OnOff>) -> usize {
    group
        .allowed
        .iter()
        .map(|line| {
            let on = line.on.iter().filter(|&&d| state(d) != Some(OnOff::On)).count();
            on + line.off.iter().filter(|&&d| state(d) != Some(OnOff::Off)).count()
        })
        .min()
        .unwrap_or(0)
}
