//! Validation: turns a [`LayoutSpec`] into a [`Layout`], or names the first offending entry.

use std::collections::HashMap;

use super::model::*;
use super::spec::*;

/// GPIO pins of the ESP32 servo boards that can drive a servo (the 2021 firmware's list).
pub const SERVO_PINS: [u32; 16] = [4, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 32, 33];

/// Why a layout file is not usable. Every variant names the offending entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    /// The file is not valid TOML or does not have the layout's shape.
    #[error("layout file is malformed: {0}")]
    Malformed(String),
    /// Two entries of one kind share a name.
    #[error("duplicate {kind} `{name}`")]
    Duplicate {
        /// Kind of entry.
        kind: &'static str,
        /// The shared name.
        name: String,
    },
    /// An entry refers to something that does not exist.
    #[error("{entry}: unknown {kind} `{name}`")]
    UnknownReference {
        /// The referring entry.
        entry: String,
        /// Kind of the missing thing.
        kind: &'static str,
        /// The missing name.
        name: String,
    },
    /// A node does not join the number of segment ends its kind needs.
    #[error("node `{node}`: {found} segment end(s) attached, a {kind} needs {needed} (dangling segment end)")]
    DanglingEnd {
        /// The node.
        node: String,
        /// Its kind.
        kind: &'static str,
        /// Ends attached.
        found: usize,
        /// Ends needed.
        needed: usize,
    },
    /// A switch or spring point lacks one of its three segments.
    #[error("{kind} `{node}`: {branch} segment missing")]
    BranchMissing {
        /// Switch or spring.
        kind: &'static str,
        /// The node.
        node: String,
        /// trunk, straight or diverging.
        branch: &'static str,
    },
    /// One pin used twice on one board.
    #[error("board `{board}`: pin {pin} used by both `{first}` and `{second}`")]
    PinUsedTwice {
        /// Board name.
        board: String,
        /// The pin.
        pin: u32,
        /// First user.
        first: String,
        /// Second user.
        second: String,
    },
    /// A servo device on a pin that cannot drive a servo.
    #[error("device `{device}`: pin {pin} is not a servo pin (servo pins: {SERVO_PINS:?})")]
    NotServoPin {
        /// The device.
        device: String,
        /// The pin.
        pin: u32,
    },
    /// A servo angle outside 0..359.
    #[error("device `{device}`: {which} angle {angle} is out of range 0..359")]
    AngleOutOfRange {
        /// The device.
        device: String,
        /// `ON` or `OFF`.
        which: &'static str,
        /// The angle.
        angle: u32,
    },
    /// Any other inconsistency in one entry.
    #[error("{entry}: {problem}")]
    Invalid {
        /// The entry.
        entry: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(entry: impl Into<String>, problem: impl Into<String>) -> LayoutError {
    LayoutError::Invalid { entry: entry.into(), problem: problem.into() }
}

/// Builds a name -> index map, refusing duplicates.
fn index<'a>(kind: &'static str, names: impl Iterator<Item = &'a str>) -> Result<HashMap<String, usize>, LayoutError> {
    let mut map = HashMap::new();
    for (i, name) in names.enumerate() {
        if map.insert(name.to_string(), i).is_some() {
            return Err(LayoutError::Duplicate { kind, name: name.to_string() });
        }
    }
    Ok(map)
}

fn lookup(map: &HashMap<String, usize>, entry: &str, kind: &'static str, name: &str) -> Result<usize, LayoutError> {
    map.get(name).copied().ok_or_else(|| LayoutError::UnknownReference {
        entry: entry.to_string(),
        kind,
        name: name.to_string(),
    })
}

fn check_offset(entry: &str, offset: f64, seg: &Segment) -> Result<(), LayoutError> {
    if !(0.0..=seg.length).contains(&offset) {
        return Err(invalid(
            entry,
            format!("offset {offset} mm is outside segment `{}` (0..{} mm)", seg.id, seg.length),
        ));
    }
    Ok(())
}

impl Layout {
    /// Parses and validates a layout from TOML text.
    pub fn from_toml(text: &str) -> Result<Layout, LayoutError> {
        let spec: LayoutSpec = toml::from_str(text).map_err(|e| LayoutError::Malformed(e.to_string()))?;
        Layout::from_spec(&spec)
    }

    /// Reads, parses and validates a layout file.
    pub fn load(path: &std::path::Path) -> Result<Layout, LayoutError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LayoutError::Malformed(format!("cannot read {}: {e}", path.display())))?;
        Layout::from_toml(&text)
    }

    /// Validates a parsed layout.
    pub fn from_spec(spec: &LayoutSpec) -> Result<Layout, LayoutError> {
        let station_ix = index("station", spec.stations.iter().map(|s| s.id.as_str()))?;
        let board_ix = index("board", spec.boards.iter().map(|b| b.name.as_str()))?;
        let node_ix = index("node", spec.nodes.iter().map(|n| n.id.as_str()))?;
        let seg_ix = index("segment", spec.segments.iter().map(|s| s.id.as_str()))?;
        let device_ix = index("device", spec.devices.iter().map(|d| d.name.as_str()))?;
        let sensor_ix = index("sensor", spec.sensors.iter().map(|s| s.name.as_str()))?;
        let train_ix = index("train", spec.trains.iter().map(|t| t.name.as_str()))?;
        index("rule group", spec.rules.iter().map(|r| r.name.as_str()))?;

        let segments = build_segments(spec, &node_ix)?;
        let nodes = build_nodes(spec, &segments, &seg_ix, &device_ix)?;
        let devices = build_devices(spec, &segments, &nodes, &station_ix, &board_ix, &seg_ix, &node_ix)?;
        let sensors = build_sensors(spec, &segments, &board_ix, &seg_ix)?;
        let block_ix = index("block", spec.blocks.iter().map(|b| b.id.as_str()))?;
        let blocks = build_blocks(spec, &devices, &seg_ix, &device_ix)?;
        let detectors = build_detectors(spec, &segments, &board_ix, &seg_ix, &block_ix)?;
        check_pins(spec, &devices, &sensors, &detectors)?;

        let platforms = spec
            .platforms
            .iter()
            .map(|p| {
                let entry = format!("platform `{}`", p.name_en);
                Ok(Platform {
                    station: lookup(&station_ix, &entry, "station", &p.station)?,
                    name_ja: p.name_ja.clone(),
                    name_en: p.name_en.clone(),
                    seg: lookup(&seg_ix, &entry, "segment", &p.segment)?,
                })
            })
            .collect::<Result<Vec<_>, LayoutError>>()?;

        let rules = spec.rules.iter().map(|r| build_rule(r, &device_ix)).collect::<Result<Vec<_>, LayoutError>>()?;

        let trains = spec
            .trains
            .iter()
            .map(|t| {
                let train = build_train(t, &segments, &seg_ix, &node_ix, spec, &board_ix, &station_ix)?;
                Ok(Train { ways: build_ways(t, spec, &device_ix)?, ..train })
            })
            .collect::<Result<Vec<_>, LayoutError>>()?;

        index("camera", spec.cameras.iter().map(|c| c.id.as_str()))?;
        let cameras = spec
            .cameras
            .iter()
            .map(|c| build_camera(c, spec, &station_ix, &train_ix, &board_ix))
            .collect::<Result<Vec<_>, LayoutError>>()?;

        let track_length = segments.iter().map(|s| s.length).sum();
        let stop_rails = devices.iter().enumerate().filter_map(|(id, d)| match d.place {
            DevicePlace::StopRail { seg, offset } => Some((seg, (id, offset))),
            DevicePlace::Switch { .. } => None,
        });
        let stop_rail_index = on_segments(segments.len(), stop_rails);
        let sensor_index_by_seg =
            on_segments(segments.len(), sensors.iter().enumerate().map(|(id, s)| (s.seg, (id, s.offset))));
        Ok(Layout {
            name: spec.name.clone(),
            description: spec.description.clone(),
            canvas: spec.canvas,
            stations: spec
                .stations
                .iter()
                .map(|s| Station { id: s.id.clone(), name_ja: s.name_ja.clone(), name_en: s.name_en.clone() })
                .collect(),
            platforms,
            boards: spec
                .boards
                .iter()
                .map(|b| Board { name: b.name.clone(), address: b.address.clone(), kind: b.kind })
                .collect(),
            nodes,
            segments,
            track_length,
            stop_rail_index,
            sensor_index_by_seg,
            devices,
            sensors,
            blocks,
            detectors,
            rules,
            trains,
            cameras,
            device_index: device_ix,
            train_index: train_ix,
            sensor_index: sensor_ix,
            segment_index: seg_ix,
            block_index: block_ix,
        })
    }
}

/// What lies on each segment (`items` as (segment, item)), by segment, in the items' order.
fn on_segments<T>(segments: usize, items: impl Iterator<Item = (SegId, T)>) -> Vec<Vec<T>> {
    let mut on = Vec::new();
    on.resize_with(segments, Vec::new);
    for (seg, item) in items {
        on[seg].push(item);
    }
    on
}

fn build_segments(spec: &LayoutSpec, node_ix: &HashMap<String, usize>) -> Result<Vec<Segment>, LayoutError> {
    spec.segments
        .iter()
        .map(|s| {
            let entry = format!("segment `{}`", s.id);
            let from = lookup(node_ix, &entry, "node", &s.from)?;
            let to = lookup(node_ix, &entry, "node", &s.to)?;
            if from == to {
                return Err(invalid(&entry, "starts and ends at the same node; split it with a joint"));
            }
            if !(s.length_mm.is_finite() && s.length_mm > 0.0) {
                return Err(invalid(&entry, format!("length {} mm must be positive", s.length_mm)));
            }
            Ok(Segment { id: s.id.clone(), from, to, length: s.length_mm, points: s.points.clone() })
        })
        .collect()
}

fn build_nodes(
    spec: &LayoutSpec,
    segments: &[Segment],
    seg_ix: &HashMap<String, usize>,
    device_ix: &HashMap<String, usize>,
) -> Result<Vec<Node>, LayoutError> {
    // Every segment end attached to each node.
    let mut attached: Vec<Vec<Port>> = vec![Vec::new(); spec.nodes.len()];
    for (seg, s) in segments.iter().enumerate() {
        attached[s.from].push(Port { seg, end: End::From });
        attached[s.to].push(Port { seg, end: End::To });
    }
    spec.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ports = &attached[i];
            let kind_name = match n.kind {
                NodeKind::Joint => "joint",
                NodeKind::Switch => "switch",
                NodeKind::Spring => "spring",
            };
            let needed = if n.kind == NodeKind::Joint { 2 } else { 3 };
            if ports.len() != needed {
                return Err(LayoutError::DanglingEnd {
                    node: n.id.clone(),
                    kind: kind_name,
                    found: ports.len(),
                    needed,
                });
            }
            let role = if n.kind == NodeKind::Joint {
                NodeRole::Joint([ports[0], ports[1]])
            } else {
                let entry = format!("{kind_name} `{}`", n.id);
                let port =
                    |branch: &'static str, name: &Option<String>| -> Result<Port, LayoutError> {
                        let name = name.as_ref().ok_or_else(|| LayoutError::BranchMissing {
                            kind: kind_name,
                            node: n.id.clone(),
                            branch,
                        })?;
                        let seg = lookup(seg_ix, &entry, "segment", name)?;
                        ports.iter().copied().find(|p| p.seg == seg).ok_or_else(|| {
                            invalid(&entry, format!("{branch} segment `{name}` does not end at this node"))
                        })
                    };
                let trunk = port("trunk", &n.trunk)?;
                let straight = port("straight", &n.straight)?;
                let diverging = port("diverging", &n.diverging)?;
                if trunk.seg == straight.seg || trunk.seg == diverging.seg || straight.seg == diverging.seg {
                    return Err(invalid(&entry, "trunk, straight and diverging must be three different segments"));
                }
                let kind = match n.kind {
                    NodeKind::Spring => PointKind::Spring {
                        normal: n.normal.ok_or_else(|| invalid(&entry, "spring point needs `normal`"))?,
                    },
                    _ => {
                        let drivers: Vec<usize> = spec
                            .devices
                            .iter()
                            .filter(|d| d.node.as_deref() == Some(n.id.as_str()))
                            .filter_map(|d| device_ix.get(&d.name).copied())
                            .collect();
                        match drivers.as_slice() {
                            [device] => PointKind::Switch { device: *device, trailable: n.trailable },
                            [] => return Err(invalid(&entry, "no switch device drives it")),
                            _ => return Err(invalid(&entry, "driven by more than one device")),
                        }
                    }
                };
                NodeRole::Point { trunk, straight, diverging, kind }
            };
            Ok(Node { id: n.id.clone(), x: n.x, y: n.y, role })
        })
        .collect()
}

fn build_devices(
    spec: &LayoutSpec,
    segments: &[Segment],
    nodes: &[Node],
    station_ix: &HashMap<String, usize>,
    board_ix: &HashMap<String, usize>,
    seg_ix: &HashMap<String, usize>,
    node_ix: &HashMap<String, usize>,
) -> Result<Vec<Device>, LayoutError> {
    spec.devices
        .iter()
        .map(|d| {
            let entry = format!("device `{}`", d.name);
            let station = lookup(station_ix, &entry, "station", &d.station)?;
            let board = lookup(board_ix, &entry, "board", &d.board)?;
            if !matches!(spec.boards[board].kind, BoardKind::Servo | BoardKind::Mqtt) {
                return Err(invalid(&entry, format!("board `{}` is not a servo board or an MQTT board", d.board)));
            }
            if !SERVO_PINS.contains(&d.pin) {
                return Err(LayoutError::NotServoPin { device: d.name.clone(), pin: d.pin });
            }
            for (which, angle) in [("ON", d.on_angle), ("OFF", d.off_angle)] {
                if angle > 359 {
                    return Err(LayoutError::AngleOutOfRange { device: d.name.clone(), which, angle });
                }
            }
            if d.on_angle == d.off_angle {
                return Err(invalid(&entry, "ON and OFF angles are equal"));
            }
            let place = match d.kind {
                DeviceKind::Switch => {
                    let name = d.node.as_ref().ok_or_else(|| invalid(&entry, "a switch needs `node`"))?;
                    let node = lookup(node_ix, &entry, "node", name)?;
                    if !matches!(nodes[node].role, NodeRole::Point { kind: PointKind::Switch { .. }, .. }) {
                        return Err(invalid(&entry, format!("node `{name}` is not a switch node")));
                    }
                    DevicePlace::Switch { node }
                }
                DeviceKind::StopRail => {
                    let name = d.segment.as_ref().ok_or_else(|| invalid(&entry, "a stop rail needs `segment`"))?;
                    let seg = lookup(seg_ix, &entry, "segment", name)?;
                    let offset = d.offset_mm.ok_or_else(|| invalid(&entry, "a stop rail needs `offset_mm`"))?;
                    check_offset(&entry, offset, &segments[seg])?;
                    DevicePlace::StopRail { seg, offset }
                }
            };
            Ok(Device {
                name: d.name.clone(),
                kind: d.kind,
                station,
                board,
                pin: d.pin,
                on_angle: d.on_angle,
                off_angle: d.off_angle,
                initial: d.initial,
                grpc_id: d.grpc_id,
                place,
            })
        })
        .collect()
}

fn build_sensors(
    spec: &LayoutSpec,
    segments: &[Segment],
    board_ix: &HashMap<String, usize>,
    seg_ix: &HashMap<String, usize>,
) -> Result<Vec<Sensor>, LayoutError> {
    spec.sensors
        .iter()
        .map(|s| {
            let entry = format!("sensor `{}`", s.name);
            let seg = lookup(seg_ix, &entry, "segment", &s.segment)?;
            check_offset(&entry, s.offset_mm, &segments[seg])?;
            let wiring =
                wiring(spec, board_ix, &entry, (s.board.as_deref(), s.pin), BoardKind::Sensor, "a sensor board")?;
            Ok(Sensor { name: s.name.clone(), seg, offset: s.offset_mm, wiring })
        })
        .collect()
}

fn build_blocks(
    spec: &LayoutSpec,
    devices: &[Device],
    seg_ix: &HashMap<String, usize>,
    device_ix: &HashMap<String, usize>,
) -> Result<Vec<Block>, LayoutError> {
    spec.blocks
        .iter()
        .map(|b| {
            let entry = format!("block `{}`", b.id);
            if b.segments.is_empty() {
                return Err(invalid(&entry, "a block covers at least one segment"));
            }
            let segs = b.segments.iter().map(|s| lookup(seg_ix, &entry, "segment", s)).collect::<Result<_, _>>()?;
            let stops = b
                .stops
                .iter()
                .map(|name| {
                    let d = lookup(device_ix, &entry, "device", name)?;
                    match devices[d].kind {
                        DeviceKind::StopRail => Ok(d),
                        DeviceKind::Switch => Err(invalid(&entry, format!("`{name}` is not a stop rail"))),
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(Block { id: b.id.clone(), segs, stops })
        })
        .collect()
}

fn build_detectors(
    spec: &LayoutSpec,
    segments: &[Segment],
    board_ix: &HashMap<String, usize>,
    seg_ix: &HashMap<String, usize>,
    block_ix: &HashMap<String, usize>,
) -> Result<Vec<Detector>, LayoutError> {
    let detectors = spec
        .detectors
        .iter()
        .map(|d| {
            let word = match d.target {
                DetectorTarget::Close => "CLOSE",
                DetectorTarget::Open => "OPEN",
            };
            let entry = format!("{word} detector of block `{}`", d.block);
            let block = lookup(block_ix, &entry, "block", &d.block)?;
            let seg = lookup(seg_ix, &entry, "segment", &d.segment)?;
            check_offset(&entry, d.offset_mm, &segments[seg])?;
            let wiring = wiring(spec, board_ix, &entry, (d.board.as_deref(), d.pin), BoardKind::Mqtt, "an MQTT board")?;
            Ok(Detector { block, target: d.target, seg, offset: d.offset_mm, wiring })
        })
        .collect::<Result<Vec<_>, LayoutError>>()?;
    for (id, b) in spec.blocks.iter().enumerate() {
        for target in [DetectorTarget::Close, DetectorTarget::Open] {
            if !detectors.iter().any(|d| d.block == id && d.target == target) {
                let word = if target == DetectorTarget::Close { "CLOSE (entry)" } else { "OPEN (exit)" };
                let entry = format!("block `{}`", b.id);
                return Err(invalid(&entry, format!("no {word} detector")));
            }
        }
    }
    Ok(detectors)
}

fn check_pins(
    spec: &LayoutSpec,
    devices: &[Device],
    sensors: &[Sensor],
    detectors: &[Detector],
) -> Result<(), LayoutError> {
    let mut used: HashMap<(usize, u32), String> = HashMap::new();
    let users = devices
        .iter()
        .map(|d| ((d.board, d.pin), d.name.clone()))
        .chain(sensors.iter().filter_map(|s| s.wiring.map(|w| (w, s.name.clone()))))
        .chain(detectors.iter().filter_map(|d| {
            d.wiring.map(|w| (w, format!("{:?} detector of `{}`", d.target, spec.blocks[d.block].id)))
        }));
    for (key, name) in users {
        if let Some(first) = used.insert(key, name.clone()) {
            return Err(LayoutError::PinUsedTwice {
                board: spec.boards[key.0].name.clone(),
                pin: key.1,
                first,
                second: name,
            });
        }
    }
    Ok(())
}

fn build_rule(r: &RuleSpec, device_ix: &HashMap<String, usize>) -> Result<RuleGroup, LayoutError> {
    let entry = format!("rule group `{}`", r.name);
    let resolve = |names: &[String]| -> Result<Vec<usize>, LayoutError> {
        names.iter().map(|n| lookup(device_ix, &entry, "device", n)).collect()
    };
    let devices = resolve(&r.devices)?;
    if r.allowed.is_empty() {
        return Err(invalid(&entry, "no allowed line"));
    }
    let allowed = r
        .allowed
        .iter()
        .map(|line| {
            let on = resolve(&line.on)?;
            let off = resolve(&line.off)?;
            if let Some(d) = on.iter().chain(&off).find(|d| !devices.contains(d)) {
                return Err(invalid(&entry, format!("a line names a device the group does not cover (#{d})")));
            }
            Ok(RuleLine { on, off })
        })
        .collect::<Result<Vec<_>, LayoutError>>()?;
    Ok(RuleGroup { name: r.name.clone(), devices, allowed })
}

/// The board an entry names, if it names one, checked to be of `kind` (`what` in words for the error).
fn board_of_kind(
    spec: &LayoutSpec,
    board_ix: &HashMap<String, usize>,
    entry: &str,
    name: Option<&str>,
    kind: BoardKind,
    what: &str,
) -> Result<Option<BoardId>, LayoutError> {
    let Some(name) = name else { return Ok(None) };
    let board = lookup(board_ix, entry, "board", name)?;
    if spec.boards[board].kind != kind {
        let word = match kind {
            BoardKind::Servo => "servo",
            BoardKind::Sensor => "sensor",
            BoardKind::Speed => "speed",
            BoardKind::Camera => "camera",
            BoardKind::Mqtt => "mqtt",
        };
        return Err(invalid(entry, format!("board `{name}` is not {what} (kind = \"{word}\")")));
    }
    Ok(Some(board))
}

/// Where an entry is wired: a board of `kind` (`what` in words) and a pin, given together, or neither.
fn wiring(
    spec: &LayoutSpec,
    board_ix: &HashMap<String, usize>,
    entry: &str,
    (board, pin): (Option<&str>, Option<u32>),
    kind: BoardKind,
    what: &str,
) -> Result<Option<(BoardId, u32)>, LayoutError> {
    match (board, pin) {
        (Some(_), Some(pin)) => Ok(board_of_kind(spec, board_ix, entry, board, kind, what)?.map(|b| (b, pin))),
        (None, None) => Ok(None),
        _ => Err(invalid(entry, "`board` and `pin` go together")),
    }
}

fn build_camera(
    c: &CameraSpec,
    spec: &LayoutSpec,
    station_ix: &HashMap<String, usize>,
    train_ix: &HashMap<String, usize>,
    board_ix: &HashMap<String, usize>,
) -> Result<Camera, LayoutError> {
    let entry = format!("camera `{}`", c.id);
    if c.id.is_empty() || !c.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(invalid(&entry, "an id is letters, digits, `-` and `_` (it is part of a URL)"));
    }
    let view = match (&c.station, &c.train) {
        (Some(s), None) => CameraView::Station(lookup(station_ix, &entry, "station", s)?),
        (None, Some(t)) => CameraView::Ahead(lookup(train_ix, &entry, "train", t)?),
        _ => return Err(invalid(&entry, "name exactly one of `station` (its area) and `train` (the view ahead)")),
    };
    let board = board_of_kind(spec, board_ix, &entry, c.board.as_deref(), BoardKind::Camera, "a camera board")?;
    Ok(Camera { id: c.id.clone(), name_ja: c.name_ja.clone(), name_en: c.name_en.clone(), view, board })
}

fn build_train(
    t: &TrainSpec,
    segments: &[Segment],
    seg_ix: &HashMap<String, usize>,
    node_ix: &HashMap<String, usize>,
    spec: &LayoutSpec,
    board_ix: &HashMap<String, usize>,
    station_ix: &HashMap<String, usize>,
) -> Result<Train, LayoutError> {
    let entry = format!("train `{}`", t.name);
    let calls = t.service.calls.iter().map(|c| lookup(station_ix, &entry, "station", c)).collect::<Result<_, _>>()?;
    let dwell_s = t.service.dwell_s.unwrap_or(DEFAULT_DWELL_S);
    if !(dwell_s.is_finite() && (0.0..=3600.0).contains(&dwell_s)) {
        return Err(invalid(&entry, format!("dwell {dwell_s} s must be within 0..3600")));
    }
    let controller =
        board_of_kind(spec, board_ix, &entry, t.controller.as_deref(), BoardKind::Speed, "a speed controller")?;
    let seg = lookup(seg_ix, &entry, "segment", &t.start.segment)?;
    let toward = lookup(node_ix, &entry, "node", &t.start.toward)?;
    let s = &segments[seg];
    let dir = if toward == s.to {
        Dir::Forward
    } else if toward == s.from {
        Dir::Backward
    } else {
        return Err(invalid(&entry, format!("`toward` node `{}` is not an end of `{}`", t.start.toward, s.id)));
    };
    check_offset(&entry, t.start.offset_mm, s)?;
    if !(t.length_mm.is_finite() && t.length_mm > 0.0) {
        return Err(invalid(&entry, "length must be positive"));
    }
    if t.speed_mm_s > t.max_speed_mm_s {
        return Err(invalid(&entry, format!("speed {} exceeds max {}", t.speed_mm_s, t.max_speed_mm_s)));
    }
    Ok(Train {
        name: t.name.clone(),
        length: t.length_mm,
        max_speed: t.max_speed_mm_s,
        speed: t.speed_mm_s,
        controller,
        start: Placement { seg, offset: t.start.offset_mm, dir },
        calls,
        dwell_ms: (dwell_s * 1000.0).round() as u64,
        ways: Vec::new(),
    })
}

/// The switches whose branch a train's service fixes, each a switch device.
fn build_ways(
    t: &TrainSpec,
    spec: &LayoutSpec,
    device_ix: &HashMap<String, usize>,
) -> Result<Vec<(DeviceId, OnOff)>, LayoutError> {
    let entry = format!("train `{}`", t.name);
    let mut ways = Vec::new();
    for (name, branch) in &t.service.ways {
        let device = lookup(device_ix, &entry, "device", name)?;
        if spec.devices[device].kind != DeviceKind::Switch {
            return Err(invalid(&entry, format!("its way at `{name}`: `{name}` is not a switch")));
        }
        ways.push((device, if *branch == Branch::Diverging { OnOff::On } else { OnOff::Off }));
    }
    Ok(ways)
}
