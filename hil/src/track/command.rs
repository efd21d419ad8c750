//! The command path: a request checked by the interlocking, queued fairly per board, driven to its board or
//! controller, its outcome told; an unknown outcome protected until the device is known again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sim::interlocking::Request;
use sim::layout::{BoardKind, OnOff};
use sim::track::DevicePosition;
use sim::twin::{SimCommand, SimError};
use tokio::sync::oneshot;

use super::failure::Failure;
use super::sim_link::{sim_ack, sim_command, sim_send, try_state};
use super::{Inner, Mode, Outcome, TrackEvent, mqtt};
use crate::boards2021::client::{self, Priority, Turn, servo_command};

/// Carries out a request checked by the interlocking (see [`Track::apply`]), whoever asks it.
pub(super) async fn carry_out(inner: &Arc<Inner>, req: Request) -> Outcome {
    let _mode = inner.mode_lock.read().await;
    // A place among the device commands in flight (their combinations are checked).
    let _slot = match req {
        Request::Device { .. } => Some(inner.in_flight_slots.acquire().await.expect("never closed")),
        Request::Speed { .. } => None,
    };
    let checked = {
        let _check = inner.checking.lock().await;
        let Some(now) = try_state(inner).await else { return Outcome::Failed(SimError::Stopped.into()) };
        let pending: Vec<(usize, OnOff)> =
            inner.in_flight.lock().expect("in flight").iter().map(|&(_, d, s)| (d, s)).collect();
        if let Err(r) = inner.interlocking.check_pending(&req, &now, &pending) {
            return Outcome::Rejected(r);
        }
        match req {
            Request::Device { device, state } => {
                let board = inner.layout.devices[device].board;
                if let Err(reason) = inner.core().admit(board) {
                    return Outcome::Failed(reason);
                }
                let ticket = InFlight::new(inner, device, state);
                let order = queue_now(inner.order[board].clone().lock_owned()).await;
                Checked::Device { device, state, was: now.devices[device], ticket, order }
            }
            Request::Speed { train, speed } => match inner.layout.trains[train].controller {
                Some(board) => {
                    if let Err(reason) = inner.core().admit(board) {
                        return Outcome::Failed(reason);
                    }
                    let order = queue_now(inner.order[board].clone().lock_owned()).await;
                    Checked::Controller { train, speed, order }
                }
                None if inner.core().mode() == Mode::Live => {
                    return Outcome::Failed(Failure::NoController { train: inner.layout.trains[train].name.clone() });
                }
                // Sent now, so that speeds reach the simulation in the order of their checks.
                None => {
                    let ack = sim_send(inner, Request::Speed { train, speed }.command(&inner.layout));
                    Checked::Simulation { train, speed, ack }
                }
            },
        }
    };
    let (train, speed, result) = match checked {
        Checked::Device { device, state, was, ticket, order } => {
            let _order = order.wait().await;
            let outcome = command_device(inner, device, state).await;
            if outcome == Outcome::Applied && was == DevicePosition::from(state) {
                let _ = inner.events.send(TrackEvent::Confirmed { device, state });
            }
            drop(ticket);
            return outcome;
        }
        Checked::Controller { train, speed, order } => {
            let _order = order.wait().await;
            let sent = inner.core().controller_speed(train, speed);
            (train, speed, control(inner, train, sent).await.map_err(Failure::from))
        }
        Checked::Simulation { train, speed, ack } => (train, speed, sim_ack(ack).await.map_err(Failure::from)),
    };
    match result {
        Ok(()) => {
            inner.core().speed_commanded(train, speed);
            let _ = inner.events.send(TrackEvent::Speed { train, speed });
            Outcome::Applied
        }
        Err(reason) => Outcome::Failed(reason),
    }
}

/// At most this many device commands are in flight at once (a check looks at up to 2^this combinations).
pub(super) const MAX_IN_FLIGHT: usize = 6;

/// A command that passed the check, with its place in its board's queue.
enum Checked {
    /// A device command, in flight until its ticket is dropped.
    Device { device: usize, state: OnOff, was: DevicePosition, ticket: InFlight, order: Queued<OrderTurn> },
    /// A speed for a train's controller.
    Controller { train: usize, speed: i32, order: Queued<OrderTurn> },
    /// A speed for a train without a controller, sent to the simulation.
    Simulation { train: usize, speed: i32, ack: oneshot::Receiver<Result<(), SimError>> },
}

/// A board's place in the order of commands.
type OrderTurn = tokio::sync::OwnedMutexGuard<()>;

/// A device command in flight: in the table the check looks at until dropped.
struct InFlight {
    inner: Arc<Inner>,
    ticket: u64,
}

impl InFlight {
    fn new(inner: &Arc<Inner>, device: usize, state: OnOff) -> InFlight {
        let ticket = inner.next_id.fetch_add(1, Ordering::Relaxed);
        inner.in_flight.lock().expect("in flight").push((ticket, device, state));
        InFlight { inner: inner.clone(), ticket }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.in_flight.lock().expect("in flight").retain(|(t, _, _)| *t != self.ticket);
    }
}

/// A future that has taken its place in a fair queue (polled once), to be awaited later.
enum Queued<T> {
    Ready(T),
    Waiting(std::pin::Pin<Box<dyn Future<Output = T> + Send>>),
}

impl<T> Queued<T> {
    async fn wait(self) -> T {
        match self {
            Queued::Ready(out) => out,
            Queued::Waiting(f) => f.await,
        }
    }
}

/// Polls `fut` once, so that it takes its place in the queue it waits in (tokio's locks are fair), and hands
/// it back to be awaited later.
async fn queue_now<T>(fut: impl Future<Output = T> + Send + 'static) -> Queued<T> {
    let mut fut: std::pin::Pin<Box<dyn Future<Output = T> + Send>> = Box::pin(fut);
    let ready = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match fut.as_mut().poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await;
    ready.map_or(Queued::Waiting(fut), Queued::Ready)
}
/// A device command in its board's turn (a command's: housekeeping gives way): driven, and driven again at
/// once if its outcome is unknown; if still unknown, the commanded state becomes the desired one (see
/// [`uncertain`]).
async fn command_device(inner: &Inner, device: usize, state: OnOff) -> Outcome {
    let board = inner.layout.devices[device].board;
    if inner.layout.boards[board].kind == BoardKind::Mqtt {
        return mqtt::command(inner, device, state).await;
    }
    let (address, _) = inner.target(board);
    let turn = inner.client.turn(&address, Priority::Command).await;
    match drive(inner, &turn, device, state, Attempts::Retries).await {
        Ok(()) => Outcome::Applied,
        // The board may have moved the servo: say so by making it true, at once.
        Err(f) if f.uncertain() => match drive(inner, &turn, device, state, Attempts::Retries).await {
            Ok(()) => Outcome::Applied,
            Err(again) if again.uncertain() => Outcome::Failed(uncertain(inner, device, state, again).await),
            Err(again) => Outcome::Failed(again.into()),
        },
        Err(f) => Outcome::Failed(f.into()),
    }
}

/// How many attempts a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempts {
    /// One (a health poll: the next poll comes soon).
    One,
    /// The client's retries.
    Retries,
}

/// Sends a device's state to its board in `turn`; on success it is the device's desired state (set while
/// the turn is held, so that no poll re-drives an older one in between) and in live mode the mirror follows
/// it (in sim mode the virtual board moved the device). A board that does not answer is marked down; one
/// whose clock shows a reboot is restored.
pub(super) async fn drive(
    inner: &Inner,
    turn: &Turn,
    device: usize,
    state: OnOff,
    attempts: Attempts,
) -> Result<(), client::Failure> {
    let d = &inner.layout.devices[device];
    let cmd = servo_command(d, state);
    let result = match attempts {
        Attempts::One => turn.attempt(&cmd).await,
        Attempts::Retries => turn.send(&cmd).await,
    };
    match &result {
        Ok(clock) => {
            if inner.core().mode() == Mode::Live {
                let _ = sim_command(inner, SimCommand::SetDevice { device, state }).await;
            }
            inner.core().commanded(device, state);
            inner.answered(d.board, *clock);
        }
        Err(f) => inner.down_unless_answered(d.board, f),
    }
    result.map(|_| ())
}

/// Automatic protection: drives a device (a stop rail raised behind a train) through its board, as a command
/// (housekeeping gives way to it), and makes it the device's desired state once done.
pub(super) async fn protect(inner: Arc<Inner>, device: usize, state: OnOff) {
    if inner.layout.boards[inner.layout.devices[device].board].kind == BoardKind::Mqtt {
        let _ = mqtt::command(&inner, device, state).await;
        return;
    }
    let (address, _) = inner.target(inner.layout.devices[device].board);
    let turn = inner.client.turn(&address, Priority::Command).await;
    let _ = drive(&inner, &turn, device, state, Attempts::Retries).await;
}

/// A device command whose outcome is unknown (the board got it, its answers did not come back, twice): the
/// commanded state becomes the desired one, which the board's restore drives as soon as it answers again; in
/// live mode the mirror shows the device between positions until then (the interlocking treats that as unsafe).
/// Returns the failure, saying so.
pub(super) async fn uncertain(inner: &Inner, device: usize, state: OnOff, failure: client::Failure) -> Failure {
    let d = &inner.layout.devices[device];
    inner.core().commanded(device, state);
    if inner.core().mode() == Mode::Live {
        let angle = (0..).find(|a| *a != d.on_angle && *a != d.off_angle).expect("a third angle");
        let _ = sim_command(inner, SimCommand::SetAngle { device, angle }).await;
    }
    Failure::Uncertain { failure, device: d.name.clone(), will_be: d.kind.words(state) }
}

/// Sends a train's controller the speed `speed` (already capped by speed supervision); a controller that does
/// not answer is marked down. In live mode the mirror follows an acknowledged speed (in sim mode the virtual
/// controller set the simulated train's speed).
pub(super) async fn control(inner: &Inner, train: usize, speed: i32) -> Result<(), client::Failure> {
    let t = &inner.layout.trains[train];
    let board = t.controller.expect("only trains with a controller are controlled");
    let (address, live) = inner.target(board);
    let result = inner.speed.set(&address, &t.name, speed).await;
    match &result {
        Ok(()) => {
            inner.core().controller_took(train, speed);
            if live {
                let _ = sim_command(inner, Request::Speed { train, speed }.command(&inner.layout)).await;
            }
        }
        Err(f) => inner.down_unless_answered(board, f),
    }
    result
}
