//! The track's data as the v2 frames show it: a snapshot, a train's position, a board's health and a block
//! with its detectors, read into [`wire::v2`]'s types (the wire crate knows nothing of the track driver).

use hil::boards2023::block_word::DetectorHealth;
use hil::track::{BoardHealth, Snapshot, TrainPosition};
use sim::auto::Operation;
use sim::layout::drawing::Drawing;
use sim::layout::{DetectorTarget, Layout};
use sim::twin::TrainStatus;
use wire::v2::{Block, Board, Device, Plan, State, Train};

/// The track's snapshot as views see it.
pub fn state(layout: &Layout, drawing: &Drawing, snap: &Snapshot) -> State {
    State {
        mode: snap.mode,
        operation: snap.operation,
        plans: match snap.operation {
            Operation::Manual => Vec::new(),
            _ => Plan::all(layout, &snap.plans, snap.state.time_ms),
        },
        time_ms: snap.state.time_ms,
        devices: layout
            .devices
            .iter()
            .zip(&snap.state.devices)
            .map(|(d, p)| Device { name: d.name.clone(), kind: Some(d.kind), state: p.state() })
            .collect(),
        trains: trains(
            layout,
            drawing,
            &snap.state.trains.iter().map(|t| TrainPosition::of(layout, t)).collect::<Vec<_>>(),
        )
        .into_iter()
        .zip(&snap.state.trains)
        .map(|(view, t)| Train { speed: snap.speeds.get(t.id).copied(), ..view })
        .collect(),
        boards: snap.boards.iter().map(|(_, h)| board(h)).collect(),
        blocks: snap
            .state
            .blocks
            .iter()
            .enumerate()
            .map(|(b, &occupied)| block(layout, b, occupied, &snap.detectors))
            .collect(),
        online: true,
    }
}

/// The trains' positions as views see them, each name placed by the layout's `drawing` clear of the station names
/// and of each other.
pub fn trains(layout: &Layout, drawing: &Drawing, positions: &[TrainPosition]) -> Vec<Train> {
    let mut trains: Vec<Train> = positions.iter().map(|p| train(layout, p)).collect();
    let mut fronts: Vec<Option<[f64; 2]>> = vec![None; layout.trains.len()];
    for (t, p) in trains.iter().zip(positions) {
        if p.status != TrainStatus::Removed {
            fronts[p.train] = Some([t.x, t.y]);
        }
    }
    let labels = drawing.train_names(&fronts);
    for (t, p) in trains.iter_mut().zip(positions) {
        t.label = labels[p.train];
    }
    trains
}

/// A train's position as views see it (its name not placed).
fn train(layout: &Layout, p: &TrainPosition) -> Train {
    let [x, y] = layout.point_at(p.front.seg, p.front.offset);
    Train {
        name: layout.trains[p.train].name.clone(),
        segment: layout.segments[p.front.seg].id.clone(),
        offset_mm: p.front.offset,
        x,
        y,
        speed_mm_s: p.speed,
        status: p.status,
        speed: None,
        label: None,
    }
}

/// A board's health as views see it.
pub fn board(h: &BoardHealth) -> Board {
    Board {
        name: h.name.clone(),
        address: h.address.clone(),
        alive: h.alive,
        restoring: h.restoring,
        unknown: h.unknown,
    }
}

/// A block of `layout` as views see it, with its detectors' health (by detector).
pub fn block(layout: &Layout, block: usize, occupied: bool, health: &[DetectorHealth]) -> Block {
    let unwell: Vec<String> = layout
        .detectors
        .iter()
        .zip(health)
        .filter(|(d, h)| d.block == block && **h != DetectorHealth::Ok)
        .map(|(d, h)| format!("{} {}", if d.target == DetectorTarget::Close { "CLOSE" } else { "OPEN" }, h.word()))
        .collect();
    Block { id: layout.blocks[block].id.clone(), occupied, detectors: (!unwell.is_empty()).then(|| unwell.join(", ")) }
}
