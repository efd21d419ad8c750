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
    /// The middle of its platforms (or of its devices when it has none).
    pub at: [f64; 2],
    /// Where its name is drawn, clear of every other station's name: the middle of the name's baseline, in
    /// layout units, for a name [`NAME_SIZE`] units high (both views draw it there, at that size).
    pub label: [f64; 2],
}

/// The height of a station's name on the map, layout units (a view scales it with the map).
pub const NAME_SIZE: f64 = 15.0;

/// How far above its platforms a station's name sits first, and the steps it is moved by (down, up, further)
/// until it overlaps no name placed before it.
const NAME_RISE: f64 = 14.0;
const NAME_STEPS: [f64; 6] = [0.0, 18.0, -18.0, 36.0, -36.0, 54.0];

/// A name's box on the map if its baseline's middle is at `at`: as wide as "Japanese English" in a bold face
/// ([`text_width`]), so that either name alone fits inside it too.
fn name_box(station: &StationLabel, at: [f64; 2]) -> [f64; 4] {
    let width = text_width(&format!("{} {}", station.name_ja, station.name_en), NAME_SIZE);
    [at[0] - width / 2.0, at[1] - NAME_SIZE, width, NAME_SIZE * 1.2]
}

/// Whether two boxes (`[x, y, width, height]`) overlap.
fn overlaps(a: [f64; 4], b: [f64; 4]) -> bool {
    a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
}

/// The height of a train's name on the map, layout units.
pub const TRAIN_NAME_SIZE: f64 = 11.0;

/// Where a train's name may go, from the train (`[dx, dy]` to the name's baseline middle), in the order tried:
/// above it, below it, right, left, further above, further below.
fn train_name_spots(width: f64) -> [[f64; 2]; 6] {
    [[0.0, -12.0], [0.0, 23.0], [width / 2.0 + 12.0, 5.0], [-(width / 2.0 + 12.0), 5.0], [0.0, -26.0], [0.0, 37.0]]
}

/// How wide `text` is on the map at `size` (bold: a CJK character a square, a Latin one about 0.7 of it).
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().map(|c| if c.is_ascii() { 0.7 } else { 1.0 }).sum::<f64>() * size
}

impl Drawing {
    /// Where each train's name goes (its baseline middle, layout units) for trains at `fronts` (by train;
    /// `None`: not on the map): the first of its spots that overlaps no station name and no train name placed
    /// before it, else above the train.
    pub fn train_names(&self, fronts: &[Option<[f64; 2]>]) -> Vec<Option<[f64; 2]>> {
        let stations: Vec<[f64; 4]> = self.stations.iter().map(|s| name_box(s, s.label)).collect();
        let mut placed: Vec<[f64; 4]> = Vec::new();
        fronts
            .iter()
            .zip(&self.trains)
            .map(|(front, train)| {
                let [x, y] = (*front)?;
                let width = text_width(&train.name, TRAIN_NAME_SIZE) + 4.0;
                let name_at =
                    |[dx, dy]: [f64; 2]| [x + dx - width / 2.0, y + dy - TRAIN_NAME_SIZE, width, TRAIN_NAME_SIZE * 1.2];
                let spots = train_name_spots(width);
                let spot = spots
                    .into_iter()
                    .find(|&d| !stations.iter().chain(&placed).any(|&b| overlaps(b, name_at(d))))
                    .unwrap_or(spots[0]);
                placed.push(name_at(spot));
                Some([x + spot[0], y + spot[1]])
            })
            .collect()
    }
}

/// Places every station's name: above its platforms, else moved down or up a step at a time until it overlaps
/// no name placed before it (two stations on one platform segment: one below the other).
fn place_names(stations: &mut [StationLabel]) {
    let mut placed: Vec<[f64; 4]> = Vec::new();
    for station in stations.iter_mut() {
        let base = [station.at[0], station.at[1] - NAME_RISE];
        let spot = NAME_STEPS
            .iter()
            .map(|dy| [base[0], base[1] + dy])
            .find(|&at| !placed.iter().any(|&b| overlaps(b, name_box(station, at))))
            .unwrap_or([base[0], base[1] + NAME_STEPS[NAME_STEPS.len() - 1]]);
        station.label = spot;
        placed.push(name_box(station, spot));
    }
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
        let stations = self.station_labels(&devices);
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

    /// Every station's name, placed clear of each other (`devices`: the device marks, where a station without
    /// platforms is drawn).
    fn station_labels(&self, devices: &[DeviceMark]) -> Vec<StationLabel> {
        let mut stations: Vec<StationLabel> = self
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
                    label: [0.0, 0.0],
                }
            })
            .collect();
        place_names(&mut stations);
        stations
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::festival::{layout_2021, layout_2023};

    fn clear_of_each_other(layout: Layout) {
        let drawing = layout.drawing();
        let boxes: Vec<[f64; 4]> = drawing.stations.iter().map(|s| name_box(s, s.label)).collect();
        for (i, a) in boxes.iter().enumerate() {
            for (j, b) in boxes.iter().enumerate().skip(i + 1) {
                assert!(
                    !overlaps(*a, *b),
                    "{} and {} overlap",
                    drawing.stations[i].name_en,
                    drawing.stations[j].name_en
                );
            }
        }
    }

    #[test]
    fn no_two_station_names_of_the_2021_layout_overlap() {
        clear_of_each_other(layout_2021());
    }

    #[test]
    fn no_two_station_names_of_the_2023_layout_overlap() {
        clear_of_each_other(layout_2023());
    }

    #[test]
    fn a_train_name_goes_where_no_station_name_is() {
        let drawing = layout_2021().drawing();
        // A train right under a station's name: its name does not go above it, onto the station's.
        let under = drawing.stations[0].label;
        let fronts = vec![Some([under[0], under[1] + 12.0]), None];
        let names = drawing.train_names(&fronts);
        assert_eq!(names.len(), 2);
        assert_ne!(names[0], Some(under), "above the train is the station's name");
        assert_eq!(names[1], None);
        // A train far from every name: above it.
        let names = drawing.train_names(&[Some([-500.0, -500.0])]);
        assert_eq!(names[0], Some([-500.0, -512.0]));
    }

    #[test]
    fn a_name_alone_sits_just_above_its_platforms() {
        let mut stations = vec![StationLabel {
            id: "a".into(),
            name_ja: "駅".into(),
            name_en: "A".into(),
            at: [100.0, 100.0],
            label: [0.0, 0.0],
        }];
        place_names(&mut stations);
        assert_eq!(stations[0].label, [100.0, 100.0 - NAME_RISE]);
    }

    #[test]
    fn two_names_at_one_place_are_set_one_below_the_other() {
        let station = |id: &str| StationLabel {
            id: id.into(),
            name_ja: "駅".into(),
            name_en: id.into(),
            at: [100.0, 100.0],
            label: [0.0, 0.0],
        };
        let mut stations = vec![station("A"), station("B")];
        place_names(&mut stations);
        assert_eq!(stations[1].label, [100.0, 100.0 - NAME_RISE + NAME_STEPS[1]]);
    }
}
