//! Automatic operation: the trains run the layout by themselves, through the interlocking.
//!
//! Plain Rust, no IO, time passed in, deterministic: [`Auto::tick`] looks at the track and answers with the
//! requests to make (each goes through the interlocking as a visitor's does) and what happened.
//!
//! A train without a speed controller stops only at a raised stop rail (as 2021-2023 had to), so a train runs on
//! until one holds it. Held at a stop rail of a station it calls at, it dwells; then the route to its next stop
//! rail is chosen (a setting for each point ahead; the station served least recently first, then the fewest
//! points thrown), and it departs when the interlocking lets its stop rail be lowered: its route ahead claimed
//! and clear. The interlocking raises the stop rail behind it. A train that cannot go says why: its dwell, the
//! train whose track its route would run into, or a visitor holding its station (mixed operation).
//!
//! Trains that wait on each other in a cycle, every one of them past its dwell, are a deadlock: every route of
//! every train in it has been tried (routing around is the only way out a stop-rail layout has), so it is
//! reported once it has lasted [`AutoConfig::deadlock_report_ms`].
//!
//! Its modules: `tick` (one round: each departure's requests tried in orders through the interlocking, with
//! the station rules' companions), `depart` (when a train may go, where to, what holds it), `ways` (the ways
//! from a stop rail to the next), `deadlock` (cycles of waiting trains), `holds` (what visitors hold in mixed
//! operation), `rule2023` (the 2023 rule alone, a baseline).

mod deadlock;
mod depart;
mod holds;
mod rule2023;
mod tick;
mod ways;

use std::sync::Arc;

pub use self::holds::{HeldAt, Holds, NoHolds, VisitorHolds};
pub use self::rule2023::rule_2023;

use crate::interlocking::Request;
use crate::layout::{DeviceId, DevicePlace, Dir, Layout, OnOff, StationId, TrainId};

/// How the layout is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Visitors and the operator run everything.
    #[default]
    Manual,
    /// Every train runs automatically; visitors' commands are refused with the reason "automatic operation".
    Auto,
    /// Automatic, except where a visitor operates (a station or a train is theirs until a quiet period passes).
    Mixed,
}

impl std::str::FromStr for Operation {
    type Err = String;

    fn from_str(s: &str) -> Result<Operation, String> {
        match s {
            "manual" => Ok(Operation::Manual),
            "auto" => Ok(Operation::Auto),
            "mixed" => Ok(Operation::Mixed),
            other => Err(format!("operation `{other}`: manual, auto or mixed")),
        }
    }
}

/// How often automatic operation (or the 2023 rule) looks at the track, ms (2023 polled every 200 ms).
pub const AUTO_EVERY_MS: u64 = 200;

/// Settings of automatic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoConfig {
    /// How long trains must have waited on each other in a cycle before it is reported as a deadlock, ms.
    pub deadlock_report_ms: u64,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig { deadlock_report_ms: 5000 }
    }
}

/// Why an automatic train stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Calling at a station until this time (ms).
    Dwell {
        /// When its dwell ends.
        until_ms: u64,
    },
    /// Its route ahead would run into this train's track (or is refused for another reason, in words).
    Route {
        /// The train in the way, if one is.
        by: Option<TrainId>,
        /// The interlocking's reason.
        reason: String,
    },
    /// Held back: going on would lock it with these trains (each of them, and it, with only ways to stops the
    /// others hold), a deadlock avoided.
    HeldBack {
        /// The trains it would lock with.
        with: Vec<TrainId>,
    },
    /// Behind this train, closer than the headway.
    Behind(TrainId),
    /// A visitor holds its station or the train (mixed operation).
    Visitor,
    /// Not running (crashed, derailed, taken off).
    Stopped,
}

impl Wait {
    /// The reason in words.
    pub fn describe(&self, layout: &Layout, now_ms: u64) -> String {
        let train = |t: TrainId| layout.trains[t].name.as_str();
        match self {
            Wait::Dwell { until_ms } => format!("dwell, {} s left", until_ms.saturating_sub(now_ms).div_ceil(1000)),
            Wait::Route { by: Some(t), .. } => format!("route blocked by {}", train(*t)),
            Wait::Route { by: None, reason } => format!("route refused: {reason}"),
            Wait::HeldBack { with } => {
                let names: Vec<&str> = with.iter().map(|&t| train(t)).collect();
                format!("held back: going on would lock it with {}", names.join(", "))
            }
            Wait::Behind(t) => format!("behind {}", train(*t)),
            Wait::Visitor => "held by a visitor".into(),
            Wait::Stopped => "not running".into(),
        }
    }
}

/// What automatic operation knows and plans of one train, for the doors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrainPlan {
    /// Whether it runs automatically now.
    pub automatic: bool,
    /// The stop rail it will stop at next (or stands at).
    pub next_stop: Option<DeviceId>,
    /// Why it stands, if it does.
    pub wait: Option<Wait>,
    /// How many times it has called at a station under automatic operation.
    pub calls: u32,
}

/// Something automatic operation did or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoEvent {
    /// A train came to stand at a station it calls at.
    Arrived {
        /// Train.
        train: TrainId,
        /// Station.
        station: StationId,
    },
    /// A train departed from a stop rail, after standing there this long (its dwell included), and this long
    /// past its dwell.
    Departed {
        /// Train.
        train: TrainId,
        /// Stop rail.
        device: DeviceId,
        /// How long it stood, ms.
        stood_ms: u64,
        /// How long past its dwell, ms.
        late_ms: u64,
    },
    /// Trains wait on each other in a cycle (reported once it has lasted the configured time).
    Deadlock {
        /// The trains in the cycle.
        trains: Vec<TrainId>,
    },
    /// A reported deadlock is over (a train of it found a route).
    DeadlockBroken {
        /// The trains that were in it.
        trains: Vec<TrainId>,
    },
    /// A train is held back where it stands: going on would lock it with these trains (a deadlock avoided).
    HeldBack {
        /// The train held back.
        train: TrainId,
        /// The trains it would lock with.
        with: Vec<TrainId>,
    },
}

impl AutoEvent {
    /// The event in words.
    pub fn describe(&self, layout: &Layout) -> String {
        let train = |t: &TrainId| layout.trains[*t].name.as_str();
        let trains = |ts: &[TrainId]| ts.iter().map(train).collect::<Vec<_>>().join(", ");
        match self {
            AutoEvent::Arrived { train: t, station } => {
                format!("{} calls at {}", train(t), layout.stations[*station].name_en)
            }
            AutoEvent::Departed { train: t, device, stood_ms, late_ms } => format!(
                "{} departs from {} after {:.0} s ({:.0} s past its dwell)",
                train(t),
                layout.devices[*device].name,
                *stood_ms as f64 / 1000.0,
                *late_ms as f64 / 1000.0
            ),
            AutoEvent::Deadlock { trains: ts } => {
                format!("deadlock: {} wait on each other and no way round is free", trains(ts))
            }
            AutoEvent::DeadlockBroken { trains: ts } => format!("deadlock of {} broken", trains(ts)),
            AutoEvent::HeldBack { train: t, with } => {
                format!("{} held back: going on would lock it with {} (a deadlock avoided)", train(t), trains(with))
            }
        }
    }
}

/// One train's bookkeeping.
#[derive(Debug, Clone, Default)]
struct Follow {
    /// The stop rail it stands at, since when (ms), and whether its departure was asked for.
    standing: Option<(DeviceId, u64, bool)>,
    /// Whether its being held back where it stands was told (once per stop).
    held_back_told: bool,
    plan: TrainPlan,
}

/// Automatic operation of one layout (see the module documentation).
pub struct Auto {
    layout: Arc<Layout>,
    config: AutoConfig,
    trains: Vec<Follow>,
    /// When each station was last called at (ms; `None`: never).
    served: Vec<Option<u64>>,
    /// The cycle of trains waiting on each other, since when, and whether it was reported.
    cycle: Option<(Vec<TrainId>, u64, bool)>,
    /// Until when each device is left alone after a request for it failed (ms; `None`: it has not failed).
    failed: Vec<Option<u64>>,
    /// The switch device at each node, if it has one.
    switch_at: Vec<Option<DeviceId>>,
    /// The stations with a platform along each segment.
    platforms: Vec<Vec<StationId>>,
    /// Each train's front segment at the last round.
    fronts: Vec<Option<usize>>,
}

/// A way from a stop rail to the next one: the settings of the switches it runs through, the stations whose
/// platforms it passes (the next stop's included), and where it ends.
#[derive(Debug, Clone, PartialEq)]
struct Way {
    settings: Vec<(DeviceId, OnOff)>,
    stations: Vec<StationId>,
    next_stop: DeviceId,
    /// The direction of travel at the next stop.
    dir: Dir,
}

impl Auto {
    /// Automatic operation of `layout`.
    pub fn new(layout: Arc<Layout>, config: AutoConfig) -> Auto {
        let mut switch_at = vec![None; layout.nodes.len()];
        for (id, d) in layout.devices.iter().enumerate() {
            if let DevicePlace::Switch { node } = d.place {
                switch_at[node] = Some(id);
            }
        }
        let mut platforms = vec![Vec::new(); layout.segments.len()];
        for p in &layout.platforms {
            if !platforms[p.seg].contains(&p.station) {
                platforms[p.seg].push(p.station);
            }
        }
        Auto {
            fronts: vec![None; layout.trains.len()],
            platforms,
            trains: vec![Follow::default(); layout.trains.len()],
            served: vec![None; layout.stations.len()],
            cycle: None,
            failed: vec![None; layout.devices.len()],
            switch_at,
            layout,
            config,
        }
    }

    /// A request of the last round failed on the track at `now_ms` (its board did not carry it out): plans
    /// leave its device alone for [`FAILED_RETRY_MS`] (a train that needs it waits, saying so; the others are
    /// routed around it), then try it again.
    pub fn failed(&mut self, request: &Request, now_ms: u64) {
        if let Request::Device { device, .. } = *request {
            self.failed[device] = Some(now_ms + FAILED_RETRY_MS);
        }
    }

    /// Whether `device` is left alone at `now` after a failure.
    fn out_of_use(&self, device: DeviceId, now: u64) -> bool {
        self.failed[device].is_some_and(|until| now < until)
    }

    /// Each train's plan, by train.
    pub fn plans(&self) -> Vec<TrainPlan> {
        self.trains.iter().map(|t| t.plan.clone()).collect()
    }
}

/// How far before its stop point a train with a speed controller starts braking, mm.
pub const BRAKE_MM: f64 = 600.0;

/// The share of its service speed a braking train comes to its stop point at.
pub const CREEP: f64 = 0.3;

/// How long plans leave a device alone after a request for it failed, ms.
pub const FAILED_RETRY_MS: u64 = 5_000;

/// How many stops beyond a way's next one its demand looks.
pub const LOOKAHEAD_HOPS: u64 = 3;
