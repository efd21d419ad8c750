//! The live-mode mirror's bookkeeping, as plain functions over data.
//!
//! In live mode a simulation runs paced to the wall clock and follows the real track: each real sensor report
//! snaps the identified train to the sensor, and the simulation then predicts where it goes (it runs the
//! train on at its speed, stopping at the raised stop rails that the real ones mirror). A report that
//! contradicts the prediction is a [`Divergence`]: a train id the layout does not know, a sensor other than
//! the one expected next, or a train overdue: the mirror passed the next sensor and the real train has not
//! reported it within the tolerance.
//!
//! On a layout with 2023 block detectors, a report names a block and CLOSE (its entry detector pressed) or
//! OPEN (its exit detector), not a train: the mirror's train nearest that detector (before it on its way, or
//! just past it) is snapped to it; a report that no train within [`DETECTOR_REACH_MM`] explains finds a train
//! the mirror lost (shown lost and taken off) again there, or else is a divergence. A detector held closed reports again every 3 s: a train already over it explains that.

use sim::layout::{BlockId, DetectorTarget, Dir, Layout, Placement, SensorId, TrainId};
use sim::track::next_segment;
use sim::twin::{EventKind, SimCommand, SimEvent, TrackState};

use crate::boards2021::ingest::SensorReading;

/// A real report that contradicts the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// The report names a train id the layout has no train for.
    UnknownTrain {
        /// The id reported.
        train_id: u32,
        /// Where.
        sensor: SensorId,
    },
    /// The train reported at a sensor other than the one expected next.
    UnexpectedOrder {
        /// The train.
        train: TrainId,
        /// Sensor expected.
        expected: SensorId,
        /// Sensor reported.
        got: SensorId,
    },
    /// The mirror passed the next sensor, and the real train did not report it in time.
    Overdue {
        /// The train.
        train: TrainId,
        /// The sensor it should have reached.
        sensor: SensorId,
    },
    /// The detectors said a block was left, and the mirror still had this train there: taken off the mirror
    /// until a detector no other train explains finds it again, or the operator places it.
    Lost {
        /// The train.
        train: TrainId,
        /// The block.
        block: BlockId,
    },
    /// The mirror's train entered a block whose entry detector never reported it: the real train did not go,
    /// and the mirror's is put back before the block (or taken off where the block has no stop rail before it).
    Unconfirmed {
        /// The train.
        train: TrainId,
        /// The block.
        block: BlockId,
    },
    /// A block's exit detector never reported the train that left it (its board away or just restarted): its
    /// `OPEN` is supplied, since the train was confirmed in a block ahead.
    MissedOpen {
        /// The block.
        block: BlockId,
        /// The block ahead the train was confirmed in.
        ahead: BlockId,
    },
    /// A block detector reported, and no mirrored train is near it.
    Unexplained {
        /// The block.
        block: BlockId,
        /// Whether it reported CLOSE (its entry detector), else OPEN (its exit detector).
        close: bool,
    },
}

impl Divergence {
    /// The divergence in words.
    pub fn describe(&self, layout: &Layout) -> String {
        let sensor = |s: SensorId| layout.sensors[s].name.as_str();
        let train = |t: TrainId| layout.trains[t].name.as_str();
        match *self {
            Divergence::UnknownTrain { train_id, sensor: s } => {
                format!("sensor {} reported unknown train id {train_id}", sensor(s))
            }
            Divergence::UnexpectedOrder { train: t, expected, got } => {
                format!("{} reported at {}, expected next at {}", train(t), sensor(got), sensor(expected))
            }
            Divergence::Overdue { train: t, sensor: s } => format!("{} is overdue at {}", train(t), sensor(s)),
            Divergence::Lost { train: t, block } => format!(
                "{} shown lost: block {} was reported OPEN and the mirror still had it there; it is taken off the \
                 mirror until a detector finds it again or the operator places it",
                train(t),
                layout.blocks[block].id
            ),
            Divergence::Unconfirmed { train: t, block } => format!(
                "{} entered block {} in the mirror, and its entry detector never reported it: the real train did \
                 not go (a delta lost?); the mirror's is put back before the block",
                train(t),
                layout.blocks[block].id
            ),
            Divergence::MissedOpen { block, ahead } => format!(
                "block {} never reported OPEN for the train that left it (its board away or restarting?): OPEN \
                 supplied, the train being confirmed in block {}",
                layout.blocks[block].id, layout.blocks[ahead].id
            ),
            Divergence::Unexplained { block, close } => {
                let (word, which) = if close { ("CLOSE", "entry") } else { ("OPEN", "exit") };
                format!(
                    "block {} reported {word}, and no mirrored train is near its {which} detector",
                    layout.blocks[block].id
                )
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Follow {
    expect_next: Option<SensorId>,
    due: Option<(SensorId, u64)>,
}

/// What the mirror knows of each train beyond the simulation itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    tolerance_ms: u64,
    trains: Vec<Follow>,
}

impl Mirror {
    /// A mirror of `layout` that reports a train overdue `tolerance_ms` after the mirror passed its next sensor.
    pub fn new(layout: &Layout, tolerance_ms: u64) -> Mirror {
        Mirror { tolerance_ms, trains: vec![Follow::default(); layout.trains.len()] }
    }

    /// A real report: the command that snaps the mirror's train to the sensor, and a divergence if it
    /// contradicts the prediction.
    pub fn on_reading(
        &mut self,
        layout: &Layout,
        reading: SensorReading,
        state: &TrackState,
    ) -> (Option<SimCommand>, Option<Divergence>) {
        let SensorReading { sensor, train_id } = reading;
        let Some(train) = (train_id as usize).checked_sub(1).filter(|&t| t < self.trains.len()) else {
            return (None, Some(Divergence::UnknownTrain { train_id, sensor }));
        };
        let follow = &mut self.trains[train];
        let divergence = match follow.expect_next {
            Some(expected) if expected != sensor => Some(Divergence::UnexpectedOrder { train, expected, got: sensor }),
            _ => None,
        };
        let s = &layout.sensors[sensor];
        let dir = direction_at(layout, state, train, s.seg);
        let front = Placement { seg: s.seg, offset: s.offset, dir };
        follow.expect_next = next_wired_sensor(layout, state, front);
        follow.due = None;
        (Some(SimCommand::Place { train, front }), divergence)
    }

    /// A real block detector's report: the command that snaps the mirror's train nearest the detector to it,
    /// or a divergence if no train is within [`DETECTOR_REACH_MM`]; nothing if a train is over it already.
    pub fn on_block_report(
        &mut self,
        layout: &Layout,
        block: BlockId,
        close: bool,
        state: &TrackState,
    ) -> (Option<SimCommand>, Option<Divergence>) {
        let target = if close { DetectorTarget::Close } else { DetectorTarget::Open };
        let Some(detector) = layout.detectors.iter().find(|d| d.block == block && d.target == target) else {
            return (None, Some(Divergence::Unexplained { block, close }));
        };
        let at = (detector.seg, detector.offset);
        let over = |t: &sim::twin::TrainState| t.body.covers(layout, at.0, at.1);
        if state.trains.iter().filter(|t| t.status != sim::twin::TrainStatus::Removed).any(over) {
            return (None, None);
        }
        let mut nearest: Option<(f64, TrainId, Dir)> = None;
        let on_track = state.trains.iter().enumerate().filter(|(_, t)| t.status != sim::twin::TrainStatus::Removed);
        for (train, t) in on_track {
            let ahead = distance_to(layout, state, t.body.front(layout), at);
            let (seg, dir) = *t.body.segs.front().expect("a body");
            let rear = Placement { seg, offset: sim::track::offset_of(&layout.segments[seg], dir, t.body.tail), dir };
            let behind = distance_to(layout, state, Placement { dir: dir.flip(), ..rear }, at)
                .map(|(d, dir)| (d + layout.trains[train].length, dir.flip()));
            for (d, dir) in ahead.into_iter().chain(behind) {
                if nearest.is_none_or(|n| d < n.0) {
                    nearest = Some((d, train, dir));
                }
            }
        }
        let Some((_, train, dir)) = nearest else {
            // A train the mirror lost is found again where a detector reports one no other train explains.
            let lost = state.trains.iter().position(|t| t.status == sim::twin::TrainStatus::Removed);
            let found = lost.and_then(|train| self.found(layout, state, block, close, train));
            return match found {
                Some(cmd) => (Some(cmd), None),
                None => (None, Some(Divergence::Unexplained { block, close })),
            };
        };
        self.trains[train] = Follow::default();
        (Some(SimCommand::Place { train, front: Placement { seg: at.0, offset: at.1, dir } }), None)
    }

    /// `train` is where `block`'s detector (`CLOSE`: its entry, else its exit) reported: the command that puts
    /// it there, running along the block (`None` if the layout has no such detector, or no way through).
    pub fn found(
        &mut self,
        layout: &Layout,
        state: &TrackState,
        block: BlockId,
        close: bool,
        train: TrainId,
    ) -> Option<SimCommand> {
        let target = if close { DetectorTarget::Close } else { DetectorTarget::Open };
        let detector = layout.detectors.iter().find(|d| d.block == block && d.target == target)?;
        let way = way_through(layout, state, block)?;
        let dir = way.iter().find(|x| x.0 == detector.seg).map(|x| x.1)?;
        self.trains[train] = Follow::default();
        Some(SimCommand::Place { train, front: Placement { seg: detector.seg, offset: detector.offset, dir } })
    }

    /// An event of the mirror's own simulation: passing the expected sensor starts the overdue clock.
    pub fn on_mirror_event(&mut self, layout: &Layout, event: &SimEvent) {
        if let EventKind::SensorPassed { sensor, train } = event.kind
            && layout.sensors[sensor].wiring.is_some()
            && let Some(follow) = self.trains.get_mut(train)
            && follow.expect_next == Some(sensor)
            && follow.due.is_none()
        {
            follow.due = Some((sensor, event.time_ms + self.tolerance_ms));
        }
    }

    /// Trains overdue at simulation time `now_ms` (each reported once).
    pub fn overdue(&mut self, now_ms: u64) -> Vec<Divergence> {
        let mut out = Vec::new();
        for (train, follow) in self.trains.iter_mut().enumerate() {
            if let Some((sensor, due)) = follow.due
                && now_ms > due
            {
                out.push(Divergence::Overdue { train, sensor });
                follow.due = None;
            }
        }
        out
    }
}

/// The mirror's trains in `block` that are not over its exit detector: when its detectors reported it left,
/// these are phantoms.
pub fn lost_in(layout: &Layout, state: &TrackState, block: BlockId) -> Vec<TrainId> {
    let b = &layout.blocks[block];
    let exit = layout.detectors.iter().find(|d| d.block == block && d.target == DetectorTarget::Open);
    state
        .trains
        .iter()
        .enumerate()
        .filter(|(_, t)| t.status != sim::twin::TrainStatus::Removed)
        .filter(|(_, t)| t.body.segs.iter().any(|(s, _)| b.segs.contains(s)))
        .filter(|(_, t)| exit.is_none_or(|d| !t.body.covers(layout, d.seg, d.offset)))
        .map(|(id, _)| id)
        .collect()
}

/// Where a train of `length` placed in `block` has its front: its whole body just past the block's entry
/// detector (as a train that has just entered), facing the way from the entry detector to the exit detector
/// (`None` if the block lacks one of them, or they are not on one way as the devices stand).
pub fn in_block(layout: &Layout, state: &TrackState, block: BlockId, length: f64) -> Option<Placement> {
    let way = way_through(layout, state, block)?;
    let &(last, ..) = way.last()?;
    let total: f64 = way.iter().map(|w| w.3 - w.2).sum();
    let mut left = (length + 10.0).min(total - 10.0).max(0.0);
    for &(seg, d, start, end) in &way {
        if left <= end - start || seg == last {
            let s = &layout.segments[seg];
            let travelled = (start + left).min(end);
            return Some(Placement { seg, offset: sim::track::offset_of(s, d, travelled), dir: d });
        }
        left -= end - start;
    }
    None
}

/// The way through `block` from its entry detector to its exit detector as the devices stand, segment by
/// segment: (segment, direction, the distance travelled on it from where the way enters it, the distance where
/// the way leaves it); `None` if the block lacks one of them or they are not on one way.
fn way_through(layout: &Layout, state: &TrackState, block: BlockId) -> Option<Vec<(usize, Dir, f64, f64)>> {
    let of = |target| layout.detectors.iter().find(|d| d.block == block && d.target == target);
    let (entry, exit) = (of(DetectorTarget::Close)?, of(DetectorTarget::Open)?);
    for dir in [Dir::Forward, Dir::Backward] {
        let from = Placement { seg: entry.seg, offset: entry.offset, dir };
        let mut way = Vec::new();
        for (i, (seg, d)) in ahead(layout, state, from).enumerate() {
            let s = &layout.segments[seg];
            let start = if i == 0 { sim::track::offset_of(s, d, entry.offset) } else { 0.0 };
            let at_exit = sim::track::offset_of(s, d, exit.offset);
            if seg == exit.seg && at_exit >= start {
                way.push((seg, d, start, at_exit));
                return Some(way);
            }
            if i > 0 && !layout.blocks[block].segs.contains(&seg) {
                break;
            }
            way.push((seg, d, start, s.length));
        }
    }
    None
}

/// Where a train standing before `block` has its front: at the first stop rail that departs into it, facing the
/// block (`None` if it has none, or none leads into it as the devices stand).
pub fn before_block(layout: &Layout, state: &TrackState, block: BlockId) -> Option<Placement> {
    let b = &layout.blocks[block];
    for &stop in &b.stops {
        let sim::layout::DevicePlace::StopRail { seg, offset } = layout.devices[stop].place else { continue };
        // The way from the stop rail that reaches the block sooner (a turnaround loop may lead back to it).
        let reach = |dir: Dir| {
            let mut travelled = 0.0;
            for (i, (s, d)) in ahead(layout, state, Placement { seg, offset, dir }).enumerate() {
                if b.segs.contains(&s) {
                    return Some(travelled);
                }
                let segment = &layout.segments[s];
                let start = if i == 0 { sim::track::offset_of(segment, d, offset) } else { 0.0 };
                travelled += segment.length - start;
            }
            None
        };
        let dir = match (reach(Dir::Forward), reach(Dir::Backward)) {
            (Some(f), Some(b)) if b < f => Dir::Backward,
            (Some(_), _) => Dir::Forward,
            (None, Some(_)) => Dir::Backward,
            (None, None) => continue,
        };
        let s = &layout.segments[seg];
        let back = if dir == Dir::Forward { -5.0 } else { 5.0 };
        return Some(Placement { seg, offset: (offset + back).clamp(0.0, s.length), dir });
    }
    None
}

/// The direction the train runs along `seg`: as on its body or its way ahead, else forward.
fn direction_at(layout: &Layout, state: &TrackState, train: TrainId, seg: usize) -> Dir {
    let t = &state.trains[train];
    if let Some(&(_, dir)) = t.body.segs.iter().find(|(s, _)| *s == seg) {
        return dir;
    }
    let front = t.body.front(layout);
    ahead(layout, state, front).find(|(s, _)| *s == seg).map_or(Dir::Forward, |(_, d)| d)
}

/// The first sensor wired to a board strictly ahead of `front` along the set route.
fn next_wired_sensor(layout: &Layout, state: &TrackState, front: Placement) -> Option<SensorId> {
    let seg_ahead = |seg: usize, dir: Dir, from: Option<f64>| {
        let s = &layout.segments[seg];
        let travelled = |offset: f64| sim::track::offset_of(s, dir, offset);
        layout
            .sensors
            .iter()
            .enumerate()
            .filter(|(_, x)| x.seg == seg && x.wiring.is_some())
            .map(|(id, x)| (id, travelled(x.offset)))
            .filter(|&(_, p)| from.is_none_or(|h| p > h))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    };
    let start = sim::track::offset_of(&layout.segments[front.seg], front.dir, front.offset);
    if let Some(id) = seg_ahead(front.seg, front.dir, Some(start)) {
        return Some(id);
    }
    ahead(layout, state, front).skip(1).find_map(|(seg, dir)| seg_ahead(seg, dir, None))
}

/// How far along the track (mm) from a reporting block detector the mirror looks for the train that pressed it.
pub const DETECTOR_REACH_MM: f64 = 3000.0;

/// The distance from `from` along the set route to the point `at` (segment, offset), and the direction there,
/// if it is within [`DETECTOR_REACH_MM`].
fn distance_to(layout: &Layout, state: &TrackState, from: Placement, at: (usize, f64)) -> Option<(f64, Dir)> {
    let mut travelled = 0.0;
    for (i, (seg, dir)) in ahead(layout, state, from).enumerate() {
        let s = &layout.segments[seg];
        let start = if i == 0 { sim::track::offset_of(s, dir, from.offset) } else { 0.0 };
        let point = sim::track::offset_of(s, dir, at.1);
        if seg == at.0 && point >= start {
            let d = travelled + point - start;
            return (d <= DETECTOR_REACH_MM).then_some((d, dir));
        }
        travelled += s.length - start;
        if travelled > DETECTOR_REACH_MM {
            return None;
        }
    }
    None
}

/// The segments from `front` onwards along the set route (at most the layout's segment count).
fn ahead<'a>(layout: &'a Layout, state: &'a TrackState, front: Placement) -> impl Iterator<Item = (usize, Dir)> + 'a {
    let mut cur = Some((front.seg, front.dir));
    std::iter::from_fn(move || {
        let here = cur?;
        cur = next_segment(layout, here.0, here.1, &state.devices).ok();
        Some(here)
    })
    .take(layout.segments.len() + 1)
}

#[cfg(test)]
mod tests {
    use sim::layout::festival::layout_2023;

    use super::{Divergence, Mirror};

    /// The mirror on 2023 block reports: a report snaps the mirrored train nearest the detector to it; the same
    /// detector held closed (re-reported every 3 s) is explained by the train over it; a report that no train near
    /// explains finds a lost train again (else it is a divergence, said in words).
    #[test]
    fn a_block_report_snaps_the_nearest_mirrored_train_or_is_a_divergence() {
        use sim::layout::DetectorTarget;
        use sim::twin::{SimCommand, Simulation};
        let layout = std::sync::Arc::new(layout_2023());
        let mut sim = Simulation::new(layout.clone(), 10).unwrap();
        let mut mirror = Mirror::new(&layout, 1000);
        let block = layout.block_id("shinjyuku_down_b1").unwrap();
        let keio8000 = layout.trains.iter().position(|t| t.name == "KEIO8000").unwrap();
        let entry = layout.detectors.iter().find(|d| d.block == block && d.target == DetectorTarget::Close).unwrap();
        // KEIO8000 stands at Shinjuku's raised stop rail, just before the block's entry detector.
        let (snap, d) = mirror.on_block_report(&layout, block, true, &sim.state());
        assert_eq!(d, None);
        let Some(SimCommand::Place { train, front }) = snap else { panic!("a snap: {snap:?}") };
        assert_eq!((train, front.seg, front.offset), (keio8000, entry.seg, entry.offset));
        sim.apply(snap.unwrap(), &mut Vec::new()).unwrap();
        assert_eq!(mirror.on_block_report(&layout, block, true, &sim.state()), (None, None));
        // Every train taken off (shown lost): the report finds a lost one again, on the detector, facing the block.
        for train in 0..layout.trains.len() {
            sim.apply(SimCommand::Remove { train }, &mut Vec::new()).unwrap();
        }
        let (snap, d) = mirror.on_block_report(&layout, block, true, &sim.state());
        assert_eq!(d, None);
        let Some(SimCommand::Place { train: found, front }) = snap else { panic!("found again: {snap:?}") };
        assert_eq!((found, front.seg, front.offset), (0, entry.seg, entry.offset));
        let d = Divergence::Unexplained { block, close: true };
        assert_eq!(
            d.describe(&layout),
            "block shinjyuku_down_b1 reported CLOSE, and no mirrored train is near its entry detector"
        );
    }
}
