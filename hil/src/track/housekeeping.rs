//! Board housekeeping: each board's task polls its health and carries out its restore steps, giving way to
//! commands.

use std::time::Instant;

use sim::layout::{BoardId, BoardKind};

use super::Inner;
use super::command::{Attempts, control, drive};
use super::core::{Next, Poll, RestoreStep};
use crate::boards2021::client::Priority;
use crate::boards2021::protocol::BoardCommand;

/// One servo board's (or controller's) task: polls its health every `health_every` and carries out its
/// restore steps as the core asks for them, until the track is dropped. Both give way to commands.
pub(super) async fn run_board(inner: std::sync::Weak<Inner>, board: BoardId) {
    let mut next_poll = Instant::now();
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let now = Instant::now();
        let next = strong.core().next(board, now);
        let wake_at = match next {
            Next::Step(step, number) => {
                // A step that gave way to a command is taken again (after the command).
                if let Some(ok) = restore_step(&strong, board, step).await {
                    let changed = strong.core().step_done(board, number, ok, Instant::now());
                    strong.announce(changed);
                    strong.restored.notify_waiters();
                }
                continue;
            }
            Next::At(at) => at.min(next_poll),
            Next::Idle => next_poll,
        };
        if now >= next_poll {
            if let Some((alive, rebooted)) = poll(&strong, board).await {
                let changed = strong.core().polled(board, alive, rebooted, Instant::now());
                strong.announce(changed);
            }
            next_poll = Instant::now() + strong.config.health_every;
            continue;
        }
        let wake = async { strong.wake[&board].notified().await };
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at.into()) => {}
            _ = wake => {}
        }
    }
}

/// Carries out one restore step as housekeeping; whether the board took it, or `None` if it gave way to a
/// command.
async fn restore_step(inner: &Inner, board: BoardId, step: RestoreStep) -> Option<bool> {
    let (address, _) = inner.target(board);
    match step {
        RestoreStep::SetClock => {
            let turn = inner.client.turn(&address, Priority::Housekeeping).await;
            let set = BoardCommand::SetClock { unix: unix_now() };
            turn.unless_preempted(turn.send(&set)).await.map(|r| r.is_ok())
        }
        RestoreStep::Device(device) => {
            let turn = inner.client.turn(&address, Priority::Housekeeping).await;
            // Read in the turn: a command for the device before it is not undone.
            let state = inner.core().desired(device);
            turn.unless_preempted(drive(inner, &turn, device, state, Attempts::Retries)).await.map(|r| r.is_ok())
        }
        RestoreStep::Speed(train) => {
            let speed = inner.core().controller_speed_now(train);
            Some(control(inner, train, speed).await.is_ok())
        }
    }
}

/// The time now in unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A health poll of `board` as the core says ([`Poll`]), as housekeeping: whether it answered, and whether its
/// clock shows a reboot; `None` if it gave way to a command. A servo board with devices has one of them driven
/// to its desired state (nothing moves if it is there); one being restored, or down, has its clock set; a
/// speed controller is asked for a connection.
pub(super) async fn poll(inner: &Inner, board: BoardId) -> Option<(bool, bool)> {
    let (address, _) = inner.target(board);
    let poll = inner.core().poll(board);
    match poll {
        Poll::Connect => Some((inner.speed.reachable(&address).await, false)),
        Poll::Clock => Some((inner.client.probe(&address, unix_now()).await?.is_ok(), false)),
        Poll::Device(device) => {
            let turn = inner.client.turn(&address, Priority::Housekeeping).await;
            let state = inner.core().desired(device);
            let result = turn.unless_preempted(drive(inner, &turn, device, state, Attempts::One)).await?;
            // `drive` restored a board whose clock showed a reboot; an answer of any kind means it is there.
            Some((result.as_ref().map_or_else(|f| !f.transient(), |_| true), false))
        }
    }
}

/// Whether the board or controller at `address` answers, by a request that moves nothing (the check before a
/// switch of mode).
pub(super) async fn reachable(inner: &Inner, board: BoardId, address: &str) -> bool {
    if inner.layout.boards[board].kind == BoardKind::Speed {
        return inner.speed.reachable(address).await;
    }
    loop {
        if let Some(result) = inner.client.probe(address, unix_now()).await {
            return result.is_ok();
        }
    }
}
