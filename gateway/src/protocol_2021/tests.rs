//! The 2021 protocols' logic: what a frame asks, what a client is told.

use hil::track::{Failure, Outcome};
use serde_json::{Value, json};
use sim::interlocking::{RejectKind, Rejection, Request};
use sim::layout::OnOff;
use sim::layout::festival::layout_2021;

use crate::protocol_2021;
use crate::step::Step;

fn value(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
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
        value(&::wire::v2021::ServerFrame::speed("TAKAO", 35).encode()),
        json!({"train_name": "TAKAO", "speed": 35})
    );
    assert_eq!(
        ::wire::v2021::ServerFrame::decode(r#"{"train_name":"TAKAO","speed":35}"#),
        Ok(::wire::v2021::ServerFrame::speed("TAKAO", 35))
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
