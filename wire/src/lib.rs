//! Every frame the gateway's WebSockets carry, as typed data: the 2021 protocol on `/ws` ([`v2021`]) and the
//! v2 protocol on `/ws/v2` ([`v2`]), and what the journal records of a session ([`record`]). One definition of each frame serves the server, the desktop window's
//! gateway client and the load tool; the phone page (`gateway/src/page/page.js`) reads and writes the same frames, as each
//! module's documentation says. No IO here: text in, typed frames out, and back.
//!
//! The words of the protocols are defined once, by serde on the types they name: ON/OFF on
//! [`sim::layout::OnOff`], a train's status on [`sim::twin::TrainStatus`], the mode on [`sim::twin::Mode`],
//! a device's kind on [`sim::layout::DeviceKind`].

pub mod record;
pub mod v2;
pub mod v2021;

/// Encodes a frame as JSON text. Frames are plain data (strings, numbers, enums): encoding cannot fail.
pub fn encode<T: serde::Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).expect("frames are plain data")
}

/// A word of the protocols (`ON`, `live`, `running`) as a bare string: what serde calls a unit variant.
pub fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(word)) => word,
        _ => panic!("not a word of the protocols"),
    }
}

/// Says which state word of a frame is not ON or OFF, if that is what is wrong with it.
fn unknown_state(frame: &serde_json::Value) -> Option<String> {
    let word = frame.get("state")?.as_str()?;
    let known = serde_json::from_value::<sim::layout::OnOff>(serde_json::Value::from(word)).is_ok();
    (!known).then(|| format!("unknown state {word} (ON or OFF)"))
}

#[cfg(test)]
mod tests;
