//! The 2023 auto-operation's rule alone, as a baseline.

use crate::interlocking::Request;
use crate::interlocking::route::{gap_to, route_ahead};
use crate::layout::{DeviceKind, DevicePlace, Dir, Layout, OnOff, Placement, TrainId};
use crate::track::DevicePosition;
use crate::twin::{TrackState, TrainStatus};

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
