//! The 2021 browser protocol on `/ws`, as plain functions over text frames.
//!
//! Both directions carry JSON text frames `{"station_name": "chofu_b1", "state": "ON"}`. A client sends one to
//! operate a device; the server sends one for every change, and every device's state every 2 seconds. Speed
//! control is `{"train_name": "TAKAO", "speed": 8}`, with the speed as a level from 0 (stopped) to
//! [`SPEED_LEVELS`] (the train's top speed). Anything else gets an error frame `{"error": "..."}` and is
//! otherwise ignored.

use serde::Deserialize;
use serde_json::Value;
use sim::interlocking::Request;
use sim::layout::{Layout, OnOff};

/// The highest speed level of the 2021 speed frames: level n runs a train at n/10 of its top speed.
pub const SPEED_LEVELS: i64 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFrame {
    station_name: String,
    state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpeedFrame {
    train_name: String,
    speed: i64,
}

/// Reads a client frame into a track request, or says in words why it cannot be one.
pub fn parse(layout: &Layout, text: &str) -> Result<Request, String> {
    let value: Value = serde_json::from_str(text).map_err(|_| "not a JSON frame".to_string())?;
    if value.get("station_name").is_some() {
        let f: DeviceFrame = serde_json::from_value(value).map_err(|e| format!("bad device frame: {e}"))?;
        let device = layout.device_id(&f.station_name).ok_or_else(|| format!("unknown device {}", f.station_name))?;
        let state = match f.state.as_str() {
            "ON" => OnOff::On,
            "OFF" => OnOff::Off,
            other => return Err(format!("unknown state {other} (ON or OFF)")),
        };
        return Ok(Request::Device { device, state });
    }
    if value.get("train_name").is_some() {
        let f: SpeedFrame = serde_json::from_value(value).map_err(|e| format!("bad speed frame: {e}"))?;
        let train = layout.train_id(&f.train_name).ok_or_else(|| format!("unknown train {}", f.train_name))?;
        if !(0..=SPEED_LEVELS).contains(&f.speed) {
            return Err(format!("speed {} is out of range 0..{SPEED_LEVELS}", f.speed));
        }
        let speed = (layout.trains[train].max_speed as i64 * f.speed / SPEED_LEVELS) as i32;
        return Ok(Request::Speed { train, speed });
    }
    Err("a frame needs station_name and state, or train_name and speed".to_string())
}

/// The frame announcing a device's state.
pub fn device_frame(name: &str, state: OnOff) -> String {
    let state = match state {
        OnOff::On => "ON",
        OnOff::Off => "OFF",
    };
    serde_json::json!({ "station_name": name, "state": state }).to_string()
}

/// An error frame.
pub fn error_frame(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}
