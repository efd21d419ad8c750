//! The 2023 boards' MQTT protocol as plain data (`ueckoken/plarail2023`, festival build `7beb801`): the topics
//! `{target}/{id}/{method}[/accepted]`, the payload words, and what the twin (in the 2023 state manager's
//! place) reads from a board's message. QoS 0, nothing retained, plain ASCII words, no JSON on the control
//! path.

use sim::layout::OnOff;

/// The word a stop rail is told to go (bar down).
pub const STOP_GO: &str = "STOP_STATE_GO";
/// The word a stop rail is told to stop (bar up).
pub const STOP_STOP: &str = "STOP_STATE_STOP";
/// The word a point is told to lie straight.
pub const POINT_NORMAL: &str = "POINT_STATE_NORMAL";
/// The word a point is told to turn.
pub const POINT_REVERSE: &str = "POINT_STATE_REVERSE";
/// A block's entry detector's report: a train is in the block.
pub const BLOCK_CLOSE: &str = "CLOSE";
/// A block's exit detector's report: the block is free.
pub const BLOCK_OPEN: &str = "OPEN";

/// What a topic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A point (switch): `point/`.
    Point,
    /// A stop rail: `stop/`.
    Stop,
    /// A block: `block/`.
    Block,
}

/// A 2023 device as the boards name it: its kind and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device2023 {
    /// Point or stop rail.
    pub target: Target,
    /// Its id as 2023 spelled it.
    pub id: String,
}

impl Target {
    /// Its first topic level.
    pub fn word(self) -> &'static str {
        match self {
            Target::Point => "point",
            Target::Stop => "stop",
            Target::Block => "block",
        }
    }
}

/// The payload word for a device's state: a stop rail ON (raised) is `STOP_STATE_STOP`, OFF (lowered) is
/// `STOP_STATE_GO`; a point ON (diverging) is `POINT_STATE_REVERSE`, OFF (straight) is `POINT_STATE_NORMAL`.
pub fn state_word(target: Target, state: OnOff) -> &'static str {
    match (target, state) {
        (Target::Stop, OnOff::On) => STOP_STOP,
        (Target::Stop, OnOff::Off) => STOP_GO,
        (_, OnOff::On) => POINT_REVERSE,
        (_, OnOff::Off) => POINT_NORMAL,
    }
}

/// The topic that tells the boards a device's state changed (`…/delta`).
pub fn delta_topic(target: Target, id: &str) -> String {
    format!("{}/{id}/delta", target.word())
}

/// The topic that answers a board's `get` (`…/get/accepted`).
pub fn get_accepted_topic(target: Target, id: &str) -> String {
    format!("{}/{id}/get/accepted", target.word())
}

/// What a message from a board says, as the twin reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromBoard {
    /// A board asks a device's state (`point/{id}/get`, `stop/{id}/get`; the payload, `get`, is not read).
    Get(Target, String),
    /// A detector reports its block: `true` for `CLOSE` (occupied), `false` for `OPEN`.
    Block(String, bool),
    /// The twin's own `…/delta` or `…/get/accepted` coming back on a wildcard subscription: nothing to do.
    Echo,
}

/// Why a message is not one the twin acts on (counted and logged; it changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Fewer than three levels, an empty id, or more levels than the grammar has.
    Topic(String),
    /// A target other than `point`, `stop`, `block`.
    Target(String),
    /// A method the target does not have (`point/x/update`, `block/x/delta`, …).
    Method(String),
    /// A block report other than `OPEN` or `CLOSE`.
    Word(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Topic(t) => write!(f, "`{t}` is not target/id/method"),
            Unreadable::Target(t) => write!(f, "`{t}`: no such target (point, stop, block)"),
            Unreadable::Method(t) => write!(f, "`{t}`: the target has no such method"),
            Unreadable::Word(w) => write!(f, "`{w}` is not OPEN or CLOSE"),
        }
    }
}

/// Largest payload read (a board's words are at most 19 bytes; a longer one is counted, never parsed).
pub const MAX_PAYLOAD: usize = 64;

/// Reads a message a board (or anyone) published.
pub fn read(topic: &str, payload: &[u8]) -> Result<FromBoard, Unreadable> {
    let levels: Vec<&str> = topic.split('/').collect();
    let (target, id, method) = match levels.as_slice() {
        [target, id, method] | [target, id, method, "accepted"] if !id.is_empty() => (*target, *id, *method),
        _ => return Err(Unreadable::Topic(topic.into())),
    };
    let target = match target {
        "point" => Target::Point,
        "stop" => Target::Stop,
        "block" => Target::Block,
        other => return Err(Unreadable::Target(other.into())),
    };
    let accepted = levels.len() == 4;
    match (target, method, accepted) {
        (Target::Point | Target::Stop, "get", false) => Ok(FromBoard::Get(target, id.into())),
        (Target::Point | Target::Stop, "delta", false) | (Target::Point | Target::Stop, "get", true) => {
            Ok(FromBoard::Echo)
        }
        (Target::Block, "update", false) => {
            if payload.len() > MAX_PAYLOAD {
                return Err(Unreadable::Word(format!("{} bytes", payload.len())));
            }
            match payload {
                b"CLOSE" => Ok(FromBoard::Block(id.into(), true)),
                b"OPEN" => Ok(FromBoard::Block(id.into(), false)),
                other => Err(Unreadable::Word(String::from_utf8_lossy(other).into_owned())),
            }
        }
        _ => Err(Unreadable::Method(topic.into())),
    }
}
