//! The v2 protocol's logic on `/ws/v2`, as plain functions over its typed frames ([`wire::v2`]): what a
//! client frame asks, and the answer that repeats its id.

use hil::track::Outcome;
use sim::interlocking::Request;
use sim::layout::Layout;

use crate::link::Operated;
use crate::step::Step;
use wire::v2::{ClientFrame, Command, ServerFrame, State};

/// What a client frame asks.
pub fn read(layout: &Layout, text: &str) -> Step {
    let (id, command) = ClientFrame::decode(text);
    let (id, command) = match (id, command) {
        (_, Err(reason)) => return Step::Reply(error(id, &reason)),
        (None, Ok(_)) => return Step::Reply(error(None, "a command needs an id")),
        (Some(id), Ok(command)) => (id, command),
    };
    let track = |request| Step::Track { id: Some(id), request };
    match command {
        Command::Snapshot {} => Step::Snapshot,
        Command::Operator { token, action } => Step::Operator { id, token, action },
        Command::Device { name, state } => match layout.device_id(&name) {
            Some(device) => track(Request::Device { device, state }),
            None => Step::Reply(error(Some(id), &format!("unknown device {name}"))),
        },
        Command::Speed { train: name, speed } => match layout.train_id(&name) {
            Some(train) => track(Request::Speed { train, speed }),
            None => Step::Reply(error(Some(id), &format!("unknown train {name}"))),
        },
    }
}

/// The answer to command `id`.
pub fn answer(id: u64, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Applied => ServerFrame::Ack { id, detail: None },
        Outcome::Rejected(r) => ServerFrame::Rejected { id, rule: r.kind.label().into(), reason: r.message.clone() },
        Outcome::Failed(reason) => ServerFrame::Failed { id, reason: reason.to_string() },
    }
    .encode()
}

/// The answer to operator action `id`.
pub fn operated(id: u64, result: Operated) -> String {
    match result {
        Operated::Denied => ServerFrame::Denied { id, reason: "operator actions need the operator token".into() },
        Operated::Done(detail) => ServerFrame::Ack { id, detail: Some(detail) },
        Operated::Failed(reason) => ServerFrame::Failed { id, reason },
    }
    .encode()
}

/// An error frame: not a command, or over the limits.
pub fn error(id: Option<u64>, reason: &str) -> String {
    ServerFrame::Error { id, reason: reason.into() }.encode()
}

/// The snapshot frame.
pub fn snapshot(state: State) -> String {
    ServerFrame::Snapshot(state).encode()
}

#[cfg(test)]
mod tests;
