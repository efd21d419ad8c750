//! The 2021 ESP32 firmware's HTTP protocol as plain data: no sockets.
//!
//! Servo boards take `POST /` with a JSON body `{"pin": <GPIO>, "state": "ON"|"OFF"|"ANGLE", "angle": <n>}`
//! and answer `200 {"status":"OK","last_update":<the board's clock>}`, `404 {"error":"invalid GPIO pin"}` or
//! `400 {"error":"invalid operation"}`. `pin: -1` with a unix time in `state` sets the board's clock (and the
//! answer is that time). What a board does with any request, exactly, is [`crate::boards2021::firmware`]. Sensor boards report a passing train with `POST /registerPosition` and
//! `{"mac_address": "<board>", "pin": <n>, "train_id": <n>}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a servo command asks of a servo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServoOp {
    /// Drive to the firmware's ON angle (80 on every pin).
    On,
    /// Drive to the firmware's OFF angle (0 on every pin).
    Off,
    /// Drive to an angle (what the 2021 server sent, with the device's ON or OFF angle).
    Angle(u32),
    /// Read a hall sensor (no pin of the 2021 servo firmware is one: it answers `invalid operation`).
    Get,
}

/// A command to a servo board, as the gateway's client builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardCommand {
    /// Operate the servo on a pin.
    Servo {
        /// GPIO pin.
        pin: u32,
        /// What to do.
        op: ServoOp,
    },
    /// Set the board's clock (`pin: -1`, unix seconds in `state`).
    SetClock {
        /// Unix time in seconds.
        unix: u64,
    },
}

#[derive(Serialize)]
struct Wire {
    pin: i64,
    state: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    angle: Option<Value>,
}

impl BoardCommand {
    /// The JSON body of `POST /` for this command.
    pub fn encode(&self) -> String {
        let wire = match *self {
            BoardCommand::Servo { pin, op } => {
                let (state, angle) = match op {
                    ServoOp::On => ("ON", None),
                    ServoOp::Off => ("OFF", None),
                    ServoOp::Angle(a) => ("ANGLE", Some(Value::from(a))),
                    ServoOp::Get => ("GET", None),
                };
                Wire { pin: pin as i64, state: Value::from(state), angle }
            }
            BoardCommand::SetClock { unix } => Wire { pin: -1, state: Value::from(unix.to_string()), angle: None },
        };
        serde_json::to_string(&wire).expect("plain JSON")
    }
}

/// A servo board's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200: done; the board's clock (`time(NULL)`) as it answered: unix seconds once set, else seconds since
    /// boot.
    Ok {
        /// The board's clock, seconds.
        last_update: i64,
    },
    /// 404: the pin is not a servo.
    InvalidPin,
    /// 400: unknown state or malformed command.
    InvalidOperation,
}

/// Why an answer could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// A status and body the firmware never sends.
    #[error("unexpected answer: status {status}, body {body:?}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// Body text (truncated).
        body: String,
    },
}

impl Answer {
    /// Reads a board's answer. Success needs a 2xx status with `"status":"OK"`.
    pub fn decode(status: u16, body: &[u8]) -> Result<Answer, AnswerError> {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let field = |k: &str| json.as_ref().and_then(|j| j.get(k)).cloned();
        let unexpected = || AnswerError::Unexpected {
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        };
        match status {
            200..=299 if field("status").and_then(|s| s.as_str().map(|s| s == "OK")) == Some(true) => {
                Ok(Answer::Ok { last_update: field("last_update").and_then(|v| v.as_i64()).unwrap_or(0) })
            }
            404 if field("error").is_some() => Ok(Answer::InvalidPin),
            400 if field("error").is_some() => Ok(Answer::InvalidOperation),
            _ => Err(unexpected()),
        }
    }
}

/// A hall-sensor board's report of a passing train (`POST /registerPosition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorReport {
    /// The reporting board's address.
    pub mac_address: String,
    /// The sensor's pin on that board.
    pub pin: u32,
    /// The train's id from its magnet pattern.
    pub train_id: u32,
}

impl SensorReport {
    /// The JSON body.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("plain JSON")
    }

    /// Reads a report body.
    pub fn decode(body: &[u8]) -> Result<SensorReport, String> {
        serde_json::from_slice(body).map_err(|e| format!("not a sensor report: {e}"))
    }
}
