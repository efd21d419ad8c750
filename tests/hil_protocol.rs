//! The ESP32 boards' protocol and the servo firmware's behaviour, case by case (no sockets).

use hil::firmware::{POWER_ON_ANGLE, ServoBoard};
use hil::protocol::{Answer, BoardCommand, SensorReport, ServoOp};

use crate::support::layout_2021;

#[test]
fn servo_commands_encode_as_the_2021_server_sent_them() {
    let angle = BoardCommand::Servo { pin: 23, op: ServoOp::Angle(180) }.encode();
    let json: serde_json::Value = serde_json::from_str(&angle).unwrap();
    assert_eq!(json, serde_json::json!({"pin": 23, "state": "ANGLE", "angle": 180}));
    let get: serde_json::Value =
        serde_json::from_str(&BoardCommand::Servo { pin: 4, op: ServoOp::Get }.encode()).unwrap();
    assert_eq!(get, serde_json::json!({"pin": 4, "state": "GET"}));
    let clock: serde_json::Value =
        serde_json::from_str(&BoardCommand::SetClock { unix: 1_637_000_000 }.encode()).unwrap();
    assert_eq!(clock, serde_json::json!({"pin": -1, "state": "1637000000"}));
}

#[test]
fn every_command_decodes_back_to_itself() {
    for cmd in [
        BoardCommand::Servo { pin: 27, op: ServoOp::On },
        BoardCommand::Servo { pin: 27, op: ServoOp::Off },
        BoardCommand::Servo { pin: 13, op: ServoOp::Angle(0) },
        BoardCommand::Servo { pin: 13, op: ServoOp::Angle(359) },
        BoardCommand::Servo { pin: 33, op: ServoOp::Get },
        BoardCommand::SetClock { unix: 1_637_000_000 },
    ] {
        assert_eq!(BoardCommand::decode(cmd.encode().as_bytes()), Ok(cmd));
    }
}

#[test]
fn malformed_and_unknown_commands_are_invalid_operations() {
    for body in [
        &b"not json"[..],
        br#"{"pin": 4}"#,
        br#"{"state": "ON"}"#,
        br#"{"pin": 4, "state": "UP"}"#,
        br#"{"pin": 4, "state": "ANGLE"}"#,
        br#"{"pin": 4, "state": "ANGLE", "angle": 360}"#,
        br#"{"pin": 4, "state": "ANGLE", "angle": -1}"#,
        br#"{"pin": 4, "state": 1}"#,
        br#"{"pin": -1, "state": "yesterday"}"#,
        br#"{"pin": "4", "state": "ON"}"#,
    ] {
        assert_eq!(BoardCommand::decode(body), Err(Answer::InvalidOperation), "{}", String::from_utf8_lossy(body));
    }
    assert_eq!(BoardCommand::decode(br#"{"pin": -7, "state": "ON"}"#), Err(Answer::InvalidPin));
    assert_eq!(
        BoardCommand::decode(br#"{"pin": -1, "state": 1637000000}"#),
        Ok(BoardCommand::SetClock { unix: 1_637_000_000 })
    );
}

#[test]
fn answers_have_the_firmware_statuses_and_bodies() {
    let ok = Answer::Ok { last_update: 1_637_000_123 };
    assert_eq!((ok.status(), ok.body().as_str()), (200, r#"{"status":"OK","last_update":1637000123}"#));
    assert_eq!(
        (Answer::InvalidPin.status(), Answer::InvalidPin.body().as_str()),
        (404, r#"{"error":"invalid GPIO pin"}"#)
    );
    assert_eq!(
        (Answer::InvalidOperation.status(), Answer::InvalidOperation.body().as_str()),
        (400, r#"{"error":"invalid operation"}"#)
    );
    for a in [ok, Answer::InvalidPin, Answer::InvalidOperation] {
        assert_eq!(Answer::decode(a.status(), a.body().as_bytes()), Ok(a));
    }
}

#[test]
fn only_a_2xx_ok_answer_is_success() {
    assert!(Answer::decode(500, br#"{"status":"OK"}"#).is_err());
    assert!(Answer::decode(200, b"<html>").is_err());
    assert!(Answer::decode(200, br#"{"status":"FAIL"}"#).is_err());
    assert!(Answer::decode(302, b"").is_err());
    assert_eq!(Answer::decode(201, br#"{"status":"OK"}"#), Ok(Answer::Ok { last_update: 0 }));
}

#[test]
fn sensor_reports_round_trip_and_refuse_malformed_bodies() {
    let r = SensorReport { mac_address: "192.168.1.103".into(), pin: 8, train_id: 3 };
    assert_eq!(SensorReport::decode(r.encode().as_bytes()), Ok(r));
    for body in [
        &b"{}"[..],
        br#"{"mac_address": "x", "pin": -1, "train_id": 1}"#,
        br#"{"mac_address": 1, "pin": 1, "train_id": 1}"#,
        b"[]",
    ] {
        let e = SensorReport::decode(body).unwrap_err();
        assert!(e.starts_with("not a sensor report"), "{e}");
    }
}

#[test]
fn the_firmware_drives_servos_answers_bad_pins_and_keeps_a_clock() {
    let layout = layout_2021();
    let board = layout.boards.iter().position(|b| b.address == "192.168.100.107:80").unwrap();
    let mut fw = ServoBoard::for_board(&layout, board, 0);
    assert_eq!(fw.angle(23), Some(POWER_ON_ANGLE));
    // chofu_b1 is on pin 23 with ON 180 / OFF 120.
    let on = fw.handle(&BoardCommand::Servo { pin: 23, op: ServoOp::On }, 5_000);
    assert_eq!(on.moved, Some((23, 180)));
    assert_eq!(on.answer, Answer::Ok { last_update: 5 });
    assert_eq!(fw.handle(&BoardCommand::Servo { pin: 23, op: ServoOp::Angle(120) }, 6_000).moved, Some((23, 120)));
    assert_eq!(fw.angle(23), Some(120));
    // GET is for hall-sensor pins: on a servo pin it is an invalid operation, on a hall pin a reading.
    let get = fw.handle(&BoardCommand::Servo { pin: 23, op: ServoOp::Get }, 9_000);
    assert_eq!(get, hil::firmware::Outcome { answer: Answer::InvalidOperation, moved: None });
    let hall = fw.handle(&BoardCommand::Servo { pin: 34, op: ServoOp::Get }, 9_000);
    assert_eq!(hall, hil::firmware::Outcome { answer: Answer::Hall { status: 0, last_update: 6 }, moved: None });
    assert_eq!(Answer::decode(200, Answer::Hall { status: 0, last_update: 6 }.body().as_bytes()), Ok(hall.answer));
    // Pin 2 is not a servo pin.
    assert_eq!(fw.handle(&BoardCommand::Servo { pin: 2, op: ServoOp::On }, 9_000).answer, Answer::InvalidPin);
    // Set the clock, move, read the unix time back.
    fw.handle(&BoardCommand::SetClock { unix: 1_637_000_000 }, 10_000);
    let moved = fw.handle(&BoardCommand::Servo { pin: 27, op: ServoOp::Off }, 12_000);
    assert_eq!(moved.answer, Answer::Ok { last_update: 1_637_000_002 });
    // A reboot loses the clock and returns every servo to its power-on angle.
    fw.reboot(20_000);
    assert_eq!(fw.angle(27), Some(POWER_ON_ANGLE));
    assert_eq!(fw.clock(23_000), 3);
}
