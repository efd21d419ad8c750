//! Pass detectors and block occupancy: a detector is closed while a train's body is over it; a block is
//! occupied from a train's front pressing its entry (`CLOSE`) detector until that train's last car has left its
//! exit (`OPEN`) detector, counting trains, so that two trains in one block keep it occupied until both left.

use bevy_ecs::prelude::*;

use super::{Clock, EventKind, LayoutRes, Outbox, SimEvent, TrainState, TrainStatus};
use crate::layout::{DetectorTarget, Layout};

/// Detector and block state, a resource of the simulation.
#[derive(Resource, Debug, Clone)]
pub(super) struct Occupancy {
    /// Whether each detector is pressed, by detector id.
    pub detectors: Vec<bool>,
    /// Trains in each block, by block id.
    pub trains_in: Vec<u32>,
}

impl Occupancy {
    /// Detectors pressed by `trains` and, as a start, each block holding the trains whose bodies overlap it.
    pub fn new(layout: &Layout, trains: &[TrainState]) -> Occupancy {
        let detectors = pressed(layout, trains.iter());
        let trains_in = layout
            .blocks
            .iter()
            .map(|b| {
                trains.iter().filter(|t| on_track(t) && t.body.segs.iter().any(|(s, _)| b.segs.contains(s))).count()
                    as u32
            })
            .collect();
        Occupancy { detectors, trains_in }
    }

    /// Whether each block is occupied, by block id.
    pub fn blocks(&self) -> Vec<bool> {
        self.trains_in.iter().map(|&n| n > 0).collect()
    }
}

/// Whether a train still stands on the track (a crashed or derailed one presses what it stands on).
fn on_track(t: &TrainState) -> bool {
    t.status != TrainStatus::Removed
}

/// Which detectors the trains' bodies are over.
fn pressed<'a>(layout: &Layout, trains: impl Iterator<Item = &'a TrainState>) -> Vec<bool> {
    let mut out = vec![false; layout.detectors.len()];
    if out.is_empty() {
        return out;
    }
    for t in trains.filter(|t| on_track(t)) {
        for span in t.body.spans(layout) {
            for (id, d) in layout.detectors.iter().enumerate() {
                out[id] |= d.seg == span.seg && span.contains(d.offset);
            }
        }
    }
    out
}

/// Presses and releases detectors as trains move, and counts trains into and out of blocks.
pub(super) fn detect(
    layout: Res<LayoutRes>,
    clock: Res<Clock>,
    mut occupancy: ResMut<Occupancy>,
    mut outbox: ResMut<Outbox>,
    trains: Query<&TrainState>,
) {
    let layout = &layout.0;
    if layout.detectors.is_empty() {
        return;
    }
    let now = pressed(layout, trains.iter());
    let time_ms = clock.now_ms();
    for (id, closed) in now.into_iter().enumerate() {
        if occupancy.detectors[id] == closed {
            continue;
        }
        occupancy.detectors[id] = closed;
        outbox.0.push(SimEvent { time_ms, kind: EventKind::DetectorChanged { detector: id, closed } });
        let d = &layout.detectors[id];
        let before = occupancy.trains_in[d.block];
        let after = match (d.target, closed) {
            (DetectorTarget::Close, true) => before + 1,
            (DetectorTarget::Open, false) => before.saturating_sub(1),
            _ => before,
        };
        occupancy.trains_in[d.block] = after;
        if (before > 0) != (after > 0) {
            let kind = EventKind::BlockChanged { block: d.block, occupied: after > 0 };
            outbox.0.push(SimEvent { time_ms, kind });
        }
    }
}
