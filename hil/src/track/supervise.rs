//! Speed supervision: the interlocking's braking on the simulated track, and the trains' positions published.

use std::sync::Arc;

use sim::interlocking::on_scale;
use sim::twin::{SimCommand, TrackState};

use super::command::{control, protect};
use super::sim_link::{sim_command, try_state};
use super::{Inner, TrackEvent, TrainPosition};

/// Every `supervise_every`: the interlocking's speed supervision on the simulated track, and the trains'
/// positions published when any moved.
pub(super) async fn watch_trains(inner: std::sync::Weak<Inner>) {
    let mut last: Vec<TrainPosition> = Vec::new();
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let every = strong.config.supervise_every;
        let Some(state) = try_state(&strong).await else { return };
        supervise(&strong, &state).await;
        publish_positions(&strong, &state, &mut last);
        drop(strong);
        tokio::time::sleep(every).await;
    }
}

/// Slows or stops trains closing on others, as the interlocking's speed supervision says: on the simulated
/// track (or the mirror), and through the train's controller if it has one; and raises the stop rails it says
/// to raise, through their boards.
pub(super) async fn supervise(inner: &Arc<Inner>, state: &TrackState) {
    for cmd in inner.interlocking.supervise(state) {
        match cmd {
            SimCommand::SetDevice { device, state } => {
                tokio::spawn(protect(inner.clone(), device, state));
            }
            SimCommand::SetSpeedLimit { train, limit } => {
                let _ = sim_command(inner, cmd).await;
                if inner.layout.trains[train].controller.is_none() {
                    continue;
                }
                let limit = limit.map(|l| on_scale(&inner.layout, train, l));
                if let Some(speed) = inner.core().speed_limit(train, limit) {
                    let inner = inner.clone();
                    tokio::spawn(async move { control(&inner, train, speed).await });
                }
            }
            other => {
                let _ = sim_command(inner, other).await;
            }
        }
    }
}

/// Sends the trains' positions if any differs from the `last` sent.
fn publish_positions(inner: &Inner, state: &TrackState, last: &mut Vec<TrainPosition>) {
    let positions: Vec<TrainPosition> = state.trains.iter().map(|t| TrainPosition::of(&inner.layout, t)).collect();
    if positions != *last {
        let _ = inner.events.send(TrackEvent::Trains(positions.clone()));
        *last = positions;
    }
}
