//! The v2 WebSocket protocol on `/ws/v2`, as plain functions over JSON text frames.
//!
//! Client frames carry an `id` that the answer repeats:
//! - `{"id": 1, "cmd": "device", "name": "chofu_b1", "state": "ON"}`
//! - `{"id": 2, "cmd": "speed", "train": "TAKAO", "speed_mm_s": 200}`
//! - `{"id": 3, "cmd": "snapshot"}`
//! - `{"id": 4, "cmd": "operator", "token": "...", "action": "live" | "live_force" | "sim" | "emergency_stop" |
//!   "reset"}`
//!
//! Server frames have a `type`: `ack` (with a `detail` for operator actions), `denied` (wrong token), `rejected` (with the interlocking's `rule` and `reason`), `failed`
//! (`reason`), `error` (a frame that is not a command), `snapshot` (mode, devices, trains, boards), `device`
//! (one device's new state), `trains` (every train's position), `board` (a board's health), `mode`, and
//! `event` (sensor passes, with the sensor's and the train's names, collisions, derailments, divergences, in words).

use serde::Deserialize;
use serde_json::{Value, json};
use sim::interlocking::Request;
use sim::layout::{Layout, OnOff};

/// A client command with its id.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Something for the track.
    Track(Request),
    /// Send a snapshot.
    Snapshot,
    /// An operator action, with the token given.
    Operator {
        /// The token the client sent.
        token: String,
        /// The action.
        action: crate::operator::Action,
    },
}

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum Wire {
    Device { name: String, state: String },
    Speed { train: String, speed_mm_s: i32 },
    Snapshot {},
    Operator { token: String, action: String },
}

/// Reads a client frame: its id (when one could be read) and the command, or why it is not one.
pub fn parse(layout: &Layout, text: &str) -> (Option<u64>, Result<Command, String>) {
    let mut value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return (None, Err("not a JSON frame".into())),
    };
    let id = value.as_object_mut().and_then(|o| o.remove("id")).and_then(|v| v.as_u64());
    let wire: Wire = match serde_json::from_value(value) {
        Ok(w) => w,
        Err(e) => return (id, Err(format!("not a command: {e}"))),
    };
    let command = match wire {
        Wire::Device { name, state } => {
            let device = layout.device_id(&name).ok_or_else(|| format!("unknown device {name}"));
            let state = match state.as_str() {
                "ON" => Ok(OnOff::On),
                "OFF" => Ok(OnOff::Off),
                other => Err(format!("unknown state {other} (ON or OFF)")),
            };
            device.and_then(|device| state.map(|state| Command::Track(Request::Device { device, state })))
        }
        Wire::Speed { train, speed_mm_s } => layout
            .train_id(&train)
            .map(|t| Command::Track(Request::Speed { train: t, speed: speed_mm_s }))
            .ok_or_else(|| format!("unknown train {train}")),
        Wire::Snapshot {} => Ok(Command::Snapshot),
        Wire::Operator { token, action } => crate::operator::Action::parse(&action)
            .map(|action| Command::Operator { token, action })
            .ok_or_else(|| format!("unknown operator action {action} (live, live_force, sim, emergency_stop, reset)")),
    };
    (id, command)
}

/// `{"type": "ack", "id": ...}`.
pub fn ack(id: u64) -> String {
    json!({ "type": "ack", "id": id }).to_string()
}

/// `{"type": "rejected", ...}`: the interlocking's refusal.
pub fn rejected(id: u64, rule: &str, reason: &str) -> String {
    json!({ "type": "rejected", "id": id, "rule": rule, "reason": reason }).to_string()
}

/// `{"type": "failed", ...}`: allowed but not carried out.
pub fn failed(id: u64, reason: &str) -> String {
    json!({ "type": "failed", "id": id, "reason": reason }).to_string()
}

/// `{"type": "ack", "id": ..., "detail": ...}`: an operator action done, with what it did.
pub fn done(id: u64, detail: &str) -> String {
    json!({ "type": "ack", "id": id, "detail": detail }).to_string()
}

/// `{"type": "denied", ...}`: an operator action without the right token.
pub fn denied(id: u64) -> String {
    json!({ "type": "denied", "id": id, "reason": "operator actions need the operator token" }).to_string()
}

/// `{"type": "error", ...}`: not a command.
pub fn error(id: Option<u64>, reason: &str) -> String {
    json!({ "type": "error", "id": id, "reason": reason }).to_string()
}

/// `{"type": "device", ...}`: a device's new state (`null` when stuck between positions).
pub fn device(name: &str, state: Option<OnOff>) -> String {
    let state = state.map(|s| if s == OnOff::On { "ON" } else { "OFF" });
    json!({ "type": "device", "name": name, "state": state }).to_string()
}

/// `{"type": "event", ...}`: something that happened, in words.
pub fn event(kind: &str, text: &str) -> String {
    json!({ "type": "event", "kind": kind, "text": text }).to_string()
}

/// `{"type": "event", "kind": "sensor", "sensor": ..., "train": ..., ...}`: a train passed a hall sensor.
pub fn sensor_event(sensor: &str, train: &str, text: &str) -> String {
    json!({ "type": "event", "kind": "sensor", "sensor": sensor, "train": train, "text": text }).to_string()
}
