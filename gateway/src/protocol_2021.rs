//! The 2021 protocol's logic on `/ws`, as plain functions over its typed frames ([`crate::wire::v2021`]): what
//! a client frame asks, and what the client is told about it. A device command that is carried out is
//! answered by the device's frame on the feed, as in 2021; anything refused gets an error frame.

use hil::track::Outcome;
use sim::interlocking::Request;
use sim::layout::Layout;

use crate::session::Step;
use crate::wire::v2021::{ClientFrame, ServerFrame};

/// The highest speed level of the 2021 speed frames: level n runs a train at n/10 of its top speed.
pub const SPEED_LEVELS: i64 = 10;

/// What a client frame asks.
pub fn read(layout: &Layout, text: &str) -> Step {
    match request(layout, text) {
        Ok(request) => Step::Track { id: None, request },
        Err(reason) => Step::Reply(error(&reason)),
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
            let speed = speed_mm_s(layout, train, f.speed)?;
            Ok(Request::Speed { train, speed })
        }
    }
}

/// A 2021 speed level as a speed in mm/s for `train`.
pub fn speed_mm_s(layout: &Layout, train: usize, level: i64) -> Result<i32, String> {
    if !(0..=SPEED_LEVELS).contains(&level) {
        return Err(format!("speed {level} is out of range 0..{SPEED_LEVELS}"));
    }
    Ok((layout.trains[train].max_speed as i64 * level / SPEED_LEVELS) as i32)
}

/// What the client is told of a command's outcome (nothing when it was carried out: the feed shows it).
pub fn answer(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Applied => None,
        Outcome::Rejected(r) => Some(error(&r.message)),
        Outcome::Failed(reason) => Some(error(reason)),
    }
}

/// An error frame.
pub fn error(reason: &str) -> String {
    ServerFrame::error(reason).encode()
}
