//! The 2021 ESP32 firmware's HTTP protocol as plain data: no sockets.
//!
//! Servo boards take `POST /` with a JSON body `{"pin": <GPIO>, "state": "ON"|"OFF"|"ANGLE"|"GET",
//! "angle": <0..359>}` and answer `200 {"status":"OK","last_update":<unix seconds>}`, `404 {"error":"invalid
//! GPIO pin"}` or `400 {"error":"invalid operation"}`. `pin: -1` with a unix time in `state` sets the board's
//! clock. Sensor boards report a passing train with `POST /registerPosition` and
//! `{"mac_address": "<board>", "pin": <n>, "train_id": <n>}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a servo command asks of a servo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServoOp {
    /// Drive to the board's ON angle.
    On,
    /// Drive to the board's OFF angle.
    Off,
    /// Drive to an angle (0..359).
    Angle(u32),
    /// Read back (no movement).
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

#[derive(Serialize, Deserialize)]
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

    /// Reads a `POST /` body the way the firmware does: a body that is not a command, or an unknown state, is
    /// an invalid operation; a negative pin other than -1 is an invalid pin. Whether a pin drives a servo is
    /// the board's to decide (see [`crate::firmware`]).
    pub fn decode(body: &[u8]) -> Result<BoardCommand, Answer> {
        let wire: Wire = serde_json::from_slice(body).map_err(|_| Answer::InvalidOperation)?;
        if wire.pin == -1 {
            let unix = match &wire.state {
                Value::String(s) => s.trim().parse::<u64>().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            };
            return unix.map(|unix| BoardCommand::SetClock { unix }).ok_or(Answer::InvalidOperation);
        }
        let pin = u32::try_from(wire.pin).map_err(|_| Answer::InvalidPin)?;
        let op = match wire.state.as_str() {
            Some("ON") => ServoOp::On,
            Some("OFF") => ServoOp::Off,
            Some("GET") => ServoOp::Get,
            Some("ANGLE") => match wire.angle.as_ref().and_then(Value::as_u64) {
                Some(a) if a <= 359 => ServoOp::Angle(a as u32),
                _ => return Err(Answer::InvalidOperation),
            },
            _ => return Err(Answer::InvalidOperation),
        };
        Ok(BoardCommand::Servo { pin, op })
    }
}

/// A servo board's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200: done; the board's clock at its last servo update.
    Ok {
        /// Unix seconds (board clock).
        last_update: u64,
    },
    /// 200: a hall sensor's reading (`GET` on a hall-sensor pin).
    Hall {
        /// 1 while a magnet is over the sensor.
        status: u8,
        /// Unix seconds (board clock) of the last servo update.
        last_update: u64,
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
    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Ok { .. } | Answer::Hall { .. } => 200,
            Answer::InvalidPin => 404,
            Answer::InvalidOperation => 400,
        }
    }

    /// JSON body.
    pub fn body(&self) -> String {
        match self {
            Answer::Ok { last_update } => format!(r#"{{"status":"OK","last_update":{last_update}}}"#),
            Answer::Hall { status, last_update } => format!(r#"{{"status":{status},"last_update":{last_update}}}"#),
            Answer::InvalidPin => r#"{"error":"invalid GPIO pin"}"#.to_string(),
            Answer::InvalidOperation => r#"{"error":"invalid operation"}"#.to_string(),
        }
    }

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
                Ok(Answer::Ok { last_update: field("last_update").and_then(|v| v.as_u64()).unwrap_or(0) })
            }
            200..=299 if let Some(status) = field("status").and_then(|s| s.as_u64()).filter(|&s| s <= 1) => {
                let last_update = field("last_update").and_then(|v| v.as_u64()).unwrap_or(0);
                Ok(Answer::Hall { status: status as u8, last_update })
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
