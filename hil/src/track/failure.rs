//! Why a command the interlocking allowed was not carried out, as typed data: the doors turn it into words
//! (its `Display`), tests match its variants.

use sim::twin::SimError;

use crate::boards2021::client;

/// Why a command was not carried out (the interlocking's refusals are [`sim::interlocking::Rejection`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The simulation could not take it (it has stopped, as the track shuts down; or it refused it).
    #[error(transparent)]
    Simulation(#[from] SimError),
    /// The board is not answering: commands for its devices fail at once.
    #[error("board {board} is not answering")]
    BoardDown {
        /// The board's name.
        board: String,
    },
    /// The board's desired states are being re-sent.
    #[error("board {board} is being restored; try again shortly")]
    BoardRestoring {
        /// The board's name.
        board: String,
    },
    /// A train with no onboard speed controller runs at its own speed on the real track.
    #[error("{train} has no onboard speed controller: on the real track it runs at its own speed")]
    NoController {
        /// The train's name.
        train: String,
    },
    /// The board or controller did not take it (unreachable, no answer in time, refused, a bad answer).
    #[error(transparent)]
    Board(#[from] client::Failure),
    /// The board's answers were lost twice: it may have been carried out, and the device is made so as soon as
    /// the board answers.
    #[error(
        "{failure}; the command may have been carried out: {device} will be {will_be} as soon as the board answers"
    )]
    Uncertain {
        /// The last attempt's failure.
        failure: client::Failure,
        /// The device's name.
        device: String,
        /// Its commanded state in words ("raised", "set straight", ...).
        will_be: &'static str,
    },
    /// A device on a 2023 board, in live mode with no broker for the real boards.
    #[error("{device} is on MQTT board {board}, and the twin has no broker for it")]
    NoBroker {
        /// The device's name.
        device: String,
        /// Its board's name.
        board: String,
    },
    /// A 2023 board known to be away from its broker.
    #[error("board {board} is not connected to the broker")]
    NotConnected {
        /// The board's name.
        board: String,
    },
    /// The delta could not be handed to the broker's client.
    #[error("{device}: {error}")]
    NotPublished {
        /// The device's name.
        device: String,
        /// Why, in the MQTT client's words.
        error: String,
    },
    /// Told to the real 2023 board, but the mirror could not follow.
    #[error("told board {board}, but the mirror cannot follow: {error}")]
    MirrorBehind {
        /// The board's name.
        board: String,
        /// The simulation's error.
        error: SimError,
    },
    /// A virtual 2023 board did not move the device in time (sim mode).
    #[error(
        "{device} was told over MQTT but board {board} did not move it within {seconds} s; it is told again when the \
         board connects again"
    )]
    NotMoved {
        /// The device's name.
        device: String,
        /// Its board's name.
        board: String,
        /// How long it was given.
        seconds: u64,
    },
    /// Carried out on the track, but the journal could not record it.
    #[error("carried out on the track, but not recorded in the journal: {0}")]
    NotRecorded(String),
    /// An operator action without the operator token.
    #[error("operator actions need the operator token")]
    Denied,
    /// A failure another process told in words (an edge's command, carried out by the core).
    #[error("{0}")]
    Reported(String),
}
