//! The 2021 protocols' logic on `/ws` and `/speed`, as plain functions over their typed frames
//! ([`wire::v2021`]): what a client frame asks, and what the client is told about it. A command that is
//! carried out is answered by its frame on the feed, as in 2021; anything refused gets an error frame and,
//! since the 2021 page ignores error frames, the device's or train's frame as it is now.

use hil::track::Outcome;
use sim::interlocking::{FULL_SPEED, Request};
use sim::layout::Layout;

use crate::step::Step;
use wire::v2021::{ClientFrame, ServerFrame};

/// What a client frame asks.
pub fn read(layout: &Layout, text: &str) -> Step {
    match request(layout, text) {
        Ok(request) => Step::Track { id: None, request },
        Err(reason) => Step::Reply(error(&reason)),
    }
}

/// What a frame on the `/speed` socket asks (speed frames only, as the 2021 speed server took).
pub fn read_speed(layout: &Layout, text: &str) -> Step {
    match ClientFrame::decode(text) {
        Ok(ClientFrame::Device(_)) => Step::Reply(error("the /speed socket takes speed frames; devices go to /ws")),
        _ => read(layout, text),
    }
}

/// The track request a client frame asks for, or why it cannot be one.
pub fn request(layout: &Layout, text: &str) -> Result<Request, String> {
    match ClientFrame::decode(text)? {
        ClientFrame::Device(f) => {
            let device =
                layout.device_id(&f.station_name).ok_or_else(|| format!("unknown device {}", f.station_name))?;
            Ok(Request::Device { device, state: f.state })
        }
        ClientFrame::Speed(f) => {
            let train = layout.train_id(&f.train_name).ok_or_else(|| format!("unknown train {}", f.train_name))?;
            let speed = speed(f.speed)?;
            Ok(Request::Speed { train, speed })
        }
    }
}

/// A 2021 speed, checked against the scale.
pub fn speed(speed: i64) -> Result<i32, String> {
    match i32::try_from(speed) {
        Ok(s) if s.abs() <= FULL_SPEED => Ok(s),
        _ => Err(format!("speed {speed} is out of range -{FULL_SPEED}..{FULL_SPEED}")),
    }
}

/// What the client is told of a command's outcome (nothing when it was carried out: the feed shows it).
pub fn answer(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Applied => None,
        Outcome::Rejected(r) => Some(error(&r.message)),
        Outcome::Failed(reason) => Some(error(&reason.to_string())),
    }
}

/// An error frame.
pub fn error(reason: &str) -> String {
    ServerFrame::error(reason).encode()
}

#[cfg(test)]
mod tests;
