//! Live follow: the mirror kept to the sensor reports and the detectors' word on the blocks.

use std::time::Duration;

use sim::twin::SimCommand;
use tokio::sync::mpsc::UnboundedReceiver;

use super::sim_link::{sim_command, sim_state, try_state};
use super::{Inner, Mode, TrackEvent};
use crate::boards2021::ingest::SensorReading;
use crate::track::mirror::Divergence;

/// Every second: faulty detectors that fell silent are healthy again; in live mode, the mirror's trains in a
/// block its detectors reported left ([`crate::boards2023::block_word::PHANTOM_AFTER_MS`] ago) are shown lost and taken off,
/// so the contradiction ends, and those in a block whose entry detector never confirmed them
/// ([`crate::boards2023::block_word::CONFIRM_MS`]) are put back before it.
pub(super) async fn watch_blocks(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(inner) = inner.upgrade() else { return };
        let now = inner.now_ms();
        let notes = inner.word().tick(now);
        inner.tell(notes);
        let phantoms = inner.word().phantoms(now);
        let unconfirmed = inner.word().unconfirmed(now);
        if phantoms.is_empty() && unconfirmed.is_empty() {
            continue;
        }
        let Some(state) = sim_state(&inner).await else { return };
        for block in phantoms {
            for train in crate::track::mirror::lost_in(&inner.layout, &state, block) {
                if sim_command(&inner, SimCommand::Remove { train }).await.is_ok() {
                    let _ = inner.events.send(TrackEvent::Divergence(Divergence::Lost { train, block }));
                }
            }
        }
        // The mirror's train went where the real one did not: back before the block, where the real one stands.
        for block in unconfirmed {
            let back = crate::track::mirror::before_block(&inner.layout, &state, block);
            for train in crate::track::mirror::lost_in(&inner.layout, &state, block) {
                let cmd = match back {
                    Some(front) => SimCommand::Place { train, front },
                    None => SimCommand::Remove { train },
                };
                if sim_command(&inner, cmd).await.is_ok() {
                    inner.word().put_back(block, train, now);
                    let _ = inner.events.send(TrackEvent::Divergence(Divergence::Unconfirmed { train, block }));
                }
            }
        }
    }
}

/// Live mode: snaps mirrored trains to the real sensor reports, and reports divergences (including trains
/// overdue at their next sensor, checked as time passes).
pub(super) async fn follow(inner: std::sync::Weak<Inner>, mut readings: UnboundedReceiver<SensorReading>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let reading = tokio::select! {
            r = readings.recv() => match r { Some(r) => Some(r), None => return },
            _ = tick.tick() => None,
        };
        let Some(inner) = inner.upgrade() else { return };
        if let Some(r) = reading {
            let _ = inner.events.send(TrackEvent::SensorReport(r));
        }
        if inner.core().mode() != Mode::Live {
            continue;
        }
        let Some(state) = try_state(&inner).await else { return };
        let mut divergences = inner.mirror.lock().expect("mirror").overdue(state.time_ms);
        if let Some(reading) = reading {
            let (snap, divergence) = inner.mirror.lock().expect("mirror").on_reading(&inner.layout, reading, &state);
            if let Some(cmd) = snap {
                let _ = sim_command(&inner, cmd).await;
            }
            divergences.extend(divergence);
        }
        for d in divergences {
            let _ = inner.events.send(TrackEvent::Divergence(d));
        }
    }
}
