//! Pass detectors and block occupancy: a detector is closed while a train's body is over it; a train is in a
//! block from its front pressing the block's entry (`CLOSE`) detector until its last car has left the exit
//! (`OPEN`) detector, so that two trains in one block keep it occupied until both left. Each train's own
//! presses and blocks are kept, so a train put elsewhere (the live mirror's [`super::SimCommand::Place`]) or
//! taken off leaves the blocks it was in, and is in the blocks its body is on where it was put: a block is
//! never held by a train that is no longer there.

use bevy_ecs::prelude::*;

use super::{Clock, EventKind, LayoutRes, Outbox, SimEvent, TrainState, TrainStatus};
use crate::layout::{DetectorTarget, Layout};

/// Detector and block state, a resource of the simulation.
#[derive(Resource, Debug, Clone)]
pub(super) struct Occupancy {
    /// Whether each detector is pressed, by detector id, as last told.
    pub detectors: Vec<bool>,
    /// Whether each block is occupied, by block id, as last told.
    told_blocks: Vec<bool>,
    /// By train: the detectors its body is over.
    presses: Vec<Vec<bool>>,
    /// By train: the blocks it is in.
    inside: Vec<Vec<bool>>,
}

impl Occupancy {
    /// Detectors pressed by `trains` (by train id) and, as a start, each train in the blocks its body overlaps.
    pub fn new(layout: &Layout, trains: &[TrainState]) -> Occupancy {
        let mut occupancy = Occupancy {
            detectors: vec![false; layout.detectors.len()],
            told_blocks: vec![false; layout.blocks.len()],
            presses: vec![vec![false; layout.detectors.len()]; trains.len()],
            inside: vec![vec![false; layout.blocks.len()]; trains.len()],
        };
        for t in trains {
            occupancy.put(layout, t);
        }
        occupancy.detectors = occupancy.pressed_by_any();
        occupancy.told_blocks = occupancy.blocks();
        occupancy
    }

    /// A train was put where it is now (or taken off): it is in the blocks its body overlaps and over the
    /// detectors it covers, and nowhere else (told with the next step).
    pub fn put(&mut self, layout: &Layout, t: &TrainState) {
        let Some(presses) = self.presses.get_mut(t.id) else { return };
        *presses = pressed(layout, t);
        self.inside[t.id] =
            layout.blocks.iter().map(|b| on_track(t) && t.body.segs.iter().any(|(s, _)| b.segs.contains(s))).collect();
    }

    /// Whether each block is occupied, by block id.
    pub fn blocks(&self) -> Vec<bool> {
        let mut blocks = Vec::new();
        self.blocks_into(&mut blocks);
        blocks
    }

    /// [`Occupancy::blocks`] into `blocks`, reusing its buffer.
    pub fn blocks_into(&self, blocks: &mut Vec<bool>) {
        blocks.clear();
        blocks.extend((0..self.told_blocks.len()).map(|b| self.inside.iter().any(|t| t[b])));
    }

    fn pressed_by_any(&self) -> Vec<bool> {
        (0..self.detectors.len()).map(|d| self.presses.iter().any(|t| t[d])).collect()
    }
}

/// Whether a train still stands on the track (a crashed or derailed one presses what it stands on).
fn on_track(t: &TrainState) -> bool {
    t.status != TrainStatus::Removed
}

/// Which detectors a train's body is over.
fn pressed(layout: &Layout, t: &TrainState) -> Vec<bool> {
    let mut out = vec![false; layout.detectors.len()];
    if !on_track(t) {
        return out;
    }
    for span in t.body.spans(layout) {
        for (id, d) in layout.detectors.iter().enumerate() {
            out[id] |= d.seg == span.seg && span.contains(d.offset);
        }
    }
    out
}

/// Presses and releases detectors as trains move, and moves trains into and out of blocks.
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
    let occupancy = &mut *occupancy;
    for t in trains.iter() {
        let now = pressed(layout, t);
        for (id, d) in layout.detectors.iter().enumerate() {
            let closed = now[id];
            if occupancy.presses[t.id][id] == closed {
                continue;
            }
            match (d.target, closed) {
                (DetectorTarget::Close, true) => occupancy.inside[t.id][d.block] = true,
                (DetectorTarget::Open, false) => occupancy.inside[t.id][d.block] = false,
                _ => {}
            }
        }
        occupancy.presses[t.id] = now;
        if !on_track(t) {
            occupancy.inside[t.id].fill(false);
        }
    }
    let time_ms = clock.now_ms();
    for (id, closed) in occupancy.pressed_by_any().into_iter().enumerate() {
        if std::mem::replace(&mut occupancy.detectors[id], closed) != closed {
            outbox.0.push(SimEvent { time_ms, kind: EventKind::DetectorChanged { detector: id, closed } });
        }
    }
    for (block, occupied) in occupancy.blocks().into_iter().enumerate() {
        if std::mem::replace(&mut occupancy.told_blocks[block], occupied) != occupied {
            outbox.0.push(SimEvent { time_ms, kind: EventKind::BlockChanged { block, occupied } });
        }
    }
}
