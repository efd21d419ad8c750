//! The ESP32 boards' protocol and the servo firmware's behaviour, branch by branch (no sockets).

use crate::boards2021::arduino_json::{as_i32, as_int, as_text, parse};
use crate::boards2021::firmware::{HttpRequest, ON_ANGLE, Outcome, POWER_ON_ANGLE, Reply, ServoBoard};
use crate::boards2021::protocol::{Answer, BoardCommand, SensorReport, ServoOp};
use serde_json::json;

#[test]
fn servo_commands_encode_as_the_2021_server_sent_them() {
    let angle = BoardCommand::Servo { pin: 23, op: ServoOp::Angle(180) }.encode();
    let json: serde_json::Value = serde_json::from_str(&angle).unwrap();
    assert_eq!(json, json!({"pin": 23, "state": "ANGLE", "angle": 180}));
    let get: serde_json::Value =
        serde_json::from_str(&BoardCommand::Servo { pin: 4, op: ServoOp::Get }.encode()).unwrap();
    assert_eq!(get, json!({"pin": 4, "state": "GET"}));
    // The time as a string, as the crew's KTPCP_settime.sh sent it.
    let clock: serde_json::Value =
        serde_json::from_str(&BoardCommand::SetClock { unix: 1_637_000_000 }.encode()).unwrap();
    assert_eq!(clock, json!({"pin": -1, "state": "1637000000"}));
}

/// A POST of `body` to `/`, JSON.
fn post(body: &str) -> HttpRequest<'_> {
    HttpRequest { post: true, path: "/", form: false, body: body.as_bytes() }
}

fn ok(clock: i64) -> Reply {
    Reply { status: 200, content_type: "application/json", body: format!(r#"{{"status":"OK","last_update":{clock}}}"#) }
}

fn invalid_pin() -> Reply {
    Reply { status: 404, content_type: "application/json", body: r#"{"error":"invalid GPIO pin"}"#.into() }
}

fn invalid_operation() -> Reply {
    Reply { status: 400, content_type: "application/json", body: r#"{"error":"invalid operation"}"#.into() }
}

fn not_found(path: &str) -> Reply {
    Reply { status: 404, content_type: "text/html", body: format!("Not found: {path}") }
}

/// A request, the answer, and the servo written (pin, angle).
type Case<'a> = (HttpRequest<'a>, Reply, Option<(u32, u32)>);

/// Every branch of KTPCP4servo.ino (and of the ESP32 web server around it), with the exact answer and the
/// servo written: a board 7.5 s after power-on, its clock never set (so it reads 7).
#[test]
fn the_firmware_answers_every_branch_as_its_source_does() {
    let at = 7_500;
    let table: Vec<Case> = vec![
        // pin -1 sets the clock to `state` (a number or a numeric string) and answers the time just set.
        (post(r#"{"pin":-1,"state":"1637000000"}"#), ok(1_637_000_000), None),
        (post(r#"{"pin":-1,"state":1637000000}"#), ok(1_637_000_000), None),
        (post(r#"{"pin":"-1","state":"1637000000"}"#), ok(1_637_000_000), None),
        // Not a number (or a number with a newline after it, or one past 32 bits): the clock is set to 0.
        (post(r#"{"pin":-1,"state":"soon"}"#), ok(0), None),
        (post(r#"{"pin":-1,"state":"1637000000\n"}"#), ok(0), None),
        (post(r#"{"pin":-1,"state":4294967296}"#), ok(0), None),
        (post(r#"{"pin":-1}"#), ok(0), None),
        // Servo pins: ON is 80 degrees and OFF 0 on every pin; ANGLE is the angle sent.
        (post(r#"{"pin":23,"state":"ON"}"#), ok(7), Some((23, 80))),
        (post(r#"{"pin":23,"state":"OFF"}"#), ok(7), Some((23, 0))),
        (post(r#"{"pin":23,"state":"ANGLE","angle":120}"#), ok(7), Some((23, 120))),
        (post(r#"{"pin":"23","state":"ANGLE","angle":"45"}"#), ok(7), Some((23, 45))),
        (post(r#"{"pin":23.9,"state":"ANGLE","angle":45.7}"#), ok(7), Some((23, 45))),
        // Servo library: angles clamp to 0..180; 500 and above are pulse widths in us (500..2400).
        (post(r#"{"pin":23,"state":"ANGLE","angle":360}"#), ok(7), Some((23, 180))),
        (post(r#"{"pin":23,"state":"ANGLE","angle":-5}"#), ok(7), Some((23, 0))),
        (post(r#"{"pin":23,"state":"ANGLE","angle":1450}"#), ok(7), Some((23, 90))),
        (post(r#"{"pin":23,"state":"ANGLE","angle":9999}"#), ok(7), Some((23, 180))),
        // ANGLE without an angle writes 0.
        (post(r#"{"pin":23,"state":"ANGLE"}"#), ok(7), Some((23, 0))),
        // A servo pin with nothing attached is still a servo.
        (post(r#"{"pin":4,"state":"ON"}"#), ok(7), Some((4, 80))),
        // GET: the hall-sensor branch is never reached (no pin is made a hall pin).
        (post(r#"{"pin":23,"state":"GET"}"#), invalid_operation(), None),
        (post(r#"{"pin":34,"state":"GET"}"#), invalid_pin(), None),
        (post(r#"{"pin":36,"state":"GET"}"#), invalid_pin(), None),
        // Unknown operations (case matters).
        (post(r#"{"pin":23,"state":"TOGGLE"}"#), invalid_operation(), None),
        (post(r#"{"pin":23,"state":"on"}"#), invalid_operation(), None),
        (post(r#"{"pin":23,"state":1}"#), invalid_operation(), None),
        (post(r#"{"pin":23}"#), invalid_operation(), None),
        // Pins that are not servos: unused, out of 0..36, negative.
        (post(r#"{"pin":2,"state":"ON"}"#), invalid_pin(), None),
        (post(r#"{"pin":39,"state":"ON"}"#), invalid_pin(), None),
        (post(r#"{"pin":-5,"state":"ON"}"#), invalid_pin(), None),
        (post(r#"{"pin":"four","state":"ON"}"#), invalid_pin(), None),
        // Bad JSON: what was read before the error counts; nothing read is pin 0, not a servo.
        (post("not json"), invalid_pin(), None),
        (post(""), invalid_pin(), None),
        (post(r#"{"pin":23,"state":"ON""#), ok(7), Some((23, 80))),
        (post(r#"{"pin":23,"state":"O"#), invalid_operation(), None),
        (post(r#"{pin:23,'state':'ON'}"#), ok(7), Some((23, 80))),
        (post(r#"{"pin":23,"state":"ON"} trailing"#), ok(7), Some((23, 80))),
        (post(r#"{"pin":2,"pin":23,"state":"ON"}"#), ok(7), Some((23, 80))),
        (post("[23]"), invalid_pin(), None),
        // A form-encoded body never reaches the firmware (the web server gives it no `plain` argument).
        (HttpRequest { form: true, ..post(r#"{"pin":23,"state":"ON"}"#) }, invalid_pin(), None),
        // The body is a C string: it ends at a NUL byte.
        (post("{\"pin\":23,\"state\":\"ON\"}\0garbage"), ok(7), Some((23, 80))),
        // Other paths and methods: the web server's own 404.
        (
            HttpRequest { path: "/health", ..post("") },
            Reply { status: 404, content_type: "application/json", body: r#"{"status":"OK"}"#.into() },
            None,
        ),
        (HttpRequest { post: false, path: "/health", form: false, body: b"" }, not_found("/health"), None),
        (HttpRequest { post: false, path: "/", form: false, body: b"" }, not_found("/"), None),
        (HttpRequest { path: "/gpio", ..post(r#"{"pin":23,"state":"ON"}"#) }, not_found("/gpio"), None),
    ];
    for (request, reply, moved) in table {
        let mut board = ServoBoard::new(0, None);
        let got = board.handle(&request, at);
        let body = String::from_utf8_lossy(request.body);
        assert_eq!(
            got,
            Outcome { reply, moved },
            "{} {} {body:?}",
            if request.post { "POST" } else { "GET" },
            request.path
        );
    }
}

#[test]
fn the_client_reads_every_answer_the_firmware_gives() {
    assert_eq!(Answer::decode(200, ok(1_637_000_123).body.as_bytes()), Ok(Answer::Ok { last_update: 1_637_000_123 }));
    assert_eq!(Answer::decode(404, invalid_pin().body.as_bytes()), Ok(Answer::InvalidPin));
    assert_eq!(Answer::decode(400, invalid_operation().body.as_bytes()), Ok(Answer::InvalidOperation));
    // The 404 of an unregistered path, and /health's 404 with "OK", are not answers to a command.
    assert!(Answer::decode(404, not_found("/").body.as_bytes()).is_err());
    assert!(Answer::decode(404, br#"{"status":"OK"}"#).is_err());
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
fn every_command_the_client_writes_does_what_it_means_on_the_firmware() {
    let mut board = ServoBoard::new(0, None);
    for (op, angle) in [(ServoOp::On, ON_ANGLE as u32), (ServoOp::Off, 0), (ServoOp::Angle(135), 135)] {
        let cmd = BoardCommand::Servo { pin: 27, op };
        let out = board.handle(&post(&cmd.encode()), 1_000);
        assert_eq!(out, Outcome { reply: ok(1), moved: Some((27, angle)) }, "{op:?}");
    }
    let get = board.handle(&post(&BoardCommand::Servo { pin: 27, op: ServoOp::Get }.encode()), 1_000);
    assert_eq!(get.reply, invalid_operation());
    let set = board.handle(&post(&BoardCommand::SetClock { unix: 1_637_000_000 }.encode()), 1_000);
    assert_eq!(set, Outcome { reply: ok(1_637_000_000), moved: None });
}

/// The clock: seconds since boot until it is set; a set answers the time just given, whether or not the board
/// rebooted (so a clock set cannot show a reboot), and a servo command answers the clock, which after a reboot
/// without NTP reads as seconds since boot again (so it can).
#[test]
fn the_clock_shows_a_reboot_in_servo_answers_only() {
    let mut board = ServoBoard::new(0, None);
    assert_eq!(board.angle(27), Some(POWER_ON_ANGLE));
    assert_eq!(board.handle(&post(r#"{"pin":-1,"state":"1637000000"}"#), 10_000).reply, ok(1_637_000_000));
    let moved = board.handle(&post(r#"{"pin":27,"state":"ANGLE","angle":10}"#), 12_400);
    assert_eq!(moved.reply, ok(1_637_000_002));
    board.reboot(20_000, None);
    assert_eq!(board.angle(27), Some(POWER_ON_ANGLE), "every servo back at power-on");
    assert_eq!(board.handle(&post(r#"{"pin":-1,"state":"1637000010"}"#), 23_000).reply, ok(1_637_000_010));
    board.reboot(30_000, None);
    assert_eq!(board.handle(&post(r#"{"pin":27,"state":"ANGLE","angle":10}"#), 33_000).reply, ok(3));
    // With NTP the clock is right at once after a reboot: nothing to see.
    board.reboot(40_000, Some(1_637_000_100));
    assert_eq!(board.handle(&post(r#"{"pin":27,"state":"ANGLE","angle":10}"#), 42_000).reply, ok(1_637_000_102));
}

#[test]
fn arduino_json_reads_and_converts_as_arduinojson_6() {
    assert_eq!(parse(r#"{"a":1,"b":"x""#), json!({"a": 1, "b": "x"}));
    assert_eq!(parse(r#"{"a":1,"b":"#), json!({"a": 1, "b": null}));
    assert_eq!(parse(r#"{"a":1,"b""#), json!({"a": 1}));
    assert_eq!(parse("garbage"), json!(null));
    assert_eq!(parse(r#"{'a':[1,{"b":true}]}"#), json!({"a": [1, {"b": true}]}));
    assert_eq!(parse(r#""\u00e9\n""#), json!("é\n"));
    assert!(parse(&"[".repeat(100_000)).is_array(), "deep nesting stops early, without a stack overflow");
    assert_eq!(as_i32(&json!("42")), 42);
    assert_eq!(as_i32(&json!(" 42")), 0);
    assert_eq!(as_i32(&json!("42x")), 0);
    assert_eq!(as_i32(&json!(true)), 1);
    assert_eq!(as_i32(&json!(-7.9)), -7);
    assert_eq!(as_i32(&json!(3_000_000_000u64)), 0);
    assert_eq!(as_int(&json!(3_000_000_000u64), 0, u32::MAX.into()), 3_000_000_000);
    assert_eq!(as_i32(&json!({"a": 1})), 0);
    assert_eq!(as_text(&json!("ON")), "ON");
    assert_eq!(as_text(&json!(null)), "null");
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
