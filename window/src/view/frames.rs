//! A view attached to a gateway: the v2 protocol's frames, read into a [`Picture`] and written from
//! [`Action`]s, as plain functions over JSON text.

use serde_json::{Value, json};

use super::{Action, Picture, TrainView};
use crate::layout::OnOff;

/// The v2 frame asking for `action`, with command `id` (operator actions carry `token`).
pub fn command(picture: &Picture, action: Action, id: u64, token: &str) -> String {
    let on_off = |s: OnOff| if s == OnOff::On { "ON" } else { "OFF" };
    match action {
        Action::Device { device, state } => {
            json!({ "id": id, "cmd": "device", "name": picture.drawing.devices[device].name, "state": on_off(state) })
        }
        Action::Speed { train, speed } => {
            json!({ "id": id, "cmd": "speed", "train": picture.drawing.trains[train].name, "speed_mm_s": speed })
        }
        Action::EmergencyStop => json!({ "id": id, "cmd": "operator", "token": token, "action": "emergency_stop" }),
        Action::Live(live) => {
            json!({ "id": id, "cmd": "operator", "token": token, "action": if live { "live" } else { "sim" } })
        }
    }
    .to_string()
}

/// Reads a server frame into `picture`. A frame answering a command returns its id and the answer in words.
pub fn apply(picture: &mut Picture, text: &str) -> Result<Option<(u64, String)>, String> {
    let f: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON frame: {e}"))?;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match f["type"].as_str().unwrap_or_default() {
        "snapshot" => {
            picture.mode = s(&f["mode"]);
            picture.time_ms = f["time_ms"].as_u64().unwrap_or(picture.time_ms);
            for d in f["devices"].as_array().into_iter().flatten() {
                set_device(picture, d);
            }
            trains(picture, &f["trains"]);
            picture.boards = f["boards"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| (s(&b["name"]), b["alive"].as_bool().unwrap_or(false)))
                .collect();
        }
        "device" => set_device(picture, &f),
        "trains" => trains(picture, &f["trains"]),
        "board" => {
            let (name, alive) = (s(&f["name"]), f["alive"].as_bool().unwrap_or(false));
            picture.log(format!("board {name} {}", if alive { "answers" } else { "is DOWN" }));
            match picture.boards.iter_mut().find(|b| b.0 == name) {
                Some(b) => b.1 = alive,
                None => picture.boards.push((name, alive)),
            }
        }
        "mode" => {
            picture.mode = s(&f["mode"]);
            picture.log(format!("mode {}", picture.mode.to_uppercase()));
        }
        "event" => {
            if f["kind"] == "sensor"
                && let Some(sensor) = picture.drawing.sensors.iter().position(|x| x.name == s(&f["sensor"]))
            {
                let train = picture.drawing.trains.iter().position(|t| t.name == s(&f["train"]));
                picture.sensor_passed(sensor, train);
            }
            picture.log(s(&f["text"]));
        }
        kind @ ("ack" | "rejected" | "failed" | "denied" | "error") => {
            let words = match kind {
                "ack" => match f["detail"].as_str() {
                    Some(detail) => format!("applied: {detail}"),
                    None => "applied".into(),
                },
                "rejected" => format!("REJECTED ({}): {}", s(&f["rule"]), s(&f["reason"])),
                _ => format!("{}: {}", kind.to_uppercase(), s(&f["reason"])),
            };
            return Ok(f["id"].as_u64().map(|id| (id, words)));
        }
        other => return Err(format!("unknown frame type `{other}`")),
    }
    Ok(None)
}

fn set_device(picture: &mut Picture, d: &Value) {
    let state = match d["state"].as_str() {
        Some("ON") => Some(OnOff::On),
        Some("OFF") => Some(OnOff::Off),
        _ => None,
    };
    if let Some(i) = picture.drawing.devices.iter().position(|x| d["name"] == x.name.as_str()) {
        picture.devices[i] = state;
    }
}

fn trains(picture: &mut Picture, list: &Value) {
    for t in list.as_array().into_iter().flatten() {
        let Some(i) = picture.drawing.trains.iter().position(|x| t["name"] == x.name.as_str()) else { continue };
        let old = std::mem::take(&mut picture.trains[i]);
        picture.trains[i] = TrainView {
            front: [t["x"].as_f64().unwrap_or(0.0), t["y"].as_f64().unwrap_or(0.0)],
            body: Vec::new(),
            status: t["status"].as_str().unwrap_or("running").to_string(),
            speed: t["speed_mm_s"].as_u64().unwrap_or(0) as u32,
            set_speed: t["set_speed_mm_s"].as_i64().map_or(old.set_speed, |v| v as i32),
            position: format!(
                "{} at {:.0} mm",
                t["segment"].as_str().unwrap_or("?"),
                t["offset_mm"].as_f64().unwrap_or(0.0)
            ),
            last_sensor: old.last_sensor,
        };
    }
}
