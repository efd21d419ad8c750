//! The client that drives servo boards over HTTP, real or virtual alike.
//!
//! One request at a time per board (the firmware serves one client at a time), a timeout per attempt, bounded
//! retries with backoff for failures that may pass (unreachable, timeout, a bad answer), and every failure
//! classified. Success only on a 2xx answer with `"status":"OK"`.
//!
//! A board's requests take turns ([`BoardClient::turn`]); a command's turn comes before housekeeping's (health
//! polls, restores): a command that wants the board makes the housekeeping request holding it give way at once
//! ([`Turn::unless_preempted`]), so no command waits behind housekeeping stuck in a timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedMutexGuard};

use sim::layout::{Device, OnOff};

use crate::boards2021::protocol::{Answer, BoardCommand, ServoOp};

/// Why a board command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No connection could be made.
    #[error("board {0} unreachable")]
    Unreachable(String),
    /// No answer within the timeout.
    #[error("board {0} did not answer in time")]
    Timeout(String),
    /// The board says the pin is not a servo (404).
    #[error("board {0} refused the pin (invalid GPIO pin)")]
    RejectedPin(String),
    /// The board says the operation is invalid (400).
    #[error("board {0} refused the operation (invalid operation)")]
    RejectedOperation(String),
    /// An answer the firmware never gives.
    #[error("board {board} gave a bad answer: {detail}")]
    BadAnswer {
        /// Board address.
        board: String,
        /// What came back.
        detail: String,
    },
    /// A speed controller answered, but not `SUCCESS`.
    #[error("speed controller {board} answered {answer}")]
    Refused {
        /// Controller address.
        board: String,
        /// The answer's code.
        answer: String,
    },
}

impl Failure {
    /// Whether the board may have carried the command out although it failed: it got the request, but the
    /// answer did not come in time or could not be read.
    pub fn uncertain(&self) -> bool {
        matches!(self, Failure::Timeout(_) | Failure::BadAnswer { .. })
    }

    /// Whether trying again may help.
    pub(crate) fn transient(&self) -> bool {
        matches!(self, Failure::Unreachable(_) | Failure::Timeout(_) | Failure::BadAnswer { .. })
    }
}

/// Client settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientConfig {
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Attempts after the first one for transient failures.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig { timeout: Duration::from_millis(500), retries: 2, backoff: Duration::from_millis(50) }
    }
}

/// Makes attempts until one succeeds or fails for good: a failure that may pass is tried again, up to
/// `config.retries` more times, after a backoff that doubles each time.
pub(crate) async fn with_retries<T, F: Future<Output = Result<T, Failure>>>(
    config: &ClientConfig,
    mut attempt: impl FnMut() -> F,
) -> Result<T, Failure> {
    let mut wait = config.backoff;
    let mut retried = 0;
    loop {
        match attempt().await {
            Err(f) if f.transient() && retried < config.retries => {
                retried += 1;
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
}

/// The servo command the 2021 server sent for a device state: `ANGLE` with the device's ON or OFF angle.
pub fn servo_command(device: &Device, state: OnOff) -> BoardCommand {
    let angle = match state {
        OnOff::On => device.on_angle,
        OnOff::Off => device.off_angle,
    };
    BoardCommand::Servo { pin: device.pin, op: ServoOp::Angle(angle) }
}

/// One board's turns: a request at a time, commands first.
#[derive(Default)]
struct Queue {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Commands waiting for the turn.
    commands_waiting: AtomicUsize,
    /// Told when a command starts waiting.
    command_waits: Notify,
}

/// Drives boards by address (`host:port`).
#[derive(Clone)]
pub struct BoardClient {
    http: reqwest::Client,
    config: ClientConfig,
    queues: Arc<Mutex<HashMap<String, Arc<Queue>>>>,
}

/// Who wants a board's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A command (a visitor's, an operator's or the interlocking's protection): housekeeping gives way to it.
    Command,
    /// Health polls and restores: gives way to commands.
    Housekeeping,
}

/// A board's turn: while it is held, no other request goes to the board.
pub struct Turn {
    client: BoardClient,
    board: String,
    queue: Arc<Queue>,
    _held: OwnedMutexGuard<()>,
}

impl Turn {
    /// Sends a command (with retries) and returns the board's clock from its answer, or why it failed.
    pub async fn send(&self, cmd: &BoardCommand) -> Result<i64, Failure> {
        with_retries(&self.client.config, || self.attempt(cmd)).await
    }

    /// One attempt at a command.
    pub async fn attempt(&self, cmd: &BoardCommand) -> Result<i64, Failure> {
        self.client.attempt(&self.board, cmd).await
    }

    /// Housekeeping's `work` in this turn, or `None` if a command came for the board meanwhile (the work is
    /// dropped at once: its request is abandoned).
    pub async fn unless_preempted<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            out = work => Some(out),
            _ = self.preempted() => None,
        }
    }

    /// Resolves when a command is waiting for this board: housekeeping holding the turn should give way.
    async fn preempted(&self) {
        loop {
            let notified = self.queue.command_waits.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queue.commands_waiting.load(Ordering::SeqCst) > 0 {
                return;
            }
            notified.await;
        }
    }
}

impl BoardClient {
    /// A client with the given settings.
    pub fn new(config: ClientConfig) -> BoardClient {
        let http = reqwest::Client::builder().timeout(config.timeout).build().expect("HTTP client without TLS");
        BoardClient { http, config, queues: Arc::default() }
    }

    fn queue(&self, board: &str) -> Arc<Queue> {
        self.queues.lock().expect("queue map").entry(board.to_string()).or_default().clone()
    }

    /// Waits for the board at `board`'s turn; a command's wait makes housekeeping give way.
    pub async fn turn(&self, board: &str, priority: Priority) -> Turn {
        let queue = self.queue(board);
        let held = if priority == Priority::Command {
            queue.commands_waiting.fetch_add(1, Ordering::SeqCst);
            queue.command_waits.notify_waiters();
            let held = queue.turn.clone().lock_owned().await;
            queue.commands_waiting.fetch_sub(1, Ordering::SeqCst);
            held
        } else {
            queue.turn.clone().lock_owned().await
        };
        Turn { client: self.clone(), board: board.to_string(), queue, _held: held }
    }

    /// Sends a command to the board at `board` in its turn and returns the board's clock from its answer, or
    /// why it failed.
    pub async fn send(&self, board: &str, cmd: &BoardCommand) -> Result<i64, Failure> {
        self.turn(board, Priority::Command).await.send(cmd).await
    }

    async fn attempt(&self, board: &str, cmd: &BoardCommand) -> Result<i64, Failure> {
        let response = self
            .http
            .post(format!("http://{board}/"))
            .header("content-type", "application/json")
            .body(cmd.encode())
            .send()
            .await
            .map_err(|e| classify(board, &e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| classify(board, &e))?;
        match Answer::decode(status, &body) {
            Ok(Answer::Ok { last_update }) => Ok(last_update),
            Ok(Answer::InvalidPin) => Err(Failure::RejectedPin(board.to_string())),
            Ok(Answer::InvalidOperation) => Err(Failure::RejectedOperation(board.to_string())),
            Err(e) => Err(Failure::BadAnswer { board: board.to_string(), detail: e.to_string() }),
        }
    }

    /// Whether the board is alive: one attempt at setting its clock to `unix` (`pin: -1`), which the firmware
    /// answers with 200 and the time it was given, and which moves no servo. Housekeeping: `None` when a
    /// command came for the board meanwhile. (The 2021 server polled `GET /health`, which the firmware does not
    /// serve: it registered `/health` for POST only, answered with 404.)
    pub async fn probe(&self, board: &str, unix: u64) -> Option<Result<i64, Failure>> {
        let turn = self.turn(board, Priority::Housekeeping).await;
        turn.unless_preempted(turn.attempt(&BoardCommand::SetClock { unix })).await
    }
}

fn classify(board: &str, e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout(board.to_string())
    } else if e.is_connect() {
        Failure::Unreachable(board.to_string())
    } else {
        Failure::BadAnswer { board: board.to_string(), detail: e.to_string() }
    }
}
