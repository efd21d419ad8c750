//! The 2021 servo board firmware (`KTPCP4servo.ino`) as a plain state machine: what a board answers to every
//! HTTP request, branch by branch, and what its servos do. Virtual boards serve this over HTTP on top of the
//! simulation; tests drive it directly.
//!
//! The firmware, as its source has it:
//! - It registers `POST /` (commands) and `POST /health`; the ESP32 web server answers anything else with
//!   404 `text/html` `Not found: <path>`. Every answer closes the connection, and the server takes one client
//!   at a time.
//! - `POST /health` answers 404 with `{"status":"OK"}`.
//! - `POST /` reads the body with ArduinoJson ([`crate::boards2021::arduino_json`]; a form-encoded body never reaches it,
//!   so it reads nothing). `pin` is read as an `int`, `state` as a `String`:
//!   - `pin` -1: the clock is set to `state` read as a 32-bit `time_t` (a number or a numeric string; anything
//!     else is 0), and the answer is 200 `{"status":"OK","last_update":<the clock just after>}`, i.e. the time
//!     it was given, whether or not the board rebooted.
//!   - a pin outside 0..36 or not one of the 16 servo pins: 404 `{"error":"invalid GPIO pin"}`.
//!   - `ON` writes angle 80 and `OFF` angle 0 on every pin (the firmware's own angles, not the devices'),
//!     `ANGLE` writes `angle` read as an `int`; then 200 `{"status":"OK","last_update":<clock now>}`.
//!   - any other state (`GET` included: the firmware's hall-sensor branch is never reached, as no pin is ever
//!     made a hall pin): 400 `{"error":"invalid operation"}`.
//! - A write is the ESP32Servo library's: a value below 500 is an angle clamped to 0..180 and mapped onto the
//!   500..2400 us the servos were attached with; 500 and above is a pulse width in us, clamped to that range.
//! - At power-on every servo gets the library's default pulse (4825 ticks of a 16-bit timer at 50 Hz, 1472 us,
//!   angle 92), and the clock starts at 0 (seconds since boot) unless NTP answers.

use std::collections::BTreeMap;

use sim::layout::SERVO_PINS;

use crate::boards2021::arduino_json::{as_i32, as_text, member, parse};

/// The pulse every servo gets at power-on, us (ESP32Servo's default of 4825 ticks of 20 ms in 65536).
pub const POWER_ON_PULSE_US: u32 = 1472;

/// The angle a servo stands at after power-on (neither ON nor OFF for the 2021 devices, so unsafe until driven).
pub const POWER_ON_ANGLE: u32 = 92;

/// The angle `ON` writes on every pin (`GPIO_MOTOR_ANGLE`).
pub const ON_ANGLE: i32 = 80;

/// The pulse range the servos are attached with, us.
const PULSE_US: (i32, i32) = (500, 2400);

/// Pins numbered below this exist for the firmware (`GPIO_MAX`).
const GPIO_MAX: i32 = 36;

/// What an HTTP request is, as far as the firmware can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// Whether the method is POST (the firmware registers no other).
    pub post: bool,
    /// The path, without the query.
    pub path: &'a str,
    /// Whether the body is form-encoded (`application/x-www-form-urlencoded`): the web server parses it as
    /// form fields and gives the firmware no `plain` body.
    pub form: bool,
    /// The body.
    pub body: &'a [u8],
}

/// An HTTP answer as the board sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply { status, content_type: "application/json", body }
    }

    fn ok(clock: i64) -> Reply {
        Reply::json(200, format!(r#"{{"status":"OK","last_update":{clock}}}"#))
    }
}

/// What handling a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The answer to send.
    pub reply: Reply,
    /// The servo written, as (pin, angle it stands at now), even when it stood there already.
    pub moved: Option<(u32, u32)>,
}

/// One servo board: a servo on every servo pin, and a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServoBoard {
    /// Pulse width of every servo pin, us.
    pulses: BTreeMap<u32, u32>,
    boot_ms: u64,
    /// Unix time minus uptime, ms (0 until the clock is set or NTP answers: the clock counts from boot).
    clock_offset_ms: i64,
}

impl ServoBoard {
    /// A board powered on at `now_ms`; with `ntp`, the unix time (s) NTP gave it at boot.
    pub fn new(now_ms: u64, ntp: Option<i64>) -> ServoBoard {
        let mut board = ServoBoard { pulses: BTreeMap::new(), boot_ms: 0, clock_offset_ms: 0 };
        board.reboot(now_ms, ntp);
        board
    }

    /// The board's clock (`time(NULL)`): unix seconds once set, else seconds since boot.
    pub fn clock(&self, now_ms: u64) -> i64 {
        let uptime = now_ms.saturating_sub(self.boot_ms) as i64;
        (uptime + self.clock_offset_ms).div_euclid(1000)
    }

    /// The angle the servo on `pin` stands at (the nearest degree of its pulse).
    pub fn angle(&self, pin: u32) -> Option<u32> {
        self.pulses.get(&pin).map(|&us| angle_of(us))
    }

    /// Handles one request at `now_ms`.
    pub fn handle(&mut self, req: &HttpRequest, now_ms: u64) -> Outcome {
        let reply = |reply| Outcome { reply, moved: None };
        match (req.post, req.path) {
            (true, "/") => {}
            (true, "/health") => return reply(Reply::json(404, r#"{"status":"OK"}"#.into())),
            _ => {
                let body = format!("Not found: {}", req.path);
                return reply(Reply { status: 404, content_type: "text/html", body });
            }
        }
        // `server.arg("plain")`: empty for a form, and a C string (it ends at a NUL byte).
        let plain = if req.form { &[][..] } else { req.body.split(|&b| b == 0).next().unwrap_or_default() };
        let doc = parse(&String::from_utf8_lossy(plain));
        let pin = as_i32(member(&doc, "pin"));
        let state = as_text(member(&doc, "state"));
        if pin == -1 {
            let set = i64::from(as_i32(member(&doc, "state")));
            self.clock_offset_ms = set * 1000 - now_ms.saturating_sub(self.boot_ms) as i64;
            return reply(Reply::ok(self.clock(now_ms)));
        }
        let servo = u32::try_from(pin).ok().filter(|&p| pin < GPIO_MAX && SERVO_PINS.contains(&p));
        let Some(pin) = servo else {
            return reply(Reply::json(404, r#"{"error":"invalid GPIO pin"}"#.into()));
        };
        let value = match state.as_str() {
            "ON" => ON_ANGLE,
            "OFF" => 0,
            "ANGLE" => as_i32(member(&doc, "angle")),
            _ => return reply(Reply::json(400, r#"{"error":"invalid operation"}"#.into())),
        };
        let us = pulse_of(value);
        self.pulses.insert(pin, us);
        Outcome { reply: Reply::ok(self.clock(now_ms)), moved: Some((pin, angle_of(us))) }
    }

    /// Power-cycles the board at `now_ms`: every servo at the power-on pulse, the clock from 0 (or from what
    /// NTP gives: `ntp`, unix seconds).
    pub fn reboot(&mut self, now_ms: u64, ntp: Option<i64>) {
        self.pulses = SERVO_PINS.iter().map(|&pin| (pin, POWER_ON_PULSE_US)).collect();
        self.boot_ms = now_ms;
        self.clock_offset_ms = ntp.map_or(0, |unix| unix * 1000);
    }
}

/// `Servo::write(value)`: the pulse it sets, us.
fn pulse_of(value: i32) -> u32 {
    let (min, max) = PULSE_US;
    let us = if value < min { min + value.clamp(0, 180) * (max - min) / 180 } else { value.min(max) };
    us as u32
}

/// The angle a pulse stands for, to the nearest degree.
fn angle_of(us: u32) -> u32 {
    let (min, max) = PULSE_US;
    let span = (max - min) as u32;
    ((us - min as u32) * 180 + span / 2) / span
}
