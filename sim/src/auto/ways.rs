//! The ways from a stop rail to the next one, walked over the layout's graph.

use super::{Auto, Way};
use crate::layout::{DeviceId, DevicePlace, Dir, NodeId, OnOff, Placement, StationId, TrainId};
use crate::track::{DevicePosition, next_segment, offset_of};
use crate::twin::TrackState;

impl Auto {
    /// Every way from stop rail `device` (where `train` stands) to a next stop rail, through any setting of the
    /// switches it meets (a trailed switch set for the branch it comes from).
    pub(super) fn ways(&self, state: &TrackState, train: TrainId, device: DeviceId) -> Vec<Way> {
        self.ways_from(&state.devices, train, device, state.trains[train].body.front(&self.layout).dir)
    }

    /// Every way of `train` from stop rail `device` run over in `dir` to a next stop rail.
    pub(super) fn ways_from(&self, devices: &[DevicePosition], train: TrainId, device: DeviceId, dir: Dir) -> Vec<Way> {
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
}
