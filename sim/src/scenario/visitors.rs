//! Simulated visitors: what they ask for, and when.
//!
//! An [`Action`] is a visitor's intent, resolved against the track at the moment it is sent into a concrete
//! [`Request`]. Adversarial actions aim at the trains: release a waiting train, throw the switch a train is
//! about to run over, run a train at full speed. The same actions feed the scenarios (from a seeded RNG) and
//! the property tests (from proptest strategies).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::spec::{ScenarioOperation, VisitorsSpec};
use crate::interlocking::{FULL_SPEED, Request};
use crate::layout::{DeviceKind, DevicePlace, Layout, NodeRole, OnOff, PointKind};
use crate::track::{DevicePosition, next_segment};
use crate::twin::TrackState;

/// A visitor's intent (indices wrap around the layout's devices or trains), or a scripted input: a recorded
/// command as it was made, an operation switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set a stop rail (the n-th, wrapping) ON or OFF.
    StopRail {
        /// Which stop rail.
        n: usize,
        /// Raise (true) or lower.
        on: bool,
    },
    /// Set a switch (the n-th, wrapping) ON or OFF.
    Switch {
        /// Which switch.
        n: usize,
        /// Diverging (true) or straight.
        on: bool,
    },
    /// Set a train's speed to a share of its maximum.
    Speed {
        /// Which train.
        train: usize,
        /// Per mille of its maximum speed.
        permille: u16,
    },
    /// Adversarial: lower the stop rail holding the train, or the next raised one ahead of it.
    Release {
        /// Which train.
        train: usize,
    },
    /// Adversarial: throw the first switch ahead of the train's front.
    ThrowAhead {
        /// Which train.
        train: usize,
    },
    /// Adversarial: run the train at its maximum speed.
    FullSpeed {
        /// Which train.
        train: usize,
    },
    /// A command exactly as given (a script's, a recording's): a visitor's, or the operator's (whom automatic
    /// operation does not refuse).
    Exact {
        /// The command.
        request: Request,
        /// Made by the operator.
        operator: bool,
    },
    /// The operator switches who runs the trains.
    Operation(ScenarioOperation),
}

/// An action at a simulation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// When, ms.
    pub time_ms: u64,
    /// What.
    pub action: Action,
}

/// How far ahead of a train adversarial visitors look for a switch or stop rail, in millimetres.
const LOOKAHEAD_MM: f64 = 3000.0;

/// Draws the visitors' actions for `duration_ms` from a seeded RNG: each visitor sends commands as a Poisson
/// process; each command is adversarial with the given share, and its kind follows the mix weights.
pub fn generate(v: &VisitorsSpec, duration_ms: u64, seed: u64) -> Vec<Timed> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rate = v.count as f64 * v.commands_per_s / 1000.0; // per ms
    let mut out = Vec::new();
    if rate <= 0.0 {
        return out;
    }
    let mut t = 0.0f64;
    loop {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        t += -u.ln() / rate;
        if t >= duration_ms as f64 {
            return out;
        }
        let total = v.stop_rail + v.switch + v.speed;
        let pick = rng.random_range(0.0..total);
        let adversarial = rng.random_bool(v.adversarial);
        let n: usize = rng.random_range(0..1 << 16);
        let on = rng.random_bool(0.5);
        let action = match (pick < v.stop_rail, pick < v.stop_rail + v.switch, adversarial) {
            (true, _, false) => Action::StopRail { n, on },
            (true, _, true) => Action::Release { train: n },
            (false, true, false) => Action::Switch { n, on },
            (false, true, true) => Action::ThrowAhead { train: n },
            (false, false, false) => Action::Speed { train: n, permille: rng.random_range(0..=1000) },
            (false, false, true) => Action::FullSpeed { train: n },
        };
        out.push(Timed { time_ms: t as u64, action });
    }
}

/// Turns an action into a request against the track as it is; `None` when it has no target.
pub fn resolve(action: Action, layout: &Layout, state: &TrackState) -> Option<Request> {
    let of_kind = |kind: DeviceKind| -> Vec<usize> {
        (0..layout.devices.len()).filter(|&d| layout.devices[d].kind == kind).collect()
    };
    let state_of = |on: bool| if on { OnOff::On } else { OnOff::Off };
    let train_of = |n: usize| (!layout.trains.is_empty()).then(|| n % layout.trains.len());
    match action {
        Action::StopRail { n, on } => {
            let rails = of_kind(DeviceKind::StopRail);
            (!rails.is_empty()).then(|| Request::Device { device: rails[n % rails.len()], state: state_of(on) })
        }
        Action::Switch { n, on } => {
            let switches = of_kind(DeviceKind::Switch);
            (!switches.is_empty())
                .then(|| Request::Device { device: switches[n % switches.len()], state: state_of(on) })
        }
        Action::Speed { train, permille } => {
            train_of(train).map(|t| Request::Speed { train: t, speed: (permille as i32 * FULL_SPEED / 1000) })
        }
        Action::FullSpeed { train } => train_of(train).map(|t| Request::Speed { train: t, speed: FULL_SPEED }),
        Action::Exact { request, .. } => Some(request),
        Action::Operation(_) => None,
        Action::Release { train } => {
            let t = &state.trains[train_of(train)?];
            let device = t.held_at.or_else(|| {
                ahead(layout, state, t).find_map(|(seg, _)| {
                    layout.stop_rails_on(seg).map(|(d, _)| d).find(|&d| state.devices[d] == DevicePosition::On)
                })
            })?;
            Some(Request::Device { device, state: OnOff::Off })
        }
        Action::ThrowAhead { train } => {
            let t = &state.trains[train_of(train)?];
            let device = ahead(layout, state, t).find_map(|(_, node)| match layout.nodes[node].role {
                NodeRole::Point { kind: PointKind::Switch { device, .. }, .. } => Some(device),
                _ => None,
            })?;
            let flipped = if state.devices[device] == DevicePosition::On { OnOff::Off } else { OnOff::On };
            debug_assert!(matches!(layout.devices[device].place, DevicePlace::Switch { .. }));
            Some(Request::Device { device, state: flipped })
        }
    }
}

/// The segments ahead of a train's front (with the node at the end of each), ignoring stop rails.
fn ahead<'a>(
    layout: &'a Layout,
    state: &'a TrackState,
    t: &crate::twin::TrainState,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let front = t.body.front(layout);
    let mut cur = Some((front.seg, front.dir));
    let mut walked = 0.0;
    std::iter::from_fn(move || {
        let (seg, dir) = cur?;
        let s = &layout.segments[seg];
        walked += s.length;
        cur = if walked < LOOKAHEAD_MM { next_segment(layout, seg, dir, &state.devices).ok() } else { None };
        Some((seg, s.node_ahead(dir)))
    })
}
