//! The 2021 browser protocols, `/ws` and `/speed`: JSON text frames, wire-compatible with the 2021 page.
//!
//! - `/ws`, both ways, a device: `{"station_name": "chofu_b1", "state": "ON"}`. A client sends one to operate a
//!   device; the server sends one for every command carried out (also when the device already had that
//!   state), for every change, and every device's state every 2 seconds.
//! - `/speed`, both ways, a speed: `{"train_name": "TAKAO", "speed": 50}`, 0..100 (the page's slider, steps of
//!   5; negative with its reverse handle). The server sends every train's speed on connect and one for every
//!   speed command carried out. `/ws` takes speed frames too.
//! - Server to client, anything refused or not understood: `{"error": "..."}` (the 2021 page ignores it, so
//!   a refused command is also answered with the device's or train's frame as it is now).
//!
//! The phone page of the twin speaks v2 ([`super::v2`]); the 2021 page speaks this.

use serde::{Deserialize, Serialize};
use sim::layout::OnOff;

/// A device's state, either way. The name is a `String`, or a `&str` borrowed from the text to read many frames
/// without allocating (the load tool's clients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFrame<S = String> {
    /// The device's name in the layout (`chofu_b1`).
    pub station_name: S,
    /// Its state.
    pub state: OnOff,
}

/// A train's speed, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedFrame {
    /// The train's name in the layout (`TAKAO`).
    pub train_name: String,
    /// The speed, -100..100 (percent of the train's top speed; negative: reverse).
    pub speed: i64,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Operate a device.
    Device(DeviceFrame),
    /// Set a train's speed.
    Speed(SpeedFrame),
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerFrame {
    /// A device's state.
    Device(DeviceFrame),
    /// A train's speed.
    Speed(SpeedFrame),
    /// Something refused or not understood, in words.
    Error {
        /// Why.
        error: String,
    },
}

impl ClientFrame {
    /// Reads a client frame, or says in words why it is not one. The keys decide the kind, so that the error
    /// names what is wrong with the frame the client meant to send.
    pub fn decode(text: &str) -> Result<ClientFrame, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| "not a JSON frame".to_string())?;
        if value.get("station_name").is_some() {
            if let Some(reason) = super::unknown_state(&value) {
                return Err(reason);
            }
            return serde_json::from_value(value)
                .map(ClientFrame::Device)
                .map_err(|e| format!("bad device frame: {e}"));
        }
        if value.get("train_name").is_some() {
            return serde_json::from_value(value).map(ClientFrame::Speed).map_err(|e| format!("bad speed frame: {e}"));
        }
        Err("a frame needs station_name and state, or train_name and speed".to_string())
    }

    /// The frame as JSON text.
    pub fn encode(&self) -> String {
        match self {
            ClientFrame::Device(d) => super::encode(d),
            ClientFrame::Speed(s) => super::encode(s),
        }
    }
}

impl ServerFrame {
    /// A device's state.
    pub fn device(name: &str, state: OnOff) -> ServerFrame {
        ServerFrame::Device(DeviceFrame { station_name: name.to_string(), state })
    }

    /// A train's speed.
    pub fn speed(name: &str, speed: i32) -> ServerFrame {
        ServerFrame::Speed(SpeedFrame { train_name: name.to_string(), speed: speed.into() })
    }

    /// An error.
    pub fn error(reason: impl Into<String>) -> ServerFrame {
        ServerFrame::Error { error: reason.into() }
    }

    /// Reads a server frame.
    pub fn decode(text: &str) -> Result<ServerFrame, String> {
        serde_json::from_str(text).map_err(|e| format!("not a 2021 server frame: {e}"))
    }

    /// The frame as JSON text.
    pub fn encode(&self) -> String {
        super::encode(self)
    }
}
