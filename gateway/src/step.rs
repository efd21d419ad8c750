//! What a client frame asks, as a protocol's plain functions read it ([`crate::protocol_2021`],
//! [`crate::protocol_v2`]) and the session driver carries it out ([`crate::session`]).

use sim::interlocking::Request;

use wire::v2::OperatorAction;

/// What a client frame asks, as a protocol reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to carry out: answer with this frame (a frame that is no command).
    Reply(String),
    /// Carry out a track request; `id` is the command's id where the protocol has one.
    Track {
        /// The command's id.
        id: Option<u64>,
        /// The request.
        request: Request,
    },
    /// Perform an operator action.
    Operator {
        /// The command's id.
        id: u64,
        /// The token the client sent.
        token: String,
        /// The action.
        action: OperatorAction,
    },
    /// Send a snapshot.
    Snapshot,
}
