//! Every parser of outside input, fed arbitrary bytes and arbitrary JSON (shaped like its frames, with the real
//! keys and wrong values): it answers an error or a well-formed request, and never panics. The parsers are
//! plain functions: nothing changes until a request they return is carried out (and the request is checked
//! here to name a real device or train with a speed on the scale).

use std::sync::Arc;

use gateway::step::Step;
use gateway::{protocol_2021, protocol_v2};
use hil::boards2021::firmware::{HttpRequest, ServoBoard};
use hil::boards2021::protocol::{Answer, SensorReport};
use proptest::prelude::*;
use serde_json::Value;
use sim::interlocking::{FULL_SPEED, Request};
use sim::layout::Layout;

use crate::support::layout_2021;

/// Keys the frames use, and a few they do not.
const KEYS: &[&str] = &[
    "station_name",
    "state",
    "train_name",
    "speed",
    "id",
    "cmd",
    "name",
    "train",
    "token",
    "action",
    "mac_address",
    "pin",
    "train_id",
    "angle",
    "x",
];

/// Strings the frames use, and a few they do not.
const WORDS: &[&str] = &[
    "ON",
    "OFF",
    "GET",
    "ANGLE",
    "chofu_b1",
    "kitano_s5",
    "iwamotocho_b2",
    "TAKAO",
    "THOMAS",
    "device",
    "speed",
    "snapshot",
    "operator",
    "live",
    "emergency_stop",
    "192.168.1.103",
    "",
    "💥",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-200i64..200).prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// Text to parse: a JSON value shaped like a frame, arbitrary text, or arbitrary bytes read lossily.
fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string()),
        1 => ".{0,64}",
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// A step is an error frame, or a request naming a real device or train with a speed on the scale.
fn well_formed(layout: &Layout, step: &Step) -> Result<(), TestCaseError> {
    match step {
        Step::Reply(frame) => {
            let v: Value = serde_json::from_str(frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v.get("error").is_some() || v["type"] == "error", "{frame}");
        }
        Step::Track { request: Request::Device { device, .. }, .. } => prop_assert!(*device < layout.devices.len()),
        Step::Track { request: Request::Speed { train, speed }, .. } => {
            prop_assert!(*train < layout.trains.len() && speed.abs() <= FULL_SPEED);
        }
        Step::Operator { .. } | Step::Snapshot => {}
    }
    Ok(())
}

fn layout() -> Arc<Layout> {
    static LAYOUT: std::sync::OnceLock<Arc<Layout>> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(layout_2021).clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_2021_frames_parse_to_an_error_or_a_real_request(text in input()) {
        let layout = layout();
        well_formed(&layout, &protocol_2021::read(&layout, &text))?;
        well_formed(&layout, &protocol_2021::read_speed(&layout, &text))?;
    }

    #[test]
    fn the_v2_frames_parse_to_an_error_or_a_real_request(text in input()) {
        let layout = layout();
        well_formed(&layout, &protocol_v2::read(&layout, &text))?;
    }

    #[test]
    fn sensor_reports_parse_to_an_error_or_a_wired_sensor(text in input()) {
        let layout = layout();
        if let Ok(report) = SensorReport::decode(text.as_bytes())
            && let Ok(reading) = hil::boards2021::ingest::resolve(&layout, &report)
        {
            prop_assert!(layout.sensors[reading.sensor].wiring.is_some());
        }
    }

    #[test]
    fn the_firmware_answers_any_body_with_one_of_its_answers(text in input(), status in 100u16..600, form: bool) {
        let mut board = ServoBoard::new(0, None);
        let out = board.handle(&HttpRequest { post: true, path: "/", form, body: text.as_bytes() }, 5_000);
        prop_assert!([200, 400, 404].contains(&out.reply.status), "{:?}", out.reply);
        // The client reads every answer of the firmware to a command as one of its answers.
        prop_assert!(Answer::decode(out.reply.status, out.reply.body.as_bytes()).is_ok(), "{:?}", out.reply);
        if let Some((pin, angle)) = out.moved {
            prop_assert!(sim::layout::SERVO_PINS.contains(&pin) && angle <= 180);
        }
        if let Ok(Answer::Ok { .. }) = Answer::decode(status, text.as_bytes()) {
            prop_assert!((200..300).contains(&status));
        }
    }

    #[test]
    fn layout_files_parse_to_an_error_or_a_valid_layout(text in input()) {
        let _ = Layout::from_toml(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The 2021 layout file with one line changed: refused with an error, or a valid layout; never a panic.
    #[test]
    fn a_layout_file_with_a_line_changed_is_an_error_or_valid(line in 0usize..1700, value in json_value()) {
        let text = crate::support::layout_2021_text();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let i = line % lines.len();
        if let Some((key, _)) = lines[i].split_once(" = ") {
            lines[i] = format!("{key} = {}", toml_value(&value));
        }
        let _ = Layout::from_toml(&lines.join("\n"));
    }
}

/// A JSON value written as TOML (close enough to reach the validation).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Null => "\"\"".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!(
                "{{ {} }}",
                o.iter().map(|(k, v)| format!("{k} = {}", toml_value(v))).collect::<Vec<_>>().join(", ")
            )
        }
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The MJPEG parser takes any bytes in any pieces: frames or an error, never a panic, and the same frames
    /// whatever the pieces.
    #[test]
    fn an_mjpeg_stream_parses_to_frames_or_an_error_in_any_pieces(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        at in 0usize..400,
        piece in 1usize..50,
    ) {
        let mut stream = video::mjpeg::stream_head();
        for f in &frames {
            stream.extend(video::mjpeg::frame_part(f));
        }
        let whole = video::mjpeg::MjpegParser::default().feed(&stream).unwrap();
        prop_assert_eq!(&whole, &frames);
        let mut pieces = video::mjpeg::MjpegParser::default();
        let mut got = Vec::new();
        for chunk in stream.chunks(piece) {
            got.extend(pieces.feed(chunk).unwrap());
        }
        prop_assert_eq!(&got, &frames);
        // Noise spliced in anywhere: an error or frames, never a panic.
        let at = at.min(stream.len());
        let mut broken = stream[..at].to_vec();
        broken.extend(&noise);
        broken.extend(&stream[at..]);
        let _ = video::mjpeg::MjpegParser::default().feed(&broken);
    }

    /// Offers, RTP payloads and pictures from outside never panic their readers.
    #[test]
    fn offers_payloads_and_pictures_are_read_without_panicking(
        text in input(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        plane in proptest::collection::vec(any::<u8>(), 0..4096),
        width in 0usize..400,
    ) {
        let _ = video::sfu::check_offer(&text, false);
        let _ = video::sfu::check_offer(&text, true);
        let _ = video::h264::starts_keyframe(&payload);
        let height = plane.len().checked_div(width).unwrap_or(0);
        let _ = video::strip::read_luma(&plane, width, height, width);
        let _ = video::pull::decode_jpeg(&plane);
    }
}
