//! The frames read back as written, in the protocols' words and bytes (the 2021 page's, the v2 page's).

use serde_json::{Value, json};
use sim::layout::{DeviceKind, OnOff};
use sim::twin::{Mode, TrainStatus};

use crate::{v2, v2021};

fn value(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

#[test]
fn the_2021_frames_are_the_2021_page_s_bytes() {
    let frame = v2021::ServerFrame::device("chofu_b1", OnOff::On).encode();
    assert_eq!(frame, r#"{"station_name":"chofu_b1","state":"ON"}"#);
    assert_eq!(v2021::ServerFrame::error("no").encode(), r#"{"error":"no"}"#);
    assert_eq!(v2021::ServerFrame::decode(&frame), Ok(v2021::ServerFrame::device("chofu_b1", OnOff::On)));
    let speed = v2021::ClientFrame::Speed(v2021::SpeedFrame { train_name: "TAKAO".into(), speed: 5 });
    assert_eq!(value(&speed.encode()), json!({ "train_name": "TAKAO", "speed": 5 }));
    assert_eq!(v2021::ClientFrame::decode(&speed.encode()), Ok(speed));
}

#[test]
fn every_v2_frame_reads_back_as_written_in_the_protocol_s_words() {
    let train = v2::Train {
        name: "TAKAO".into(),
        segment: "main".into(),
        offset_mm: 12.5,
        x: 1.0,
        y: 2.0,
        speed_mm_s: 300,
        status: TrainStatus::Derailed,
        speed: Some(100),
        label: Some([1.0, -10.0]),
    };
    let board = v2::Board {
        name: "servo-107".into(),
        address: "127.0.0.1:1".into(),
        alive: true,
        restoring: false,
        unknown: false,
    };
    let plan = v2::Plan {
        train: "TAKAO".into(),
        automatic: true,
        next_stop: Some("chofu_s1".into()),
        waiting: Some("dwell, 4 s left".into()),
        calls: 3,
    };
    let frames = [
        v2::ServerFrame::Ack { id: 1, detail: None },
        v2::ServerFrame::Rejected { id: 2, rule: "station".into(), reason: "r".into() },
        v2::ServerFrame::Failed { id: 3, reason: "f".into() },
        v2::ServerFrame::Denied { id: 4, reason: "d".into() },
        v2::ServerFrame::Error { id: None, reason: "e".into() },
        v2::ServerFrame::Snapshot(v2::State {
            mode: Mode::Live,
            operation: sim::auto::Operation::Mixed,
            plans: vec![plan.clone()],
            time_ms: 5,
            devices: vec![v2::Device { name: "chofu_b1".into(), kind: Some(DeviceKind::Switch), state: None }],
            trains: vec![train.clone()],
            boards: vec![board.clone()],
            blocks: vec![v2::Block { id: "chofu_up_b1".into(), occupied: true, detectors: None }],
            online: false,
        }),
        v2::ServerFrame::Block(v2::Block { id: "chofu_up_b1".into(), occupied: false, detectors: None }),
        v2::ServerFrame::Device(v2::Device { name: "chofu_b1".into(), kind: None, state: Some(OnOff::Off) }),
        v2::ServerFrame::Trains { trains: vec![train] },
        v2::ServerFrame::Board(board),
        v2::ServerFrame::Mode { mode: Mode::Sim },
        v2::ServerFrame::Operation { operation: sim::auto::Operation::Auto },
        v2::ServerFrame::Plans { plans: vec![plan.clone()] },
        v2::ServerFrame::Online { online: false },
        v2::ServerFrame::Speed { train: "TAKAO".into(), speed: 55 },
        v2::ServerFrame::Event(v2::Event {
            kind: v2::EventKind::Sensor,
            text: "t".into(),
            sensor: Some("shinjuku".into()),
            train: Some("TAKAO".into()),
        }),
    ];
    for frame in frames {
        assert_eq!(v2::ServerFrame::decode(&frame.encode()), Ok(frame.clone()));
    }
    // The words, as the page reads them.
    let snapshot = value(&v2::ServerFrame::Mode { mode: Mode::Live }.encode());
    assert_eq!(snapshot, json!({ "type": "mode", "mode": "live" }));
    let device = v2::ServerFrame::Device(v2::Device { name: "a".into(), kind: None, state: Some(OnOff::On) });
    assert_eq!(value(&device.encode()), json!({ "type": "device", "name": "a", "state": "ON" }));
    assert_eq!(crate::word(&TrainStatus::Derailed), "derailed");
    let speed = v2::ServerFrame::Speed { train: "TAKAO".into(), speed: 55 };
    assert_eq!(value(&speed.encode()), json!({ "type": "speed", "train": "TAKAO", "speed": 55 }));
    let operation = v2::ServerFrame::Operation { operation: sim::auto::Operation::Mixed };
    assert_eq!(value(&operation.encode()), json!({ "type": "operation", "operation": "mixed" }));
    let plans = v2::ServerFrame::Plans { plans: vec![plan] };
    assert_eq!(
        value(&plans.encode()),
        json!({ "type": "plans", "plans": [
            { "train": "TAKAO", "automatic": true, "next_stop": "chofu_s1", "waiting": "dwell, 4 s left", "calls": 3 }
        ] })
    );
    let block = v2::ServerFrame::Block(v2::Block { id: "chofu_up_b1".into(), occupied: true, detectors: None });
    assert_eq!(value(&block.encode()), json!({ "type": "block", "id": "chofu_up_b1", "occupied": true }));
    let command = v2::ClientFrame { id: 8, command: v2::Command::Snapshot {} };
    assert_eq!(value(&command.encode()), json!({ "id": 8, "cmd": "snapshot" }));
    assert_eq!(v2::ClientFrame::decode(&command.encode()), (Some(8), Ok(v2::Command::Snapshot {})));
}
