//! Collision detection: overlapping trains, and trains fouling a point from two branches.

use std::collections::HashSet;

use bevy_ecs::prelude::*;

use super::{Clock, EventKind, LayoutRes, Outbox, SimEvent, TrainState, TrainStatus};
use crate::layout::{Dir, End, Layout, NodeId, NodeRole, Port, TrainId};

/// How far from a point's centre a train fouls the other branch, in millimetres.
pub const FOULING_MM: f64 = 40.0;

/// How two trains met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CollisionKind {
    /// Running the same way: one ran into the other's rear.
    RearEnd,
    /// Running towards each other.
    HeadOn,
    /// At a point, one on each branch.
    Flank,
}

/// Which side of a point a segment end is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Trunk,
    Straight,
    Diverging,
}

/// Reused buffers and the point lookup, so a step allocates nothing.
#[derive(Resource)]
pub(super) struct Scratch {
    /// For each segment: (point node, side) at its `from` and `to` ends, when that end is at a point.
    point_ends: Vec<[Option<(NodeId, Side)>; 2]>,
    per_seg: Vec<Vec<(TrainId, f64, f64, Dir)>>,
    touched_segs: Vec<usize>,
    per_node: Vec<Vec<(TrainId, Side)>>,
    touched_nodes: Vec<usize>,
    reported: HashSet<(TrainId, TrainId)>,
}

impl Scratch {
    pub(super) fn new(layout: &Layout) -> Scratch {
        let mut point_ends = vec![[None, None]; layout.segments.len()];
        for (id, node) in layout.nodes.iter().enumerate() {
            if let NodeRole::Point { trunk, straight, diverging, .. } = node.role {
                for (port, side) in [(trunk, Side::Trunk), (straight, Side::Straight), (diverging, Side::Diverging)] {
                    let Port { seg, end } = port;
                    point_ends[seg][(end == End::To) as usize] = Some((id, side));
                }
            }
        }
        Scratch {
            point_ends,
            per_seg: vec![Vec::new(); layout.segments.len()],
            touched_segs: Vec::new(),
            per_node: vec![Vec::new(); layout.nodes.len()],
            touched_nodes: Vec::new(),
            reported: HashSet::new(),
        }
    }
}

pub(super) fn detect_collisions(
    mut trains: Query<&mut TrainState>,
    layout: Res<LayoutRes>,
    clock: Res<Clock>,
    mut scratch: ResMut<Scratch>,
    mut out: ResMut<Outbox>,
) {
    let layout = &layout.0;
    let sc = &mut *scratch;
    for t in trains.iter().filter(|t| t.status != TrainStatus::Removed) {
        for (span, &(_, dir)) in t.body.spans(layout).zip(&t.body.segs) {
            if sc.per_seg[span.seg].is_empty() {
                sc.touched_segs.push(span.seg);
            }
            sc.per_seg[span.seg].push((t.id, span.lo, span.hi, dir));
            let len = layout.segments[span.seg].length;
            let ends = sc.point_ends[span.seg];
            for (near, end) in [(span.lo < FOULING_MM, ends[0]), (span.hi > len - FOULING_MM, ends[1])] {
                if let (true, Some((node, side))) = (near, end) {
                    if sc.per_node[node].is_empty() {
                        sc.touched_nodes.push(node);
                    }
                    sc.per_node[node].push((t.id, side));
                }
            }
        }
    }
    let mut hits: Vec<(CollisionKind, TrainId, TrainId)> = Vec::new();
    for seg in sc.touched_segs.drain(..) {
        let list = &mut sc.per_seg[seg];
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if a.0 != b.0 && a.1 < b.2 && b.1 < a.2 {
                    let kind = if a.3 == b.3 { CollisionKind::RearEnd } else { CollisionKind::HeadOn };
                    hits.push((kind, a.0.min(b.0), a.0.max(b.0)));
                }
            }
        }
        list.clear();
    }
    for node in sc.touched_nodes.drain(..) {
        let list = &mut sc.per_node[node];
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let branches = [a.1, b.1];
                if a.0 != b.0 && branches.contains(&Side::Straight) && branches.contains(&Side::Diverging) {
                    hits.push((CollisionKind::Flank, a.0.min(b.0), a.0.max(b.0)));
                }
            }
        }
        list.clear();
    }
    if hits.is_empty() {
        return;
    }
    let time_ms = clock.now_ms();
    for (kind, a, b) in hits {
        if !sc.reported.insert((a, b)) {
            continue;
        }
        out.0.push(SimEvent { time_ms, kind: EventKind::Collision { kind, trains: [a, b] } });
        for mut t in &mut trains {
            if (t.id == a || t.id == b) && t.status == TrainStatus::Running {
                t.status = TrainStatus::Crashed;
            }
        }
    }
}
