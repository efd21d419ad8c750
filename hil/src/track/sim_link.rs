//! The bridge to the simulation thread: snapshots, commands with their acknowledgements, and the pump that
//! turns the simulation's output into track events.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;
use sim::twin::thread::{Output, Request as SimRequest};
use sim::twin::{SimCommand, SimError, TrackState};
use tokio::sync::oneshot;

use super::command::protect;
use super::{Inner, Mode, TrackEvent};
use crate::virtual_devices::rig::RigError;

/// The state as the interlocking and automatic operation take it (a block occupied if the hardware or the
/// mirror says so), or `None` once the simulation has stopped (the background tasks end then).
pub(super) async fn try_state(inner: &Inner) -> Option<TrackState> {
    let mut state = sim_state(inner).await?;
    state.blocks = inner.word().held_view(&state.blocks);
    Some(state)
}

/// The simulation's own state (in live mode the mirror's), or `None` once it has stopped.
pub(super) async fn sim_state(inner: &Inner) -> Option<TrackState> {
    snapshot_of(&inner.sim).await
}

async fn snapshot_of(sim: &Sender<SimRequest>) -> Option<TrackState> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reply = move |state| {
        // A caller that stopped waiting for its snapshot is not an error.
        let _ = tx.send(state);
    };
    sim.send(SimRequest::SnapshotThen(Box::new(reply))).ok()?;
    rx.await.ok()
}

/// The simulation's blocks as it starts.
pub(super) async fn first_blocks(sim: &Sender<SimRequest>) -> Result<Vec<bool>, RigError> {
    let state = snapshot_of(sim).await.ok_or(RigError::Stopped)?;
    Ok(state.blocks)
}

/// Sends a command to the simulation; its result comes on the receiver (`Stopped` once the simulation has
/// stopped: a task may still act while the track shuts down).
pub(super) fn sim_send(inner: &Inner, cmd: SimCommand) -> oneshot::Receiver<Result<(), SimError>> {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    inner.pending.lock().expect("pending").insert(id, tx);
    if inner.sim.send(SimRequest::Command { id, cmd }).is_err()
        && let Some(tx) = inner.pending.lock().expect("pending").remove(&id)
    {
        let _ = tx.send(Err(SimError::Stopped));
    }
    rx
}

/// The result of a command sent with [`sim_send`] (`Stopped` if the simulation stopped before answering).
pub(super) async fn sim_ack(rx: oneshot::Receiver<Result<(), SimError>>) -> Result<(), SimError> {
    rx.await.unwrap_or(Err(SimError::Stopped))
}

pub(super) async fn sim_command(inner: &Inner, cmd: SimCommand) -> Result<(), SimError> {
    sim_ack(sim_send(inner, cmd)).await
}

/// Moves simulation output into the track: acks to their callers, events to subscribers, and the
/// interlocking's automatic protection (raise a stop rail behind a passing train) to the boards.
pub(super) fn pump(inner: Arc<Inner>, outputs: crossbeam_channel::Receiver<Output>) {
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("track-pump".into())
        .spawn(move || {
            for output in outputs {
                match output {
                    Output::Ack { id, result, .. } => {
                        if let Some(tx) = inner.pending.lock().expect("pending").remove(&id) {
                            let _ = tx.send(result);
                        }
                    }
                    Output::Event(e) => {
                        if let (sim::twin::EventKind::DetectorChanged { detector, closed }, Some(mqtt)) =
                            (e.kind, inner.mqtt.get())
                        {
                            mqtt.detector_changed(detector, closed);
                        }
                        if let sim::twin::EventKind::BlockChanged { block, occupied } = e.kind {
                            let notes = inner.word().mirror_changed(block, occupied, inner.now_ms());
                            inner.tell(notes);
                        }
                        if inner.core().mode() == Mode::Live {
                            inner.mirror.lock().expect("mirror").on_mirror_event(&inner.layout, &e);
                        }
                        for cmd in inner.interlocking.protect_after(std::slice::from_ref(&e)) {
                            if let SimCommand::SetDevice { device, state } = cmd {
                                runtime.spawn(protect(inner.clone(), device, state));
                            }
                        }
                        let _ = inner.events.send(TrackEvent::Sim(e));
                    }
                }
            }
        })
        .expect("spawn pump thread");
}
