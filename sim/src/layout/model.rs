//! The validated, indexed layout that the simulation, the interlocking and the views use.

use std::collections::HashMap;

pub use super::spec::{BoardKind, Branch, CanvasSpec, DetectorTarget, DeviceKind, OnOff};

/// Index of a segment in [`Layout::segments`].
pub type SegId = usize;
/// Index of a node in [`Layout::nodes`].
pub type NodeId = usize;
/// Index of a device in [`Layout::devices`].
pub type DeviceId = usize;
/// Index of a sensor in [`Layout::sensors`].
pub type SensorId = usize;
/// Index of a block in [`Layout::blocks`].
pub type BlockId = usize;
/// Index of a detector in [`Layout::detectors`].
pub type DetectorId = usize;
/// Index of a board in [`Layout::boards`].
pub type BoardId = usize;
/// Index of a train in [`Layout::trains`].
pub type TrainId = usize;
/// Index of a station in [`Layout::stations`].
pub type StationId = usize;

/// Direction of travel along a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the `from` node towards the `to` node (offset grows).
    Forward,
    /// From the `to` node towards the `from` node (offset shrinks).
    Backward,
}

impl Dir {
    /// The opposite direction.
    pub fn flip(self) -> Dir {
        match self {
            Dir::Forward => Dir::Backward,
            Dir::Backward => Dir::Forward,
        }
    }
}

/// One end of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The end at offset 0.
    From,
    /// The end at offset `length`.
    To,
}

/// A segment end attached to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    /// The segment.
    pub seg: SegId,
    /// Which of its ends touches the node.
    pub end: End,
}

impl Port {
    /// The direction a train has when it leaves the node into this segment.
    pub fn leaving_dir(self) -> Dir {
        match self.end {
            End::From => Dir::Forward,
            End::To => Dir::Backward,
        }
    }
}

/// A track segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Id from the file.
    pub id: String,
    /// Node at offset 0.
    pub from: NodeId,
    /// Node at offset `length`.
    pub to: NodeId,
    /// Length in millimetres.
    pub length: f64,
    /// Intermediate drawing points.
    pub points: Vec<[f64; 2]>,
}

impl Segment {
    /// The node a train travelling in `dir` reaches at the end of this segment.
    pub fn node_ahead(&self, dir: Dir) -> NodeId {
        match dir {
            Dir::Forward => self.to,
            Dir::Backward => self.from,
        }
    }

    /// The end a train travelling in `dir` leaves the segment by.
    pub fn exit_end(dir: Dir) -> End {
        match dir {
            Dir::Forward => End::To,
            Dir::Backward => End::From,
        }
    }
}

/// How a point (switch or spring) behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointKind {
    /// Servo-driven by a device.
    Switch {
        /// The driving device.
        device: DeviceId,
        /// Whether trains may trail through it when it is set against them.
        trailable: bool,
    },
    /// Returned to `normal` by a spring; trailable.
    Spring {
        /// Branch it returns to.
        normal: Branch,
    },
}

/// What a node joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Two segment ends joined.
    Joint([Port; 2]),
    /// A point with three ports.
    Point {
        /// Trunk port.
        trunk: Port,
        /// Straight-branch port.
        straight: Port,
        /// Diverging-branch port.
        diverging: Port,
        /// Switch or spring.
        kind: PointKind,
    },
}

/// A track node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Id from the file.
    pub id: String,
    /// Schematic x.
    pub x: f64,
    /// Schematic y.
    pub y: f64,
    /// What it joins.
    pub role: NodeRole,
}

/// A station.
#[derive(Debug, Clone)]
pub struct Station {
    /// Id, e.g. `chofu`.
    pub id: String,
    /// Japanese name.
    pub name_ja: String,
    /// English name.
    pub name_en: String,
}

/// A platform.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Index into [`Layout::stations`].
    pub station: usize,
    /// Japanese label.
    pub name_ja: String,
    /// English label.
    pub name_en: String,
    /// Segment it lies along.
    pub seg: SegId,
}

/// A board: an ESP32 on the layout, or a train's onboard speed controller.
#[derive(Debug, Clone)]
pub struct Board {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Servo, sensor or speed controller.
    pub kind: BoardKind,
}

/// Where a device acts on the track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DevicePlace {
    /// A stop rail at an offset on a segment.
    StopRail {
        /// Segment.
        seg: SegId,
        /// Offset from the `from` end, mm.
        offset: f64,
    },
    /// A switch node.
    Switch {
        /// The node.
        node: NodeId,
    },
}

/// A servo-driven device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Name, e.g. `chofu_b1`.
    pub name: String,
    /// Stop rail or switch.
    pub kind: DeviceKind,
    /// Index into [`Layout::stations`].
    pub station: usize,
    /// Servo board.
    pub board: BoardId,
    /// GPIO pin.
    pub pin: u32,
    /// Angle for ON.
    pub on_angle: u32,
    /// Angle for OFF.
    pub off_angle: u32,
    /// State at start-up.
    pub initial: OnOff,
    /// 2021 gRPC `StationId`, if any.
    pub grpc_id: Option<u32>,
    /// Where it acts.
    pub place: DevicePlace,
}

/// A hall sensor.
#[derive(Debug, Clone)]
pub struct Sensor {
    /// Name.
    pub name: String,
    /// Segment.
    pub seg: SegId,
    /// Offset from the `from` end, mm.
    pub offset: f64,
    /// Sensor board and pin, if wired.
    pub wiring: Option<(BoardId, u32)>,
}

/// A block: occupied from the moment a train's front reaches its entry detector until its last car has left
/// past its exit detector.
#[derive(Debug, Clone)]
pub struct Block {
    /// Id, e.g. `chofu_up_b1`.
    pub id: String,
    /// Segments it covers.
    pub segs: Vec<SegId>,
    /// Stop rails trains depart from into it (not lowered while it is occupied).
    pub stops: Vec<DeviceId>,
}

/// A pass detector: a micro-switch held closed while a train is over it.
#[derive(Debug, Clone)]
pub struct Detector {
    /// Its block.
    pub block: BlockId,
    /// Entry (`CLOSE`) or exit (`OPEN`).
    pub target: DetectorTarget,
    /// Segment.
    pub seg: SegId,
    /// Offset from the `from` end, mm.
    pub offset: f64,
    /// MQTT board and pin, if wired.
    pub wiring: Option<(BoardId, u32)>,
}

/// One allowed combination of a rule group.
#[derive(Debug, Clone)]
pub struct RuleLine {
    /// Devices that must be ON.
    pub on: Vec<DeviceId>,
    /// Devices that must be OFF.
    pub off: Vec<DeviceId>,
}

/// A rule group.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    /// Name.
    pub name: String,
    /// Devices covered.
    pub devices: Vec<DeviceId>,
    /// Allowed combinations.
    pub allowed: Vec<RuleLine>,
}

/// A position on the track with a direction of travel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Segment.
    pub seg: SegId,
    /// Offset from the segment's `from` end, mm.
    pub offset: f64,
    /// Direction of travel.
    pub dir: Dir,
}

/// A train.
#[derive(Debug, Clone)]
pub struct Train {
    /// Name.
    pub name: String,
    /// Length, mm.
    pub length: f64,
    /// Highest settable speed, mm/s.
    pub max_speed: u32,
    /// Speed at start-up, mm/s.
    pub speed: u32,
    /// Its onboard speed controller (a board of kind [`BoardKind::Speed`]), if it has one.
    pub controller: Option<BoardId>,
    /// Where its front starts.
    pub start: Placement,
    /// The stations it calls at in automatic operation (every station when empty).
    pub calls: Vec<StationId>,
    /// Its dwell at a station it calls at, ms.
    pub dwell_ms: u64,
    /// The switches whose branch its service fixes where it faces them, with the setting (the others are the
    /// planner's choice).
    pub ways: Vec<(DeviceId, OnOff)>,
}

impl Train {
    /// Whether it calls at (dwells at) `station` in automatic operation.
    pub fn calls_at(&self, station: StationId) -> bool {
        self.calls.is_empty() || self.calls.contains(&station)
    }

    /// The setting its service fixes for `switch` where it faces it, if any.
    pub fn way_at(&self, switch: DeviceId) -> Option<OnOff> {
        self.ways.iter().find(|(d, _)| *d == switch).map(|&(_, s)| s)
    }
}

/// A train's dwell at a station when its service does not say (s).
pub const DEFAULT_DWELL_S: f64 = 10.0;

/// What a camera shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraView {
    /// A station's area (its platforms and devices).
    Station(StationId),
    /// The track ahead of a train, from its front.
    Ahead(TrainId),
}

/// A camera.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    /// Identifier used in URLs.
    pub id: String,
    /// Japanese name.
    pub name_ja: String,
    /// English name.
    pub name_en: String,
    /// What it shows.
    pub view: CameraView,
    /// Its MJPEG camera board in live mode (a board of kind [`BoardKind::Camera`]); `None`: a WHIP publisher.
    pub board: Option<BoardId>,
}

/// A validated layout. Build one with [`Layout::from_toml`] or [`Layout::from_spec`].
#[derive(Debug, Clone)]
pub struct Layout {
    /// Short name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Schematic canvas size.
    pub canvas: CanvasSpec,
    /// Stations.
    pub stations: Vec<Station>,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// Boards.
    pub boards: Vec<Board>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Segments.
    pub segments: Vec<Segment>,
    /// Servo devices.
    pub devices: Vec<Device>,
    /// Hall sensors.
    pub sensors: Vec<Sensor>,
    /// Blocks (2023 layouts; none in 2021's).
    pub blocks: Vec<Block>,
    /// Pass detectors of the blocks.
    pub detectors: Vec<Detector>,
    /// Rule groups.
    pub rules: Vec<RuleGroup>,
    /// Trains.
    pub trains: Vec<Train>,
    /// Cameras.
    pub cameras: Vec<Camera>,
    pub(super) device_index: HashMap<String, DeviceId>,
    pub(super) train_index: HashMap<String, TrainId>,
    pub(super) sensor_index: HashMap<String, SensorId>,
    pub(super) segment_index: HashMap<String, SegId>,
    pub(super) block_index: HashMap<String, BlockId>,
    /// Stop rails on each segment, (device, offset), looked up as trains move.
    pub(super) stop_rail_index: Vec<Vec<(DeviceId, f64)>>,
    /// Sensors on each segment, (sensor, offset).
    pub(super) sensor_index_by_seg: Vec<Vec<(SensorId, f64)>>,
    pub(super) track_length: f64,
}

impl Layout {
    /// Device by name.
    pub fn device_id(&self, name: &str) -> Option<DeviceId> {
        self.device_index.get(name).copied()
    }

    /// Camera by id.
    pub fn camera_id(&self, id: &str) -> Option<usize> {
        self.cameras.iter().position(|c| c.id == id)
    }

    /// Train by name.
    pub fn train_id(&self, name: &str) -> Option<TrainId> {
        self.train_index.get(name).copied()
    }

    /// Sensor by name.
    pub fn sensor_id(&self, name: &str) -> Option<SensorId> {
        self.sensor_index.get(name).copied()
    }

    /// Block by id.
    pub fn block_id(&self, id: &str) -> Option<BlockId> {
        self.block_index.get(id).copied()
    }

    /// Segment by id.
    pub fn segment_id(&self, id: &str) -> Option<SegId> {
        self.segment_index.get(id).copied()
    }

    /// Stop-rail devices lying on a segment, as (device, offset).
    pub fn stop_rails_on(&self, seg: SegId) -> impl Iterator<Item = (DeviceId, f64)> + '_ {
        self.stop_rail_index[seg].iter().copied()
    }

    /// Hall sensors lying on a segment, as (sensor, offset).
    pub fn sensors_on(&self, seg: SegId) -> impl Iterator<Item = (SensorId, f64)> + '_ {
        self.sensor_index_by_seg[seg].iter().copied()
    }

    /// Total track length in millimetres.
    pub fn track_length(&self) -> f64 {
        self.track_length
    }

    /// Schematic point at `offset` mm along a segment (interpolated along its drawing polyline).
    pub fn point_at(&self, seg: SegId, offset: f64) -> [f64; 2] {
        let s = &self.segments[seg];
        let line = self.polyline(seg);
        let drawn: f64 = line.windows(2).map(|w| dist(w[0], w[1])).sum();
        if drawn <= 0.0 {
            return line[0];
        }
        along(&line, (offset / s.length).clamp(0.0, 1.0) * drawn)
    }

    /// The segment's drawing polyline from its `from` node to its `to` node.
    pub fn polyline(&self, seg: SegId) -> Vec<[f64; 2]> {
        let s = &self.segments[seg];
        let a = &self.nodes[s.from];
        let b = &self.nodes[s.to];
        let mut line = Vec::with_capacity(s.points.len() + 2);
        line.push([a.x, a.y]);
        line.extend_from_slice(&s.points);
        line.push([b.x, b.y]);
        line
    }
}

/// The point `distance` schematic units along a polyline from its first point (its last point when the line is
/// shorter).
pub(super) fn along(line: &[[f64; 2]], distance: f64) -> [f64; 2] {
    let mut left = distance;
    for w in line.windows(2) {
        let d = dist(w[0], w[1]);
        if left <= d && d > 0.0 {
            let t = left / d;
            return [w[0][0] + (w[1][0] - w[0][0]) * t, w[0][1] + (w[1][1] - w[0][1]) * t];
        }
        left -= d;
    }
    line[line.len() - 1]
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Counts of what a layout holds, as `plarail-twin layout check` prints them.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Track segments.
    pub segments: usize,
    /// Track length, metres.
    pub track_m: f64,
    /// Servo-driven switches.
    pub switches: usize,
    /// Spring points.
    pub springs: usize,
    /// Stop rails.
    pub stop_rails: usize,
    /// Servo devices (stop rails and switches).
    pub servo_devices: usize,
    /// Hall sensors.
    pub sensors: usize,
    /// Hall sensors wired to a sensor board.
    pub wired_sensors: usize,
    /// Blocks.
    pub blocks: usize,
    /// Pass detectors.
    pub detectors: usize,
    /// Pass detectors wired to an MQTT board.
    pub wired_detectors: usize,
    /// MQTT boards (2023).
    pub mqtt_boards: usize,
    /// Servo boards.
    pub servo_boards: usize,
    /// Sensor boards.
    pub sensor_boards: usize,
    /// Onboard speed controllers.
    pub speed_controllers: usize,
    /// Stations.
    pub stations: usize,
    /// Rule groups.
    pub rule_groups: usize,
    /// Trains.
    pub trains: usize,
}

impl Layout {
    /// Counts what the layout holds.
    pub fn summary(&self) -> Summary {
        let points = |spring: bool| {
            self.nodes
                .iter()
                .filter(|n| matches!(n.role, NodeRole::Point { kind, .. } if matches!(kind, PointKind::Spring { .. }) == spring))
                .count()
        };
        let boards = |k: BoardKind| self.boards.iter().filter(|b| b.kind == k).count();
        Summary {
            segments: self.segments.len(),
            track_m: self.track_length() / 1000.0,
            switches: points(false),
            springs: points(true),
            stop_rails: self.devices.iter().filter(|d| d.kind == DeviceKind::StopRail).count(),
            servo_devices: self.devices.len(),
            sensors: self.sensors.len(),
            wired_sensors: self.sensors.iter().filter(|s| s.wiring.is_some()).count(),
            blocks: self.blocks.len(),
            detectors: self.detectors.len(),
            wired_detectors: self.detectors.iter().filter(|d| d.wiring.is_some()).count(),
            mqtt_boards: boards(BoardKind::Mqtt),
            servo_boards: boards(BoardKind::Servo),
            sensor_boards: boards(BoardKind::Sensor),
            speed_controllers: boards(BoardKind::Speed),
            stations: self.stations.len(),
            rule_groups: self.rules.len(),
            trains: self.trains.len(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "segments:       {} ({:.1} m of track)", self.segments, self.track_m)?;
        writeln!(f, "switches:       {} servo, {} spring points", self.switches, self.springs)?;
        writeln!(f, "stop rails:     {}", self.stop_rails)?;
        writeln!(f, "servo devices:  {}", self.servo_devices)?;
        writeln!(f, "sensors:        {} ({} wired to a sensor board)", self.sensors, self.wired_sensors)?;
        if self.blocks > 0 {
            writeln!(f, "blocks:         {}", self.blocks)?;
            writeln!(f, "detectors:      {} ({} wired to an MQTT board)", self.detectors, self.wired_detectors)?;
        }
        writeln!(
            f,
            "boards:         {} servo, {} sensor, {} MQTT, {} speed controller(s)",
            self.servo_boards, self.sensor_boards, self.mqtt_boards, self.speed_controllers
        )?;
        writeln!(f, "stations:       {}", self.stations)?;
        writeln!(f, "rule groups:    {}", self.rule_groups)?;
        write!(f, "trains:         {}", self.trains)
    }
}
