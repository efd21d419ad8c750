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

use std::sync::Arc;

use crate::interlocking::route::{Claim, RouteEnd, gap_to, route_ahead};
use crate::interlocking::{Interlocking, RejectKind, Rejection, Request};
use crate::layout::{DeviceId, DeviceKind, DevicePlace, Dir, Layout, NodeId, OnOff, Placement, StationId, TrainId};
use crate::track::{DevicePosition, next_segment, offset_of};
use crate::twin::{TrackState, TrainStatus};

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

/// What a visitor holds in mixed operation.
pub trait Holds {
    /// Whether a visitor holds the devices of `station`.
    fn station(&self, station: StationId) -> bool;
    /// Whether a visitor holds `train`.
    fn train(&self, train: TrainId) -> bool;
}

/// What visitors hold in mixed operation: a station whose device a visitor commanded, a train whose speed a
/// visitor set, each until a time (`T`: simulation ms, or a wall-clock instant).
#[derive(Debug, Clone)]
pub struct VisitorHolds<T> {
    stations: Vec<Option<T>>,
    trains: Vec<Option<T>>,
}

impl<T: Copy + PartialOrd> VisitorHolds<T> {
    /// Nothing held on `layout`.
    pub fn new(layout: &Layout) -> VisitorHolds<T> {
        VisitorHolds { stations: vec![None; layout.stations.len()], trains: vec![None; layout.trains.len()] }
    }

    /// A visitor's `request`: its station or train is theirs until `until` (a request naming nothing the
    /// layout has holds nothing).
    pub fn commanded(&mut self, layout: &Layout, request: &Request, until: T) {
        match *request {
            Request::Device { device, .. } if device < layout.devices.len() => {
                self.stations[layout.devices[device].station] = Some(until);
            }
            Request::Speed { train, .. } if train < layout.trains.len() => self.trains[train] = Some(until),
            _ => {}
        }
    }

    /// What is held at `now`.
    pub fn at(&self, now: T) -> HeldAt<'_, T> {
        HeldAt { holds: self, now }
    }
}

/// [`VisitorHolds`] at one instant.
pub struct HeldAt<'a, T> {
    holds: &'a VisitorHolds<T>,
    now: T,
}

impl<T: Copy + PartialOrd> Holds for HeldAt<'_, T> {
    fn station(&self, station: StationId) -> bool {
        self.holds.stations[station].is_some_and(|until| self.now < until)
    }
    fn train(&self, train: TrainId) -> bool {
        self.holds.trains[train].is_some_and(|until| self.now < until)
    }
}

/// Nobody holds anything (automatic operation).
pub struct NoHolds;

impl Holds for NoHolds {
    fn station(&self, _: StationId) -> bool {
        false
    }
    fn train(&self, _: TrainId) -> bool {
        false
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

    /// One round at `state.time_ms`: the requests to make, in order (the train standing longest first; a
    /// train's switches, then its stop rail), and what happened. `interlocking` decides what may be done (each
    /// request is checked again when made); `holds`: what visitors hold.
    pub fn tick(
        &mut self,
        state: &TrackState,
        interlocking: &Interlocking,
        holds: &dyn Holds,
    ) -> (Vec<Request>, Vec<AutoEvent>) {
        let now = state.time_ms;
        let layout = self.layout.clone();
        let mut requests = Vec::new();
        let mut events = Vec::new();
        // Switches and stop rails this round's requests set, so that later trains plan with them.
        let mut world = state.clone();
        for r in self.restore(state, holds) {
            set(&mut world, &r);
            requests.push(r);
        }
        let mut waits_for: Vec<Option<TrainId>> = vec![None; layout.trains.len()];
        // The train standing longest first: it is first to claim the track it waits for (else trains arriving
        // from another side could take it again and again).
        let mut order: Vec<TrainId> = (0..state.trains.len()).collect();
        order.sort_by_key(|&t| self.trains[t].standing.map_or(u64::MAX, |(_, since, _)| since));
        for train in order {
            let t = &state.trains[train];
            // A train coming onto a platform serves its station.
            let seg = t.body.segs.back().map(|x| x.0);
            if seg != self.fronts[train] {
                self.fronts[train] = seg;
                for &station in seg.map_or(&[][..], |s| &self.platforms[s][..]) {
                    self.served[station] = Some(now);
                }
            }
            let held_by_visitor = holds.train(train);
            let follow = &mut self.trains[train];
            follow.plan.automatic = !held_by_visitor && t.status == TrainStatus::Running;
            if t.status != TrainStatus::Running {
                follow.standing = None;
                follow.plan.wait = Some(Wait::Stopped);
                continue;
            }
            let Some(device) = t.held_at else {
                follow.standing = None;
                let route = route_ahead(&layout, &world.devices, t.body.front(&layout));
                follow.plan.next_stop = match route.end {
                    RouteEnd::StopRail(d) => Some(d),
                    _ => None,
                };
                follow.plan.wait = None;
                if t.limit == Some(0)
                    && let Some(leader) = nearest_ahead(&layout, state, train)
                {
                    follow.plan.wait = Some(Wait::Behind(leader));
                    waits_for[train] = Some(leader);
                }
                continue;
            };
            let station = layout.devices[device].station;
            let (since, asked) = match follow.standing {
                Some((d, since, asked)) if d == device => (since, asked),
                _ => {
                    follow.standing = Some((device, now, false));
                    follow.held_back_told = false;
                    if layout.trains[train].calls_at(station) {
                        self.served[station] = Some(now);
                        follow.plan.calls += 1;
                        events.push(AutoEvent::Arrived { train, station });
                    }
                    (now, false)
                }
            };
            let follow = &mut self.trains[train];
            follow.plan.next_stop = Some(device);
            let dwell = if layout.trains[train].calls_at(station) { layout.trains[train].dwell_ms } else { 0 };
            if held_by_visitor || holds.station(station) {
                follow.plan.wait = Some(Wait::Visitor);
                continue;
            }
            if now < since + dwell {
                follow.plan.wait = Some(Wait::Dwell { until_ms: since + dwell });
                continue;
            }
            match self.depart(&world, interlocking, train, device) {
                Ok((way, made)) => {
                    made.iter().for_each(|r| set(&mut world, r));
                    requests.extend(made);
                    // Braked to a creep at its stop point, a train with a speed controller departs at its service
                    // speed (the next round's profile would be a round late).
                    if layout.trains[train].controller.is_some() && self.profile(&world, train) != t.set_speed as u32 {
                        let speed = crate::interlocking::on_scale(&layout, train, self.profile(&world, train));
                        requests.push(Request::Speed { train, speed });
                    }
                    let follow = &mut self.trains[train];
                    follow.plan.next_stop = Some(way.next_stop);
                    follow.plan.wait = None;
                    follow.standing = Some((device, since, true));
                    if !asked {
                        let stood_ms = now - since;
                        let late_ms = stood_ms.saturating_sub(dwell);
                        events.push(AutoEvent::Departed { train, device, stood_ms, late_ms });
                    }
                }
                Err(wait) => {
                    if let Wait::Route { by: Some(other), .. } = wait {
                        waits_for[train] = Some(other);
                    }
                    let follow = &mut self.trains[train];
                    if let Wait::HeldBack { with } = &wait
                        && !std::mem::replace(&mut follow.held_back_told, true)
                    {
                        events.push(AutoEvent::HeldBack { train, with: with.clone() });
                    }
                    follow.plan.wait = Some(wait);
                }
            }
        }
        events.extend(self.follow_cycle(&waits_for, now));
        (requests, events)
    }

    /// What automatic operation puts back where nobody holds it: a lowered stop rail no train is over raised
    /// (so that trains call at its station), an automatic train's speed its service speed.
    fn restore(&self, state: &TrackState, holds: &dyn Holds) -> Vec<Request> {
        let layout = &self.layout;
        let mut out = Vec::new();
        for (device, d) in layout.devices.iter().enumerate() {
            let DevicePlace::StopRail { seg, offset } = d.place else { continue };
            if state.devices[device] != DevicePosition::Off || holds.station(d.station) {
                continue;
            }
            if self.out_of_use(device, state.time_ms) {
                continue;
            }
            let under = state
                .trains
                .iter()
                .filter(|t| t.status != TrainStatus::Removed)
                .any(|t| t.body.covers(layout, seg, offset));
            if !under {
                out.push(Request::Device { device, state: OnOff::On });
            }
        }
        for (train, t) in state.trains.iter().enumerate() {
            let speed = crate::interlocking::on_scale(layout, train, self.profile(state, train));
            let set = crate::interlocking::on_scale(layout, train, t.set_speed.max(0) as u32);
            if t.status == TrainStatus::Running && !holds.train(train) && (t.set_speed < 0 || set != speed) {
                out.push(Request::Speed { train, speed });
            }
        }
        out
    }

    /// The speed automatic operation runs `train` at, mm/s: its service speed; a train with a speed controller
    /// brakes for a raised stop rail ahead (its stop point), from [`BRAKE_MM`] before it down to [`CREEP`] of its
    /// service speed at it, in tenths (so that a few commands do it). The interlocking's supervision caps it
    /// behind another train on top of this.
    fn profile(&self, state: &TrackState, train: TrainId) -> u32 {
        let layout = &self.layout;
        let service = layout.trains[train].speed;
        if layout.trains[train].controller.is_none() {
            return service;
        }
        let route = route_ahead(layout, &state.devices, state.trains[train].body.front(layout));
        let to_stop: f64 = route.spans.iter().map(|(s, _)| s.hi - s.lo).sum();
        if !matches!(route.end, RouteEnd::StopRail(_)) || to_stop >= BRAKE_MM {
            return service;
        }
        let share = ((CREEP + (1.0 - CREEP) * to_stop / BRAKE_MM) * 10.0).ceil() / 10.0;
        (service as f64 * share).round() as u32
    }

    /// The requests that depart `train` from stop rail `device` by the best way the interlocking allows, or
    /// why it cannot go (the preferred way's refusal, and the train in its way).
    fn depart(
        &self,
        state: &TrackState,
        interlocking: &Interlocking,
        train: TrainId,
        device: DeviceId,
    ) -> Result<(Way, Vec<Request>), Wait> {
        let mut ways = self.ways(state, train, device);
        let calls = |w: &Way| self.layout.trains[train].calls_at(self.layout.devices[w.next_stop].station);
        let thrown = |w: &Way| w.settings.iter().filter(|(d, s)| state.devices[*d] != DevicePosition::from(*s)).count();
        // The way towards the stations waiting longest for a train first (see `demand`).
        let demand = |w: &Way| std::cmp::Reverse(self.demand(state, train, w));
        // (Cached: a way's demand walks the ways beyond it.)
        ways.sort_by_cached_key(|w| (!calls(w), demand(w), thrown(w)));
        let mut refused: Option<(TrackState, Way, Rejection)> = None;
        let (mut out_of_use, mut locks) = (None, None);
        for way in ways {
            let mut world = state.clone();
            match attempt(&self.layout, interlocking, &mut world, device, &way) {
                Ok(made) => match made.iter().find_map(|r| self.needs_failed(r, state.time_ms)) {
                    Some(broken) => {
                        out_of_use.get_or_insert(broken);
                    }
                    None => match self.would_lock(state, train, &way) {
                        Some(with) => {
                            locks.get_or_insert(with);
                        }
                        None => return Ok((way, made)),
                    },
                },
                Err(r) => {
                    refused.get_or_insert((world, way, r));
                }
            }
        }
        if let Some(with) = locks {
            return Err(Wait::HeldBack { with });
        }
        Err(match (refused, out_of_use) {
            (_, Some(broken)) => {
                let name = &self.layout.devices[broken].name;
                Wait::Route { by: None, reason: format!("{name} failed: tried again in a few seconds") }
            }
            (Some((world, way, r)), None) => {
                let by = match r.kind {
                    RejectKind::StationRule => self.held_by_rule(&world, train, device, &way),
                    _ => self.in_the_way(&world, train, device),
                };
                Wait::Route { by, reason: r.message }
            }
            (None, None) => Wait::Route { by: None, reason: "no stop rail ahead to run to".into() },
        })
    }

    /// Whether `train` running `way` would be locked in: with it at the way's next stop, each train is where it
    /// stands or will stop next, and a train can move on if one of its ways ends at a stop no train holds or
    /// one held by a train that can move on; the trains left (a knot: each has only ways to stops the others
    /// hold, e.g. a loop's every stop taken with no way out) would never move again. The others of the knot,
    /// if `train` is in it.
    fn would_lock(&self, state: &TrackState, train: TrainId, way: &Way) -> Option<Vec<TrainId>> {
        let n = state.trains.len();
        let mut at: Vec<Option<(DeviceId, Dir)>> = (0..n).map(|t| self.stop_of(state, t)).collect();
        at[train] = Some((way.next_stop, way.dir));
        let holder =
            |stop: DeviceId, at: &[Option<(DeviceId, Dir)>]| at.iter().position(|a| a.map(|a| a.0) == Some(stop));
        let running = |t: TrainId| state.trains[t].status == TrainStatus::Running;
        // A train with no stop ahead runs on.
        let mut free: Vec<bool> = (0..n).map(|t| running(t) && at[t].is_none()).collect();
        loop {
            let mut changed = false;
            for t in 0..n {
                let Some((stop, dir)) = at[t].filter(|_| !free[t] && running(t)) else { continue };
                let moves =
                    self.ways_from(&state.devices, t, stop, dir).iter().any(|w| match holder(w.next_stop, &at) {
                        None => true,
                        Some(other) => other != t && free[other],
                    });
                if moves {
                    free[t] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let locked = !free[train] && running(train);
        locked.then(|| (0..n).filter(|&t| t != train && !free[t] && at[t].is_some()).collect())
    }

    /// The stop rail `train` stands at or will stop at next on its set route, with its direction there (`None`:
    /// it runs on, no raised stop rail ahead).
    fn stop_of(&self, state: &TrackState, train: TrainId) -> Option<(DeviceId, Dir)> {
        let t = &state.trains[train];
        let front = t.body.front(&self.layout);
        if let Some(d) = t.held_at {
            return Some((d, front.dir));
        }
        let route = route_ahead(&self.layout, &state.devices, front);
        match route.end {
            RouteEnd::StopRail(d) => Some((d, route.spans.last().map_or(front.dir, |s| s.1))),
            _ => None,
        }
    }

    /// The device of `request` if it is left alone after a failure at `now`.
    fn needs_failed(&self, request: &Request, now: u64) -> Option<DeviceId> {
        match *request {
            Request::Device { device, .. } if self.out_of_use(device, now) => Some(device),
            _ => None,
        }
    }

    /// The train standing at a stop rail of a station rule that `train`'s departure from `device` by `way`
    /// needs changed (the rule would have that stop rail lowered, which would release the train).
    fn held_by_rule(&self, world: &TrackState, train: TrainId, device: DeviceId, way: &Way) -> Option<TrainId> {
        let mine = |d: DeviceId| d == device || way.settings.iter().any(|(s, _)| *s == d);
        let layout = &self.layout;
        layout.rules.iter().filter(|rule| rule.devices.iter().any(|&d| mine(d))).find_map(|rule| {
            rule.devices
                .iter()
                .filter(|&&d| !mine(d))
                .find_map(|&d| world.trains.iter().find(|t| t.id != train && t.held_at == Some(d)).map(|t| t.id))
        })
    }

    /// The train whose claim the route of `train`, released from `device` with the devices of `world`, would
    /// run into.
    fn in_the_way(&self, world: &TrackState, train: TrainId, device: DeviceId) -> Option<TrainId> {
        let mut devices = world.devices.clone();
        devices[device] = DevicePosition::Off;
        let mine = Claim::of(&self.layout, &devices, &world.trains[train]);
        world
            .trains
            .iter()
            .filter(|o| o.id != train && o.status != TrainStatus::Removed)
            .find(|o| mine.conflicts(&Claim::of(&self.layout, &world.devices, o)))
            .map(|o| o.id)
    }

    /// How much `way` is wanted: the longest any station on it, or within [`LOOKAHEAD_HOPS`] stops beyond it,
    /// has waited for a train, each divided by one plus the stops between (a station never served has waited
    /// since the start).
    fn demand(&self, state: &TrackState, train: TrainId, way: &Way) -> u64 {
        let now = state.time_ms;
        let waited = |s: StationId| now - self.served[s].unwrap_or(0) + 1;
        let mut best = way.stations.iter().map(|&s| waited(s)).max().unwrap_or(0);
        let mut frontier = vec![(way.next_stop, way.dir)];
        let mut seen = frontier.clone();
        for hops in 1..=LOOKAHEAD_HOPS {
            let mut next = Vec::new();
            for &(stop, dir) in &frontier {
                for w in self.ways_from(&state.devices, train, stop, dir) {
                    best = best.max(w.stations.iter().map(|&s| waited(s) / (hops + 1)).max().unwrap_or(0));
                    if !seen.contains(&(w.next_stop, w.dir)) {
                        seen.push((w.next_stop, w.dir));
                        next.push((w.next_stop, w.dir));
                    }
                }
            }
            frontier = next;
        }
        best
    }

    /// Every way from stop rail `device` (where `train` stands) to a next stop rail, through any setting of the
    /// switches it meets (a trailed switch set for the branch it comes from).
    fn ways(&self, state: &TrackState, train: TrainId, device: DeviceId) -> Vec<Way> {
        self.ways_from(&state.devices, train, device, state.trains[train].body.front(&self.layout).dir)
    }

    /// Every way of `train` from stop rail `device` run over in `dir` to a next stop rail.
    fn ways_from(&self, devices: &[DevicePosition], train: TrainId, device: DeviceId, dir: Dir) -> Vec<Way> {
        let DevicePlace::StopRail { seg, offset } = self.layout.devices[device].place else { return Vec::new() };
        let mut out = Vec::new();
        let start = Placement { seg, offset, dir };
        self.walk(&mut devices.to_vec(), train, start, (Vec::new(), Vec::new()), 0.0, &mut out);
        out
    }

    /// Walks `train` on from `at` to the next stop rail, branching at every switch not yet set on this way (at a
    /// switch it faces, only onto the branch its service fixes, if it fixes one).
    fn walk(
        &self,
        devices: &mut Vec<DevicePosition>,
        train: TrainId,
        at: Placement,
        (settings, stations): (Vec<(DeviceId, OnOff)>, Vec<StationId>),
        walked: f64,
        out: &mut Vec<Way>,
    ) {
        let layout = &self.layout;
        let s = &layout.segments[at.seg];
        let from = offset_of(s, at.dir, at.offset);
        let next_stop = layout
            .stop_rails_on(at.seg)
            .map(|(d, o)| (d, offset_of(s, at.dir, o)))
            .filter(|&(_, p)| p > from + 1e-6)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((next_stop, _)) = next_stop {
            let mut stations = stations;
            stations.push(layout.devices[next_stop].station);
            out.push(Way { settings, stations, next_stop, dir: at.dir });
            return;
        }
        let walked = walked + s.length - from;
        if walked > layout.track_length() {
            return;
        }
        let node: NodeId = s.node_ahead(at.dir);
        let choices: Vec<Option<OnOff>> = match self.switch_at[node] {
            Some(switch) if !settings.iter().any(|(d, _)| *d == switch) => {
                let both = [OnOff::Off, OnOff::On];
                let fixed = layout.trains[train].way_at(switch).filter(|_| self.faces(devices, at, switch));
                both.into_iter().filter(|c| fixed.is_none_or(|f| f == *c)).map(Some).collect()
            }
            _ => vec![None],
        };
        for choice in choices {
            let switch = self.switch_at[node];
            let before = switch.map(|d| devices[d]);
            let mut settings = settings.clone();
            if let (Some(d), Some(c)) = (switch, choice) {
                devices[d] = DevicePosition::from(c);
                settings.push((d, c));
            }
            if let Ok((next, dir)) = next_segment(layout, at.seg, at.dir, devices) {
                let entry = if dir == Dir::Forward { 0.0 } else { layout.segments[next].length };
                let mut stations = stations.clone();
                stations.extend(self.platforms[next].iter().filter(|s| !stations.contains(s)).collect::<Vec<_>>());
                let on = Placement { seg: next, offset: entry, dir };
                self.walk(devices, train, on, (settings, stations), walked, out);
            }
            if let (Some(d), Some(b)) = (switch, before) {
                devices[d] = b;
            }
        }
    }

    /// Whether a train at the end of `at`'s segment faces `switch` (the switch at the node ahead): both its
    /// settings lead on (trailing it, only the branch it comes from does).
    fn faces(&self, devices: &mut [DevicePosition], at: Placement, switch: DeviceId) -> bool {
        let before = devices[switch];
        let leads = [OnOff::Off, OnOff::On].into_iter().all(|c| {
            devices[switch] = DevicePosition::from(c);
            next_segment(&self.layout, at.seg, at.dir, devices).is_ok()
        });
        devices[switch] = before;
        leads
    }

    /// Follows the cycle of trains waiting on each other: found, reported once it has lasted, broken.
    fn follow_cycle(&mut self, waits_for: &[Option<TrainId>], now: u64) -> Vec<AutoEvent> {
        let found = cycle(waits_for);
        let mut events = Vec::new();
        match (&mut self.cycle, found) {
            (Some((trains, since, reported)), Some(found)) if *trains == found => {
                if !*reported && now - *since >= self.config.deadlock_report_ms {
                    *reported = true;
                    events.push(AutoEvent::Deadlock { trains: trains.clone() });
                }
            }
            (current, found) => {
                if let Some((trains, _, true)) = current.take() {
                    events.push(AutoEvent::DeadlockBroken { trains });
                }
                *current = found.map(|f| (f, now, false));
            }
        }
        events
    }
}

/// `world` as it will be once a device request is carried out (a speed request sets no device).
fn set(world: &mut TrackState, request: &Request) {
    if let Request::Device { device, state } = *request {
        world.devices[device] = DevicePosition::from(state);
    }
}

/// The requests that set `way`'s switches and lower `device`, with the other devices of a station rule that the
/// rule needs changed with them (the 2021 stations allow only some combinations), in an order the interlocking
/// allows step by step on `world` (left as the last order tried leaves it, up to its refusal).
fn attempt(
    layout: &Layout,
    interlocking: &Interlocking,
    world: &mut TrackState,
    device: DeviceId,
    way: &Way,
) -> Result<Vec<Request>, Rejection> {
    let mut wanted: Vec<(DeviceId, OnOff)> = way.settings.clone();
    wanted.push((device, OnOff::Off));
    wanted.extend(companions(layout, world, &wanted));
    let release = Request::Device { device, state: OnOff::Off };
    let mut changes: Vec<Request> = wanted
        .iter()
        .filter(|&&(d, s)| d != device && world.devices[d] != DevicePosition::from(s))
        .map(|&(d, s)| Request::Device { device: d, state: s })
        .collect();
    // Raises first (always allowed), then switches, then the other lowerings; other orders if that one is refused.
    changes.sort_by_key(|r| match *r {
        Request::Device { state: OnOff::On, device } if layout.devices[device].kind == DeviceKind::StopRail => 0,
        Request::Device { device, .. } if layout.devices[device].kind == DeviceKind::Switch => 1,
        _ => 2,
    });
    let start = world.clone();
    let mut first: Option<Rejection> = None;
    // Failing every order, a stop rail of the rules touched that no train stands at is lowered for the changes
    // and raised again before the release: a station rule may allow a switch only with exactly one of two stop
    // rails raised (Sasazuka's b1), and raising is always allowed.
    let passes = std::iter::once(None).chain(passing(layout, &start, &wanted).into_iter().map(Some));
    for pass in passes {
        for order in orders(changes.len()).take(MAX_ORDERS) {
            *world = start.clone();
            let mut made = Vec::new();
            let lower = pass.map(|d| Request::Device { device: d, state: OnOff::Off });
            let raise = pass.map(|d| Request::Device { device: d, state: OnOff::On });
            let steps = lower.iter().chain(order.iter().map(|&i| &changes[i])).chain(&raise);
            let result = steps.chain(std::iter::once(&release)).try_for_each(|r| {
                interlocking.check(r, world)?;
                set(world, r);
                made.push(*r);
                Ok(())
            });
            match result {
                Ok(()) => return Ok(made),
                Err(r) => {
                    first.get_or_insert(r);
                }
            }
        }
    }
    Err(first.expect("at least one order is tried"))
}

/// The raised stop rails of the station rules that `wanted` touches that no train stands at or covers and that
/// `wanted` does not set: those a departure may lower for a moment (see [`attempt`]).
fn passing(layout: &Layout, world: &TrackState, wanted: &[(DeviceId, OnOff)]) -> Vec<DeviceId> {
    let touched = |g: &&crate::layout::RuleGroup| wanted.iter().any(|(d, _)| g.devices.contains(d));
    let mut out: Vec<DeviceId> = Vec::new();
    for &d in layout.rules.iter().filter(touched).flat_map(|g| &g.devices) {
        let DevicePlace::StopRail { seg, offset } = layout.devices[d].place else { continue };
        let free = !world.trains.iter().any(|t| t.held_at == Some(d) || t.body.covers(layout, seg, offset));
        if free && world.devices[d] == DevicePosition::On && !wanted.iter().any(|(w, _)| *w == d) && !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// How far before its stop point a train with a speed controller starts braking, mm.
pub const BRAKE_MM: f64 = 600.0;

/// The share of its service speed a braking train comes to its stop point at.
pub const CREEP: f64 = 0.3;

/// How long plans leave a device alone after a request for it failed, ms.
pub const FAILED_RETRY_MS: u64 = 5_000;

/// How many stops beyond a way's next one its demand looks.
pub const LOOKAHEAD_HOPS: u64 = 3;

/// At most this many orders of a departure's device changes are tried.
const MAX_ORDERS: usize = 24;

/// The orders of `n` items: the given one first, then the others (permutations in lexicographic order).
fn orders(n: usize) -> impl Iterator<Item = Vec<usize>> {
    let mut next = Some((0..n).collect::<Vec<usize>>());
    std::iter::from_fn(move || {
        let current = next.take()?;
        let mut p = current.clone();
        // The next permutation, if any.
        if let Some(i) = (1..p.len()).rev().find(|&i| p[i - 1] < p[i]) {
            let j = (i..p.len()).rev().find(|&j| p[j] > p[i - 1]).expect("a larger item after i - 1");
            p.swap(i - 1, j);
            p[i..].reverse();
            next = Some(p);
        }
        Some(current)
    })
}

/// The other devices of the station rules that `wanted` touches (and those the changes touch in turn), set as the
/// allowed combination needing the fewest changes (never lowering a stop rail another train stands at, never
/// undoing what is wanted or already chosen).
fn companions(layout: &Layout, world: &TrackState, wanted: &[(DeviceId, OnOff)]) -> Vec<(DeviceId, OnOff)> {
    let mut after: Vec<Option<OnOff>> = world.devices.iter().map(|d| d.state()).collect();
    for &(d, s) in wanted {
        after[d] = Some(s);
    }
    let mut chosen: Vec<(DeviceId, OnOff)> = wanted.to_vec();
    let mut extra = Vec::new();
    for _ in 0..4 {
        let added = companions_once(layout, world, &chosen, &mut after);
        if added.is_empty() {
            break;
        }
        chosen.extend(&added);
        extra.extend(added);
    }
    extra
}

/// One round of [`companions`]: the rule groups `chosen` touches that `after` does not satisfy, each set.
fn companions_once(
    layout: &Layout,
    world: &TrackState,
    chosen: &[(DeviceId, OnOff)],
    after: &mut [Option<OnOff>],
) -> Vec<(DeviceId, OnOff)> {
    let fixed = |d: DeviceId| chosen.iter().find(|(w, _)| *w == d).map(|(_, s)| *s);
    let occupied = |d: DeviceId| world.trains.iter().any(|t| t.held_at == Some(d));
    let mut extra = Vec::new();
    for group in layout.rules.iter().filter(|g| chosen.iter().any(|(d, _)| g.devices.contains(d))) {
        let holds = |after: &[Option<OnOff>], line: &crate::layout::RuleLine| {
            line.on.iter().all(|&d| after[d] == Some(OnOff::On))
                && line.off.iter().all(|&d| after[d] == Some(OnOff::Off))
        };
        if group.allowed.iter().any(|line| holds(after, line)) {
            continue;
        }
        let needs = |line: &crate::layout::RuleLine| -> Option<Vec<(DeviceId, OnOff)>> {
            let mut out = Vec::new();
            for (&d, s) in line.on.iter().map(|d| (d, OnOff::On)).chain(line.off.iter().map(|d| (d, OnOff::Off))) {
                match fixed(d) {
                    Some(w) if w != s => return None,
                    Some(_) => {}
                    None if after[d] == Some(s) => {}
                    None if s == OnOff::Off && layout.devices[d].kind == DeviceKind::StopRail && occupied(d) => {
                        return None;
                    }
                    None => out.push((d, s)),
                }
            }
            Some(out)
        };
        if let Some(best) = group.allowed.iter().filter_map(needs).min_by_key(|n| n.len()) {
            for &(d, s) in &best {
                after[d] = Some(s);
            }
            extra.extend(best);
        }
    }
    extra
}

/// The nearest train ahead of `train` along its route (within the layout's length), if any.
fn nearest_ahead(layout: &Layout, state: &TrackState, train: TrainId) -> Option<TrainId> {
    let route = route_ahead(layout, &state.devices, state.trains[train].body.front(layout));
    state
        .trains
        .iter()
        .filter(|o| o.id != train && o.status != TrainStatus::Removed)
        .filter_map(|o| gap_to(&route, &o.body.spans(layout).collect::<Vec<_>>()).map(|g| (g, o.id)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}

/// The first cycle in a waits-for graph (each train waits for at most one), as its trains in ascending order.
fn cycle(waits_for: &[Option<TrainId>]) -> Option<Vec<TrainId>> {
    for start in 0..waits_for.len() {
        let mut seen = vec![start];
        let mut at = start;
        while let Some(next) = waits_for[at] {
            if next == start {
                seen.sort_unstable();
                return Some(seen);
            }
            if seen.contains(&next) {
                break;
            }
            seen.push(next);
            at = next;
        }
    }
    None
}

/// The 2023 auto-operation's rule alone, as a baseline (`backend/auto-operation/main.ts`, festival build): every
/// stop rail raised while the stretch beyond it is occupied (a 2023 layout's block; else the track to the next
/// stop rail on the set route), lowered otherwise. It sets nothing else and nothing checks it (2023 had
/// no interlocking). A stop rail's direction is that of the trains coming to it; one no train's way reaches is
/// left as it is.
pub fn rule_2023(layout: &Layout, state: &TrackState) -> Vec<Request> {
    let running = || state.trains.iter().filter(|t| t.status != TrainStatus::Removed);
    let bodies: Vec<(TrainId, Vec<crate::track::Span>)> =
        running().map(|t| (t.id, t.body.spans(layout).collect())).collect();
    // Every stop rail on a train's way (all stop rails passed through), with the direction it is run over.
    let through = every_stop_rail(layout, &state.devices, DevicePosition::Off);
    let mut directions: Vec<Option<Dir>> = vec![None; layout.devices.len()];
    for t in running() {
        for (span, dir) in route_ahead(layout, &through, t.body.front(layout)).spans {
            for (d, offset) in layout.stop_rails_on(span.seg) {
                if span.contains(offset) && directions[d].is_none() {
                    directions[d] = Some(dir);
                }
            }
        }
    }
    // Stretches end at the next stop rail, whatever its state (a block's fixed extent).
    let mut raised = every_stop_rail(layout, &state.devices, DevicePosition::On);
    let mut out = Vec::new();
    for (device, dir) in directions.iter().enumerate().filter_map(|(d, dir)| dir.map(|dir| (d, dir))) {
        let DevicePlace::StopRail { seg, offset } = layout.devices[device].place else { continue };
        let occupied = match layout.blocks.iter().position(|b| b.stops.contains(&device)) {
            Some(b) => state.blocks.get(b) == Some(&true),
            None => {
                raised[device] = DevicePosition::Off;
                let route = route_ahead(layout, &raised, Placement { seg, offset, dir });
                raised[device] = DevicePosition::On;
                // Beyond it: not the train standing at it.
                let beyond = bodies.iter().filter(|(t, _)| state.trains[*t].held_at != Some(device));
                beyond.into_iter().any(|(_, b)| gap_to(&route, b).is_some())
            }
        };
        let wanted = if occupied { OnOff::On } else { OnOff::Off };
        if state.devices[device] != DevicePosition::from(wanted) {
            out.push(Request::Device { device, state: wanted });
        }
    }
    out
}

/// `devices` with every stop rail at `at`.
fn every_stop_rail(layout: &Layout, devices: &[DevicePosition], at: DevicePosition) -> Vec<DevicePosition> {
    let mut out = devices.to_vec();
    for (d, device) in layout.devices.iter().enumerate() {
        if device.kind == DeviceKind::StopRail {
            out[d] = at;
        }
    }
    out
}
