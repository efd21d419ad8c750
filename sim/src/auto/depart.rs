//! Departures: when a train standing at a stop rail may go, where to, and what holds it back.

use super::tick::attempt;
use super::{Auto, BRAKE_MM, CREEP, LOOKAHEAD_HOPS, Wait, Way};
use crate::interlocking::route::{Claim, RouteEnd, gap_to, route_ahead};
use crate::interlocking::{Interlocking, RejectKind, Rejection, Request};
use crate::layout::{DeviceId, Dir, Layout, StationId, TrainId};
use crate::track::DevicePosition;
use crate::twin::{TrackState, TrainStatus};

impl Auto {
    /// The speed automatic operation runs `train` at, mm/s: its service speed; a train with a speed controller
    /// brakes for a raised stop rail ahead (its stop point), from [`BRAKE_MM`] before it down to [`CREEP`] of its
    /// service speed at it, in tenths (so that a few commands do it). The interlocking's supervision caps it
    /// behind another train on top of this.
    pub(super) fn profile(&self, state: &TrackState, train: TrainId) -> u32 {
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
    pub(super) fn depart(
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
    pub(super) fn demand(&self, state: &TrackState, train: TrainId, way: &Way) -> u64 {
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
}

/// The nearest train ahead of `train` along its route (within the layout's length), if any.
pub(super) fn nearest_ahead(layout: &Layout, state: &TrackState, train: TrainId) -> Option<TrainId> {
    let route = route_ahead(layout, &state.devices, state.trains[train].body.front(layout));
    state
        .trains
        .iter()
        .filter(|o| o.id != train && o.status != TrainStatus::Removed)
        .filter_map(|o| gap_to(&route, &o.body.spans(layout).collect::<Vec<_>>()).map(|g| (g, o.id)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}
