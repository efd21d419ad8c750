//! The wire frames and each protocol's logic as plain functions, without sockets: what a client frame asks,
//! what a client is told, and that every frame reads back as written.

use gateway::link::Operated;
use gateway::step::Step;
use gateway::{protocol_2021, protocol_v2};
use hil::track::{Failure, Outcome};
use serde_json::{Value, json};
use sim::interlocking::{RejectKind, Rejection, Request};
use sim::layout::{DeviceKind, OnOff};
use sim::twin::Mode;
use sim::twin::TrainStatus;
use wire::{v2, v2021};

use crate::support::layout_2021;

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
fn a_2021_client_frame_becomes_a_track_request_or_an_error_frame() {
    let layout = layout_2021();
    let chofu_b1 = layout.device_id("chofu_b1").unwrap();
    assert_eq!(
        protocol_2021::read(&layout, r#"{"station_name": "chofu_b1", "state": "OFF"}"#),
        Step::Track { id: None, request: Request::Device { device: chofu_b1, state: OnOff::Off } }
    );
    let takao = layout.train_id("TAKAO").unwrap();
    // The 2021 page's slider: 0..100 in steps of 5, negative with the reverse handle (the interlocking decides).
    for speed in [0, 5, 50, 100, -50] {
        assert_eq!(
            protocol_2021::read(&layout, &format!(r#"{{"train_name": "TAKAO", "speed": {speed}}}"#)),
            Step::Track { id: None, request: Request::Speed { train: takao, speed } }
        );
    }
    for (bad, says) in [
        (r#"{"station_name": "chofu_b1", "state": "UP"}"#, "unknown state UP (ON or OFF)"),
        (r#"{"station_name": "nowhere", "state": "ON"}"#, "unknown device nowhere"),
        (r#"{"station_name": "chofu_b1", "state": "ON", "x": 1}"#, "bad device frame"),
        (r#"{"train_name": "TAKAO", "speed": 101}"#, "speed 101 is out of range -100..100"),
        (r#"{"train_name": "TAKAO", "speed": -105}"#, "speed -105 is out of range -100..100"),
        (r#"{"train_name": "TAKAO", "speed": 99999999999}"#, "out of range"),
        (r#"{"train_name": "TAKAO", "speed": 1.5}"#, "bad speed frame"),
        (r#"{"train_name": "TAKAO", "speed": "50"}"#, "bad speed frame"),
        (r#"{"train_name": "THOMAS", "speed": 50}"#, "unknown train THOMAS"),
        ("[1]", "a frame needs station_name and state, or train_name and speed"),
        ("{", "not a JSON frame"),
    ] {
        let Step::Reply(frame) = protocol_2021::read(&layout, bad) else { panic!("{bad} is no command") };
        let error = value(&frame)["error"].as_str().map(str::to_string).unwrap_or_default();
        assert!(error.contains(says), "{bad}: {frame}");
    }
}

/// The 2021 speed protocol's frames, as in the facts: `{"train_name", "speed"}` both ways, and only speed frames
/// on `/speed`.
#[test]
fn the_2021_speed_frames_read_and_write_as_the_2021_page_sends_them() {
    let layout = layout_2021();
    let takao = layout.train_id("TAKAO").unwrap();
    assert_eq!(
        protocol_2021::read_speed(&layout, r#"{"train_name":"TAKAO","speed":35}"#),
        Step::Track { id: None, request: Request::Speed { train: takao, speed: 35 } }
    );
    assert_eq!(
        value(&wire::v2021::ServerFrame::speed("TAKAO", 35).encode()),
        json!({"train_name": "TAKAO", "speed": 35})
    );
    assert_eq!(
        wire::v2021::ServerFrame::decode(r#"{"train_name":"TAKAO","speed":35}"#),
        Ok(wire::v2021::ServerFrame::speed("TAKAO", 35))
    );
    let Step::Reply(frame) = protocol_2021::read_speed(&layout, r#"{"station_name":"chofu_b1","state":"ON"}"#) else {
        panic!("a device frame on /speed is no command")
    };
    assert!(value(&frame)["error"].as_str().unwrap().contains("/speed socket takes speed frames"));
}

#[test]
fn a_2021_client_hears_of_a_command_only_when_it_was_not_carried_out() {
    assert_eq!(protocol_2021::answer(&Outcome::Applied), None);
    let refusal = Rejection { kind: RejectKind::Unknown, message: "no such thing".into() };
    assert_eq!(protocol_2021::answer(&Outcome::Rejected(refusal)), Some(r#"{"error":"no such thing"}"#.into()));
    let down = Outcome::Failed(Failure::BoardDown { board: "servo-107".into() });
    assert_eq!(protocol_2021::answer(&down), Some(r#"{"error":"board servo-107 is not answering"}"#.into()));
}

#[test]
fn a_v2_client_frame_becomes_a_step_with_its_id() {
    let layout = layout_2021();
    let chofu_b1 = layout.device_id("chofu_b1").unwrap();
    assert_eq!(
        protocol_v2::read(&layout, r#"{"id": 4, "cmd": "device", "name": "chofu_b1", "state": "ON"}"#),
        Step::Track { id: Some(4), request: Request::Device { device: chofu_b1, state: OnOff::On } }
    );
    assert_eq!(
        protocol_v2::read(&layout, r#"{"id": 5, "cmd": "speed", "train": "TAKAO", "speed": 45}"#),
        Step::Track { id: Some(5), request: Request::Speed { train: 0, speed: 45 } }
    );
    assert_eq!(protocol_v2::read(&layout, r#"{"id": 6, "cmd": "snapshot"}"#), Step::Snapshot);
    assert_eq!(
        protocol_v2::read(&layout, r#"{"id": 7, "cmd": "operator", "token": "t", "action": "live_force"}"#),
        Step::Operator { id: 7, token: "t".into(), action: v2::OperatorAction::LiveForce }
    );
    for (bad, id, says) in [
        (r#"{"cmd": "snapshot"}"#, None, "a command needs an id"),
        (r#"{"id": 1, "cmd": "device", "name": "nowhere", "state": "ON"}"#, Some(1), "unknown device nowhere"),
        (r#"{"id": 2, "cmd": "speed", "train": "THOMAS", "speed": 1}"#, Some(2), "unknown train THOMAS"),
        (r#"{"id": 3, "cmd": "speed", "train": "TAKAO", "speed_mm_s": 1}"#, Some(3), "not a command"),
        (r#"{"id": 3, "cmd": "device", "name": "chofu_b1", "state": "UP"}"#, Some(3), "unknown state UP"),
        (r#"{"id": 4, "cmd": "operator", "token": "t", "action": "dance"}"#, Some(4), "not a command"),
        (r#"{"id": 5, "cmd": "fly"}"#, Some(5), "not a command"),
        ("nope", None, "not a JSON frame"),
    ] {
        let Step::Reply(frame) = protocol_v2::read(&layout, bad) else { panic!("{bad} is no command") };
        match v2::ServerFrame::decode(&frame) {
            Ok(v2::ServerFrame::Error { id: got, reason }) => {
                assert_eq!(got, id, "{bad}");
                assert!(reason.contains(says), "{bad}: {reason}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn a_v2_client_is_answered_with_its_command_s_id() {
    let answer = |outcome| v2::ServerFrame::decode(&protocol_v2::answer(9, &outcome)).unwrap();
    assert_eq!(answer(Outcome::Applied), v2::ServerFrame::Ack { id: 9, detail: None });
    let refusal = Rejection { kind: RejectKind::Unknown, message: "no".into() };
    assert!(matches!(answer(Outcome::Rejected(refusal)), v2::ServerFrame::Rejected { id: 9, .. }));
    assert!(matches!(answer(Outcome::Failed(Failure::Denied)), v2::ServerFrame::Failed { id: 9, .. }));
    let operated = |o| v2::ServerFrame::decode(&protocol_v2::operated(3, o)).unwrap();
    assert!(matches!(operated(Operated::Denied), v2::ServerFrame::Denied { id: 3, .. }));
    assert_eq!(operated(Operated::Done("ok".into())), v2::ServerFrame::Ack { id: 3, detail: Some("ok".into()) });
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
    assert_eq!(wire::word(&TrainStatus::Derailed), "derailed");
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
