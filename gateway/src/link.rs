//! The one interface between the doors and a track: what a WebSocket session, gRPC, the HTTP API and the video
//! doors need of it. Two implementations: the track in this process ([`crate::local::Local`]) and a track
//! reached over an MQTT broker ([`crate::broker::edge::Edge`]). No door knows which it has.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use wire::record::Caller;

use hil::track::Outcome;
use sim::interlocking::Request;
use sim::layout::Layout;

use crate::feeds::Feeds;
use wire::v2::{OperatorAction, State};

/// A future a [`Link`] returns (boxed, so that a door can hold any link).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What became of an operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operated {
    /// Without the operator token: nothing done.
    Denied,
    /// Done; what it did, in words.
    Done(String),
    /// Not (wholly) done; why, in words.
    Failed(String),
}

/// What the doors need of a track (see the module documentation).
pub trait Link: Send + Sync + 'static {
    /// The layout the track runs.
    fn layout(&self) -> &Arc<Layout>;

    /// The feeds of the track's changes, encoded once per protocol.
    fn feeds(&self) -> &Feeds;

    /// Carries out a command: its outcome once it is known (and, where there is a journal, recorded).
    fn apply(&self, request: Request, caller: Caller) -> Pending<'_, Outcome>;

    /// Performs an operator action if `token` is the operator token (the track's side alone decides).
    fn operate(&self, token: String, action: OperatorAction) -> Pending<'_, Operated>;

    /// The whole track as it is now; `None` once the track is stopped (the doors' background tasks end then).
    fn snapshot(&self) -> Pending<'_, Option<State>>;
}
