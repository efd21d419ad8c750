//! The layout as a schematic picture: track polylines, where each device, sensor and station label sits, and
//! which way each switch's branches leave it. Plain data for every view (the browser page, the desktop window).

use serde::Serialize;

use super::model::{DevicePlace, End, Layout, NodeRole, Port, along};
use super::spec::{DetectorTarget, DeviceKind};

/// How far along a branch (schematic units) a switch's set-branch stub reaches.
pub const STUB: f64 = 16.0;

/// The whole layout as a picture, in the layout file's schematic units.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drawing {
    /// Layout name.
    pub name: String,
    /// Canvas width.
    pub width: f64,
    /// Canvas height.
    pub height: f64,
    /// One polyline per track segment.
    pub tracks: Vec<TrackLine>,
    /// Station labels.
    pub stations: Vec<StationLabel>,
    /// Every servo device, in layout order.
    pub devices: Vec<DeviceMark>,
    /// Every hall sensor, in layout order.
    pub sensors: Vec<SensorMark>,
    /// Every train, in layout order.
    pub trains: Vec<TrainLabel>,
    /// Blocks, drawn occupied or free (a layout without blocks has none, and the key is left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<BlockMark>,
    /// Pass detectors (left out without blocks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<DetectorMark>,
}

/// A block: its id and the track lines it covers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BlockMark {
    /// Block id.
    pub id: String,
    /// Indices into [`Drawing::tracks`].
    pub tracks: Vec<usize>,
}

/// Where a pass detector sits.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DetectorMark {
    /// Index into [`Drawing::blocks`].
    pub block: usize,
    /// `close` (the block's entry) or `open` (its exit).
    pub target: &'static str,
    /// Position.
    pub at: [f64; 2],
}

/// A track segment's polyline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrackLine {
    /// Segment id.
    pub id: String,
    /// Schematic points from its `from` node to its `to` node.
    pub points: Vec<[f64; 2]>,
}

/// Where a station's name is drawn.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StationLabel {
    /// Station id.
    pub id: String,
    /// Japanese name.
    pub name_ja: String,
    /// English name.
    pub name_en: String,
    /// Label position: the middle of its platforms (or of its devices when it has none).
    pub at: [f64; 2],
}

/// A servo device on the picture.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceMark {
    /// Device name.
    pub name: String,
    /// Stop rail or switch.
    pub kind: DeviceKind,
    /// Index into [`Drawing::stations`].
    pub station: usize,
    /// Where it sits: the stop rail's point on its segment, or the switch's node.
    pub at: [f64; 2],
    /// For a switch: the end of a short stub along the straight branch (the way it is set when OFF).
    pub off: Option<[f64; 2]>,
    /// For a switch: the end of a short stub along the diverging branch (the way it is set when ON).
    pub on: Option<[f64; 2]>,
}

/// A hall sensor on the picture.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorMark {
    /// Sensor name.
    pub name: String,
    /// Where it sits.
    pub at: [f64; 2],
}

/// A train's name and speed range, for speed controls.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrainLabel {
    /// Train name.
    pub name: String,
    /// Highest speed a command may set, mm/s.
    pub max_speed: u32,
    /// Body length, mm.
    pub length: f64,
    /// Whether it has an onboard speed controller (without one, its speed is set in the simulation only).
    pub controller: bool,
}

impl Layout {
    /// The layout as a schematic picture.
    pub fn drawing(&self) -> Drawing {
        let devices: Vec<DeviceMark> = self.devices.iter().map(|d| self.device_mark(d)).collect();
        let stations = self
            .stations
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut points: Vec<[f64; 2]> = self
                    .platforms
                    .iter()
                    .filter(|p| p.station == i)
                    .map(|p| self.point_at(p.seg, self.segments[p.seg].length / 2.0))
                    .collect();
                if points.is_empty() {
                    points = devices.iter().filter(|d| d.station == i).map(|d| d.at).collect();
                }
                StationLabel {
                    id: s.id.clone(),
                    name_ja: s.name_ja.clone(),
                    name_en: s.name_en.clone(),
                    at: centre(&points).unwrap_or([self.canvas.width / 2.0, self.canvas.height / 2.0]),
                }
            })
            .collect();
        Drawing {
            name: self.name.clone(),
            width: self.canvas.width,
            height: self.canvas.height,
            tracks: (0..self.segments.len())
                .map(|s| TrackLine { id: self.segments[s].id.clone(), points: self.polyline(s) })
                .collect(),
            stations,
            devices,
            sensors: self
                .sensors
                .iter()
                .map(|s| SensorMark { name: s.name.clone(), at: self.point_at(s.seg, s.offset) })
                .collect(),
            trains: self
                .trains
                .iter()
                .map(|t| TrainLabel {
                    name: t.name.clone(),
                    max_speed: t.max_speed,
                    length: t.length,
                    controller: t.controller.is_some(),
                })
                .collect(),
            blocks: self.blocks.iter().map(|b| BlockMark { id: b.id.clone(), tracks: b.segs.clone() }).collect(),
            detectors: self
                .detectors
                .iter()
                .map(|d| DetectorMark {
                    block: d.block,
                    target: match d.target {
                        DetectorTarget::Close => "close",
                        DetectorTarget::Open => "open",
                    },
                    at: self.point_at(d.seg, d.offset),
                })
                .collect(),
        }
    }

    fn device_mark(&self, d: &super::model::Device) -> DeviceMark {
        let (at, off, on) = match d.place {
            DevicePlace::StopRail { seg, offset } => (self.point_at(seg, offset), None, None),
            DevicePlace::Switch { node } => {
                let n = &self.nodes[node];
                let (off, on) = match n.role {
                    NodeRole::Point { straight, diverging, .. } => {
                        (Some(self.stub(straight)), Some(self.stub(diverging)))
                    }
                    NodeRole::Joint(_) => (None, None),
                };
                ([n.x, n.y], off, on)
            }
        };
        DeviceMark { name: d.name.clone(), kind: d.kind, station: d.station, at, off, on }
    }

    /// The point [`STUB`] schematic units along a segment from the node at `port`.
    fn stub(&self, port: Port) -> [f64; 2] {
        let mut line = self.polyline(port.seg);
        if port.end == End::To {
            line.reverse();
        }
        along(&line, STUB)
    }
}

fn centre(points: &[[f64; 2]]) -> Option<[f64; 2]> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    Some([points.iter().map(|p| p[0]).sum::<f64>() / n, points.iter().map(|p| p[1]).sum::<f64>() / n])
}
