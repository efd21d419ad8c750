//! The simulation on its own thread, fed commands and emitting events over crossbeam channels.
//!
//! Bevy owns the simulation thread; the network side (tokio) talks to it only through these channels.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, unbounded};

use super::{SimCommand, SimError, SimEvent, Simulation, TrackState};

/// How fast the simulation thread runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Fixed steps back to back, as fast as the CPU allows.
    Fast,
    /// Paced to the wall clock, `factor` times real time (1.0 = real time).
    WallClock {
        /// Speed-up over real time.
        factor: f64,
    },
}

/// A request to the simulation thread.
pub enum Request {
    /// Apply a command; the result comes back as [`Output::Ack`] with the same id.
    Command {
        /// Caller's id for the ack.
        id: u64,
        /// The command.
        cmd: SimCommand,
    },
    /// Send a copy of the track state to the given channel.
    Snapshot(Sender<TrackState>),
    /// Hand a copy of the track state to the given function, on the simulation thread (which it must not
    /// block): how an async caller takes one without a blocking wait.
    SnapshotThen(Box<dyn FnOnce(TrackState) + Send>),
    /// Stop the thread (it returns the simulation).
    Stop,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Command { id, cmd } => f.debug_struct("Command").field("id", id).field("cmd", cmd).finish(),
            Request::Snapshot(_) => f.write_str("Snapshot"),
            Request::SnapshotThen(_) => f.write_str("SnapshotThen"),
            Request::Stop => f.write_str("Stop"),
        }
    }
}

/// What the simulation thread sends out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The result of a command.
    Ack {
        /// The request's id.
        id: u64,
        /// Applied, or why not.
        result: Result<(), SimError>,
        /// Simulation time it took effect, ms.
        time_ms: u64,
    },
    /// Something happened.
    Event(SimEvent),
}

/// The caller's side of a simulation thread.
pub struct SimHandle {
    /// Send requests here.
    pub requests: Sender<Request>,
    /// Acks and events arrive here, in simulation order.
    pub outputs: Receiver<Output>,
    join: JoinHandle<Simulation>,
}

impl SimHandle {
    /// Stops the thread and returns the simulation as it was.
    pub fn stop(self) -> Simulation {
        // The thread may already have ended because `max_steps` ran out; then the send fails harmlessly.
        let _ = self.requests.send(Request::Stop);
        self.join.join().expect("simulation thread panicked")
    }
}

/// Runs `sim` on a new thread until stopped, all request senders are dropped, or `max_steps` steps ran.
///
/// Requests are served as they arrive, also while a wall-clock paced thread waits for its next step, so a
/// command takes effect (and its events go out) without waiting for a step.
pub fn spawn(mut sim: Simulation, pacing: Pacing, max_steps: Option<u64>) -> SimHandle {
    let (req_tx, req_rx) = unbounded::<Request>();
    let (out_tx, out_rx) = unbounded::<Output>();
    let join = std::thread::Builder::new()
        .name("simulation".into())
        .spawn(move || {
            let start = Instant::now();
            let mut events = Vec::new();
            let mut steps = 0u64;
            loop {
                // Serve what is waiting; when paced, keep serving until the next step is due.
                loop {
                    let request = match pacing {
                        Pacing::Fast => match req_rx.try_recv() {
                            Ok(r) => r,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return sim,
                        },
                        Pacing::WallClock { factor } => {
                            let due = Duration::from_secs_f64(sim.time_ms() as f64 / 1000.0 / factor);
                            let wait = due.saturating_sub(start.elapsed());
                            match req_rx.recv_timeout(wait) {
                                Ok(r) => r,
                                Err(RecvTimeoutError::Timeout) => break,
                                Err(RecvTimeoutError::Disconnected) => return sim,
                            }
                        }
                    };
                    if !serve(&mut sim, request, &mut events, &out_tx) {
                        return sim;
                    }
                }
                if max_steps.is_some_and(|m| steps >= m) {
                    return sim;
                }
                sim.step(&mut events);
                steps += 1;
                if !send_events(&mut events, &out_tx) {
                    return sim;
                }
            }
        })
        .expect("spawn simulation thread");
    SimHandle { requests: req_tx, outputs: out_rx, join }
}

/// Serves one request; `false` when the thread should end.
fn serve(sim: &mut Simulation, request: Request, events: &mut Vec<SimEvent>, out: &Sender<Output>) -> bool {
    match request {
        Request::Command { id, cmd } => {
            let result = sim.apply(cmd, events);
            out.send(Output::Ack { id, result, time_ms: sim.time_ms() }).is_ok() && send_events(events, out)
        }
        Request::Snapshot(reply) => {
            // A caller that stopped waiting for its snapshot is not an error.
            let _ = reply.send(sim.state());
            true
        }
        Request::SnapshotThen(reply) => {
            reply(sim.state());
            true
        }
        Request::Stop => false,
    }
}

/// Sends out (and clears) `events`; `false` when no one listens any more.
fn send_events(events: &mut Vec<SimEvent>, out: &Sender<Output>) -> bool {
    events.drain(..).all(|e| out.send(Output::Event(e)).is_ok())
}
