//! A generated layout of any size, for benchmarks: a ring of passing loops with one train per two loops.
//!
//! Each cell is a switch, a main line and a siding that meet again at a spring point, then a link to the
//! next cell with a (lowered) stop rail and a sensor. Trains start on every other link, all at one speed,
//! so they circulate for ever without meeting.

use crate::layout::spec::*;
use crate::layout::{Layout, LayoutError, SERVO_PINS};

/// Builds the ring for `trains` trains (at least one).
pub fn ring(trains: usize) -> Result<Layout, LayoutError> {
    let cells = 2 * trains.max(1);
    let per_board = SERVO_PINS.len() / 2;
    let id = |kind: &str, i: usize| format!("{kind}{i}");
    let mut spec = LayoutSpec {
        name: format!("ring-{trains}"),
        description: "generated benchmark ring".into(),
        canvas: CanvasSpec { width: 100.0 * cells as f64, height: 200.0 },
        stations: vec![StationSpec { id: "ring".into(), name_ja: "環".into(), name_en: "Ring".into() }],
        platforms: Vec::new(),
        boards: vec![BoardSpec { name: "sensors".into(), address: "127.0.0.1".into(), kind: BoardKind::Sensor }],
        nodes: Vec::new(),
        segments: Vec::new(),
        devices: Vec::new(),
        sensors: Vec::new(),
        blocks: Vec::new(),
        detectors: Vec::new(),
        rules: Vec::new(),
        trains: Vec::new(),
        cameras: Vec::new(),
    };
    let seg = |i: &str, from: String, to: String, len: f64| SegmentSpec {
        id: i.into(),
        from,
        to,
        length_mm: len,
        points: Vec::new(),
    };
    for i in 0..cells {
        let x = 100.0 * i as f64;
        let next = (i + 1) % cells;
        let board = format!("servo{}", i / per_board);
        if i % per_board == 0 {
            spec.boards.push(BoardSpec {
                name: board.clone(),
                address: format!("127.0.0.1:{}", 20000 + i / per_board),
                kind: BoardKind::Servo,
            });
        }
        let point = |kind, id: String, x: f64, trunk: String, normal| NodeSpec {
            id,
            x,
            y: 100.0,
            kind,
            trunk: Some(trunk),
            straight: Some(format!("main{i}")),
            diverging: Some(format!("side{i}")),
            trailable: false,
            normal,
        };
        spec.nodes.push(point(NodeKind::Switch, id("sw", i), x, id("link", (i + cells - 1) % cells), None));
        spec.nodes.push(point(NodeKind::Spring, id("m", i), x + 60.0, id("link", i), Some(Branch::Straight)));
        spec.segments.push(seg(&id("main", i), id("sw", i), id("m", i), 2000.0));
        spec.segments.push(seg(&id("side", i), id("sw", i), id("m", i), 2000.0));
        spec.segments.push(seg(&id("link", i), id("m", i), id("sw", next), 1000.0));
        let pins = &SERVO_PINS[2 * (i % per_board)..];
        let device = |name: String, kind, pin: u32| DeviceSpec {
            name,
            kind,
            station: "ring".into(),
            board: board.clone(),
            pin,
            on_angle: 90,
            off_angle: 0,
            initial: OnOff::Off,
            grpc_id: None,
            node: None,
            segment: None,
            offset_mm: None,
        };
        spec.devices
            .push(DeviceSpec { node: Some(id("sw", i)), ..device(format!("ring_b{i}"), DeviceKind::Switch, pins[0]) });
        spec.devices.push(DeviceSpec {
            segment: Some(id("link", i)),
            offset_mm: Some(500.0),
            ..device(format!("ring_s{i}"), DeviceKind::StopRail, pins[1])
        });
        spec.sensors.push(SensorSpec {
            name: id("sensor", i),
            segment: id("main", i),
            offset_mm: 1000.0,
            board: None,
            pin: None,
        });
        if i % 2 == 0 {
            spec.trains.push(TrainSpec {
                name: id("T", i / 2),
                length_mm: 450.0,
                max_speed_mm_s: 300,
                speed_mm_s: 200,
                controller: None,
                start: PlacementSpec { segment: id("link", i), offset_mm: 900.0, toward: id("sw", next) },
                service: Default::default(),
            });
        }
    }
    Layout::from_spec(&spec)
}
