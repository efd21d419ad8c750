//! The layout file as written on disk (TOML), before validation.
//!
//! The format is documented in `scenarios/layouts/README.md`. These types are plain serde data; the checks
//! that make a file a usable layout live in [`super::build`].

use serde::Deserialize;

/// A whole layout file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutSpec {
    /// Short name of the layout.
    pub name: String,
    /// Free text describing the layout and where its facts come from.
    #[serde(default)]
    pub description: String,
    /// Size of the schematic drawing area that node coordinates refer to.
    pub canvas: CanvasSpec,
    /// Stations (named places with platforms).
    #[serde(default, rename = "station")]
    pub stations: Vec<StationSpec>,
    /// Platforms: a stretch of one segment that belongs to a station.
    #[serde(default, rename = "platform")]
    pub platforms: Vec<PlatformSpec>,
    /// ESP32 boards, servo and sensor.
    #[serde(default, rename = "board")]
    pub boards: Vec<BoardSpec>,
    /// Track nodes: joints, switches and spring points.
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeSpec>,
    /// Track segments between two nodes.
    #[serde(default, rename = "segment")]
    pub segments: Vec<SegmentSpec>,
    /// Servo-driven devices: stop rails and switches.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceSpec>,
    /// Hall sensors.
    #[serde(default, rename = "sensor")]
    pub sensors: Vec<SensorSpec>,
    /// Blocks: stretches of track whose occupancy detectors report (2023 layouts).
    #[serde(default, rename = "block")]
    pub blocks: Vec<BlockSpec>,
    /// Pass detectors: micro-switches that close a block at its entry and open it at its exit.
    #[serde(default, rename = "detector")]
    pub detectors: Vec<DetectorSpec>,
    /// Per-station rule groups of allowed device combinations.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
    /// Trains and where they start.
    #[serde(default, rename = "train")]
    pub trains: Vec<TrainSpec>,
    /// Cameras: a station's area or the view ahead of a train.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraSpec>,
}

/// A camera on the layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// Identifier used in URLs (`/whep/<id>`), e.g. `chofu`.
    pub id: String,
    /// Japanese name, e.g. `調布`.
    pub name_ja: String,
    /// English name, e.g. `Chofu`.
    pub name_en: String,
    /// The station whose area it shows (exactly one of `station` and `train`).
    #[serde(default)]
    pub station: Option<String>,
    /// The train whose view ahead it shows (exactly one of `station` and `train`).
    #[serde(default)]
    pub train: Option<String>,
    /// Its source in live mode: a board of kind `camera` (an ESP32 camera board serving MJPEG) to pull from;
    /// without one, a WHIP publisher (a crew phone, OBS, GStreamer) sends it to `/whip/<id>`.
    #[serde(default)]
    pub board: Option<String>,
}

/// Size of the schematic canvas (y grows downward).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasSpec {
    /// Width in canvas units.
    pub width: f64,
    /// Height in canvas units.
    pub height: f64,
}

/// A station.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSpec {
    /// Identifier used in device names, e.g. `chofu`.
    pub id: String,
    /// Japanese name, e.g. `調布`.
    pub name_ja: String,
    /// English name, e.g. `Chofu`.
    pub name_en: String,
}

/// A platform of a station, lying on a segment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    /// Station id.
    pub station: String,
    /// Japanese label, e.g. `調布1`.
    pub name_ja: String,
    /// English label, e.g. `Chofu 1`.
    pub name_en: String,
    /// Segment the platform lies along.
    pub segment: String,
}

/// What a board does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardKind {
    /// An ESP32 that drives servos over its HTTP API.
    Servo,
    /// An ESP32 that reports hall-sensor passes.
    Sensor,
    /// A train's onboard speed controller, serving the 2021 gRPC `Speed.ControlSpeed` (2021: a Raspberry Pi
    /// on TAKAO driving the motor by PWM).
    Speed,
    /// An ESP32 camera board (2022: ESP-EYE) serving MJPEG over HTTP (`GET /mjpeg/1`).
    Camera,
    /// An ESP32 on the MQTT broker (2023 firmware): stop rails, points and block detectors, its client id
    /// `esp32-client-<name>`.
    Mqtt,
}

/// A board: an ESP32 on the layout, or a train's onboard speed controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSpec {
    /// Name used by devices and sensors.
    pub name: String,
    /// Network address (`host:port` for servo boards and speed controllers, the reporting address for sensor
    /// boards; none for an MQTT board, which is known by its name on the broker).
    #[serde(default)]
    pub address: String,
    /// Servo or sensor board.
    pub kind: BoardKind,
}

/// What a track node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Joins exactly two segment ends.
    #[default]
    Joint,
    /// A servo-driven point: trunk, straight branch, diverging branch.
    Switch,
    /// A point without servo that a spring returns to its normal branch; always trailable.
    Spring,
}

/// A branch of a switch or spring point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Branch {
    /// The straight route (switch state OFF).
    Straight,
    /// The diverging route (switch state ON).
    Diverging,
}

/// A track node with its schematic coordinates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique id.
    pub id: String,
    /// Schematic x.
    pub x: f64,
    /// Schematic y.
    pub y: f64,
    /// Joint, switch or spring point.
    #[serde(default)]
    pub kind: NodeKind,
    /// Trunk segment (switch and spring only).
    pub trunk: Option<String>,
    /// Straight-branch segment (switch and spring only).
    pub straight: Option<String>,
    /// Diverging-branch segment (switch and spring only).
    pub diverging: Option<String>,
    /// Whether a train may run through from the branch that is not set (switch only; springs always may).
    #[serde(default)]
    pub trailable: bool,
    /// Branch a spring point returns to (spring only).
    pub normal: Option<Branch>,
}

/// A track segment between two nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// Unique id.
    pub id: String,
    /// Node at offset 0.
    pub from: String,
    /// Node at offset `length_mm`.
    pub to: String,
    /// Length in millimetres.
    pub length_mm: f64,
    /// Intermediate schematic points between the two nodes, for drawing.
    #[serde(default)]
    pub points: Vec<[f64; 2]>,
}

/// Kind of servo device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A stop rail: ON raised (trains stop), OFF lowered.
    StopRail,
    /// A switch: ON diverging, OFF straight.
    Switch,
}

impl DeviceKind {
    /// `state` in words: "raised"/"lowered" for stop rails, "set diverging"/"set straight" for switches.
    pub fn words(self, state: OnOff) -> &'static str {
        match (self, state) {
            (DeviceKind::StopRail, OnOff::On) => "raised",
            (DeviceKind::StopRail, OnOff::Off) => "lowered",
            (DeviceKind::Switch, OnOff::On) => "set diverging",
            (DeviceKind::Switch, OnOff::Off) => "set straight",
        }
    }
}

/// ON or OFF, as in the 2021 protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum OnOff {
    /// Stop rail raised / switch diverging.
    #[serde(rename = "ON")]
    On,
    /// Stop rail lowered / switch straight.
    #[serde(rename = "OFF")]
    Off,
}

/// A servo-driven device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Name `<station>_<s|b><n>`.
    pub name: String,
    /// Stop rail or switch.
    pub kind: DeviceKind,
    /// Station id.
    pub station: String,
    /// Servo board name.
    pub board: String,
    /// GPIO pin on the board.
    pub pin: u32,
    /// Servo angle for ON.
    pub on_angle: u32,
    /// Servo angle for OFF.
    pub off_angle: u32,
    /// State at start-up.
    pub initial: OnOff,
    /// Id on the 2021 gRPC wire (enum `StationId`), if it had one.
    pub grpc_id: Option<u32>,
    /// Switch node driven (switch only).
    pub node: Option<String>,
    /// Segment the stop rail lies on (stop rail only).
    pub segment: Option<String>,
    /// Offset of the stop rail from the segment's `from` end, in millimetres (stop rail only).
    pub offset_mm: Option<f64>,
}

/// A hall sensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorSpec {
    /// Unique name.
    pub name: String,
    /// Segment it lies on.
    pub segment: String,
    /// Offset from the segment's `from` end, in millimetres.
    pub offset_mm: f64,
    /// Sensor board name, if the sensor was wired.
    pub board: Option<String>,
    /// Pin on the sensor board.
    pub pin: Option<u32>,
}

/// A block: a stretch of track that is occupied from the moment a train's front reaches its entry detector
/// until its last car has left past its exit detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// Unique id (2023: `<station>_<up|down>_b<n>`, named after the station a train departs from into it).
    pub id: String,
    /// The segments it covers (drawn occupied or free).
    pub segments: Vec<String>,
    /// The stop rails trains depart from into it: none of them may be lowered while it is occupied.
    #[serde(default)]
    pub stops: Vec<String>,
}

/// What a detector reports when a train presses it (its 2023 payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DetectorTarget {
    /// At a block's entry: the block is occupied.
    #[serde(rename = "CLOSE")]
    Close,
    /// At a block's exit: the block is free once the train has left it.
    #[serde(rename = "OPEN")]
    Open,
}

/// A pass detector: a micro-switch held closed while a train is over it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    /// The block it reports for.
    pub block: String,
    /// `CLOSE` (entry) or `OPEN` (exit).
    pub target: DetectorTarget,
    /// Segment it lies on.
    pub segment: String,
    /// Offset from the segment's `from` end, in millimetres.
    pub offset_mm: f64,
    /// Its MQTT board, if it is wired to one (a detector without a board exists in the simulation only).
    pub board: Option<String>,
    /// GPIO pin on the board.
    pub pin: Option<u32>,
}

/// One allowed combination of a rule group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleLineSpec {
    /// Devices that must be ON.
    #[serde(default)]
    pub on: Vec<String>,
    /// Devices that must be OFF.
    #[serde(default)]
    pub off: Vec<String>,
}

/// A rule group: a state of its devices is allowed when it matches at least one line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Group name, e.g. `chofu_kudari`.
    pub name: String,
    /// Devices the group covers.
    pub devices: Vec<String>,
    /// Allowed combinations.
    pub allowed: Vec<RuleLineSpec>,
}

/// Where a train's front starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    /// Segment of the train's front.
    pub segment: String,
    /// Offset of the front from the segment's `from` end, in millimetres.
    pub offset_mm: f64,
    /// Node the train is heading towards: the segment's `from` or `to` node.
    pub toward: String,
}

/// A train.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Name, e.g. `TAKAO`.
    pub name: String,
    /// Length in millimetres.
    pub length_mm: f64,
    /// Highest settable speed in millimetres per second.
    pub max_speed_mm_s: u32,
    /// Speed at start-up in millimetres per second.
    #[serde(default)]
    pub speed_mm_s: u32,
    /// The board (of kind `speed`) of its onboard speed controller; without one, its speed can be set only in
    /// the simulation.
    #[serde(default)]
    pub controller: Option<String>,
    /// Where the front starts.
    pub start: PlacementSpec,
    /// Its service in automatic operation [default: it calls at every station, dwelling 10 s].
    #[serde(default)]
    pub service: ServiceSpec,
}

/// A train's service pattern in automatic operation: the stations it calls at (dwells), the dwell, its branch at
/// the switches it faces. It stops at
/// every raised stop rail on its way all the same (the only way to stop a train without a speed controller); at
/// a station it does not call at it departs as soon as its route ahead is clear.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Station ids it calls at [default: every station].
    #[serde(default)]
    pub calls: Vec<String>,
    /// Dwell at a station it calls at, seconds [default: 10].
    pub dwell_s: Option<f64>,
    /// The branch it takes at a switch it faces, by switch device name, e.g. `{ sasazuka_b1 = "diverging" }`
    /// [default: at every switch the planner chooses, towards the station waiting longest]. A switch it trails
    /// is set for the branch it comes from.
    #[serde(default)]
    pub ways: std::collections::BTreeMap<String, Branch>,
}
