//! Train movement: one fixed step of every running train.

use bevy_ecs::prelude::*;

use super::{Clock, DerailCause, Devices, EventKind, LayoutRes, Outbox, SimEvent, TrainState, TrainStatus};
use crate::layout::{DeviceId, Layout, SegId, SensorId};
use crate::track::{DevicePosition, next_segment, offset_of};

/// Something the front meets within one segment, at a travelled distance.
#[derive(Clone, Copy)]
pub(super) enum Mark {
    Stop(DeviceId),
    Derail(DeviceId),
    Passed(DeviceId),
    Sensor(SensorId),
}

const EPS: f64 = 1e-9;

pub(super) fn move_trains(
    mut trains: Query<&mut TrainState>,
    layout: Res<LayoutRes>,
    devices: Res<Devices>,
    clock: Res<Clock>,
    mut out: ResMut<Outbox>,
    mut marks: Local<Vec<(f64, Mark)>>,
) {
    let layout = &layout.0;
    let time_ms = clock.now_ms();
    for mut train in &mut trains {
        let v = train.effective_speed();
        if v == 0 {
            continue;
        }
        let want = v as f64 * clock.dt_ms as f64 / 1000.0;
        let reverse = train.set_speed < 0;
        let t = train.bypass_change_detection();
        if reverse {
            t.body = t.body.reversed(layout);
        }
        let moved = move_front(t, want, layout, &devices.0, time_ms, &mut marks, &mut out.0);
        tail_passes(t, moved, layout, &devices.0, time_ms, &mut out.0);
        t.body.advance_tail(layout, moved);
        if reverse {
            t.body = t.body.reversed(layout);
        }
    }
}

/// Moves the front up to `want` mm, stopping at raised stop rails; returns the distance moved.
#[allow(clippy::too_many_arguments)]
fn move_front(
    t: &mut TrainState,
    want: f64,
    layout: &Layout,
    devices: &[DevicePosition],
    time_ms: u64,
    marks: &mut Vec<(f64, Mark)>,
    out: &mut Vec<SimEvent>,
) -> f64 {
    let mut moved = 0.0;
    let mut rem = want;
    t.held_at = None;
    loop {
        let (seg, dir) = *t.body.segs.back().expect("a body covers a segment");
        let s = &layout.segments[seg];
        let h = t.body.head;
        let reach = (h + rem).min(s.length);
        marks.clear();
        collect_marks(layout, seg, dir, h, reach, devices, marks);
        marks.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut limit = reach;
        let mut stop = None;
        for &(p, mark) in marks.iter() {
            match mark {
                Mark::Stop(d) => {
                    limit = p.max(h);
                    stop = Some((d, false));
                    break;
                }
                Mark::Derail(d) => {
                    limit = p.max(h);
                    stop = Some((d, true));
                    break;
                }
                Mark::Passed(device) if p < reach => {
                    out.push(SimEvent { time_ms, kind: EventKind::StopRailPassed { device, train: t.id } })
                }
                Mark::Sensor(sensor) if p > h => {
                    out.push(SimEvent { time_ms, kind: EventKind::SensorPassed { sensor, train: t.id } })
                }
                _ => {}
            }
        }
        moved += limit - h;
        rem -= limit - h;
        t.body.head = limit;
        match stop {
            Some((device, false)) => {
                t.held_at = Some(device);
                return moved;
            }
            Some((device, true)) => {
                derail(t, DerailCause::StopRailBetween(device), time_ms, out);
                return moved;
            }
            None => {}
        }
        if rem <= EPS || reach < s.length {
            return moved;
        }
        match next_segment(layout, seg, dir, devices) {
            Ok(next) => {
                t.body.segs.push_back(next);
                t.body.head = 0.0;
            }
            Err(blocked) => {
                derail(t, blocked.into(), time_ms, out);
                return moved;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn collect_marks(
    layout: &Layout,
    seg: SegId,
    dir: crate::layout::Dir,
    h: f64,
    reach: f64,
    devices: &[DevicePosition],
    marks: &mut Vec<(f64, Mark)>,
) {
    let s = &layout.segments[seg];
    for (device, offset) in layout.stop_rails_on(seg) {
        let p = offset_of(s, dir, offset);
        if p < h - EPS || p > reach {
            continue;
        }
        marks.push((
            p,
            match devices[device] {
                DevicePosition::On => Mark::Stop(device),
                DevicePosition::Between(_) => Mark::Derail(device),
                DevicePosition::Off => Mark::Passed(device),
            },
        ));
    }
    for (sensor, offset) in layout.sensors_on(seg) {
        let p = offset_of(s, dir, offset);
        if p > h && p <= reach {
            marks.push((p, Mark::Sensor(sensor)));
        }
    }
}

/// Reports every lowered stop rail the tail passes while it moves `moved` mm along the body (before the body's
/// rear segments are let go): the train has then passed it with its last car.
fn tail_passes(
    t: &TrainState,
    moved: f64,
    layout: &Layout,
    devices: &[DevicePosition],
    time_ms: u64,
    out: &mut Vec<SimEvent>,
) {
    let mut from = t.body.tail;
    let mut rem = moved;
    for &(seg, dir) in &t.body.segs {
        if rem <= EPS {
            return;
        }
        let s = &layout.segments[seg];
        let to = (from + rem).min(s.length);
        for (device, offset) in layout.stop_rails_on(seg) {
            let p = offset_of(s, dir, offset);
            if p > from && p <= to && devices[device] == DevicePosition::Off {
                out.push(SimEvent { time_ms, kind: EventKind::StopRailCleared { device, train: t.id } });
            }
        }
        rem -= to - from;
        from = 0.0;
    }
}

fn derail(t: &mut TrainState, cause: DerailCause, time_ms: u64, out: &mut Vec<SimEvent>) {
    t.status = TrainStatus::Derailed;
    out.push(SimEvent { time_ms, kind: EventKind::Derailment { train: t.id, cause } });
}
