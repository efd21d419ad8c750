//! The v2 protocol's logic: what a frame asks, how a client is answered.

use hil::track::{Failure, Outcome};
use sim::interlocking::{RejectKind, Rejection, Request};
use sim::layout::OnOff;
use sim::layout::festival::layout_2021;
use wire::v2;

use crate::link::Operated;
use crate::protocol_v2;
use crate::step::Step;

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
