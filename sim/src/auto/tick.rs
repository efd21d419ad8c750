//! One tick of automatic operation: the requests of each departure tried in orders through the interlocking,
//! with the station rules' companion changes; the devices left as they should be.

use super::depart::nearest_ahead;
use super::{Auto, AutoEvent, Holds, Wait, Way};
use crate::interlocking::route::{RouteEnd, route_ahead};
use crate::interlocking::{Interlocking, Rejection, Request};
use crate::layout::{DeviceId, DeviceKind, DevicePlace, Layout, OnOff, TrainId};
use crate::track::DevicePosition;
use crate::twin::{TrackState, TrainStatus};

impl Auto {
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
}

/// `world` as it will be once a device request is carried out (a speed request sets no device).
pub(super) fn set(world: &mut TrackState, request: &Request) {
    if let Request::Device { device, state } = *request {
        world.devices[device] = DevicePosition::from(state);
    }
}

/// The requests that set `way`'s switches and lower `device`, with the other devices of a station rule that the
/// rule needs changed with them (the 2021 stations allow only some combinations), in an order the interlocking
/// allows step by step on `world` (left as the last order tried leaves it, up to its refusal).
pub(super) fn attempt(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_start_with_the_given_one_and_are_every_permutation_once() {
        let all: Vec<Vec<usize>> = orders(3).collect();
        assert_eq!(all[0], vec![0, 1, 2]);
        assert_eq!(all.len(), 6);
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 6, "no order twice: {all:?}");
        assert_eq!(orders(0).collect::<Vec<_>>(), vec![Vec::<usize>::new()]);
        assert_eq!(orders(1).collect::<Vec<_>>(), vec![vec![0]]);
    }

    #[test]
    fn at_most_max_orders_are_tried_for_a_large_departure() {
        // 5 device changes have 120 orders; a departure tries the first MAX_ORDERS of them.
        assert_eq!(orders(5).take(MAX_ORDERS).count(), MAX_ORDERS);
        assert_eq!(orders(5).count(), 120);
    }
}
