//! Tracks for tests: their settings, starting one and waiting for its restore, waiting on a condition, the live
//! boards of a rig, a device's request and position.

use std::time::{Duration, Instant};

use hil::track::{Setup, Track, TrackConfig};
use sim::interlocking::Request;
use sim::layout::{Layout, OnOff};
use sim::track::DevicePosition;

/// A track for tests: frequent health polls and a short restore spacing, and the board client's own timeouts
/// (a shorter one could take a slow board on a busy machine for a dead one).
pub fn config() -> TrackConfig {
    TrackConfig {
        health_every: Duration::from_millis(200),
        init_spacing: Duration::from_millis(10),
        ..TrackConfig::default()
    }
}

pub async fn until(what: &str, limit: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ok().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn device(track: &Track, name: &str, state: OnOff) -> Request {
    Request::Device { device: track.layout().device_id(name).unwrap(), state }
}

pub async fn position(track: &Track, name: &str) -> DevicePosition {
    track.state().await.devices[track.layout().device_id(name).unwrap()]
}

/// Starts a track over `layout` and waits for its start-up restore (every board given its desired state).
pub async fn started(layout: std::sync::Arc<Layout>, setup: Setup) -> Track {
    let track = Track::start(layout, setup).await.expect("the track starts");
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    track
}

/// The live boards map: every board of the rig's layout at its virtual board or controller.
pub fn live_boards(rig: &hil::virtual_devices::rig::Rig) -> std::collections::HashMap<String, String> {
    rig.layout.boards.iter().zip(rig.addresses()).map(|(b, a)| (b.name.clone(), a)).collect()
}
