//! The feeds: every change on the track encoded once, as each protocol's frame, and the same bytes handed to
//! every client of that protocol (a broadcast ring, so an idle client costs no copy). A client that falls
//! behind the ring catches up from the latest state ([`Feeds::devices_2021`], or a v2 snapshot), never from
//! stale frames.
//!
//! One task follows the track's events: it keeps the latest device states, encodes the frames, records the
//! events' metrics and hands device changes to the journal without waiting for the disk.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use hil::track::{Track, TrackEvent};
use sim::layout::{Layout, OnOff};
use sim::twin::EventKind;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use crate::journal::{Entry, Writer};
use crate::metrics::Metrics;
use crate::protocol_2021::speed_frame;
use crate::wire::{v2, v2021};

/// Frames a feed holds for clients that read slowly; one further behind catches up from the latest state.
const RING: usize = 1024;

/// The gateway's feeds (see the module documentation).
#[derive(Clone)]
pub struct Feeds {
    /// 2021 frames (device changes, and devices commanded to the state they had).
    pub v2021: broadcast::Sender<Utf8Bytes>,
    /// 2021 speed frames (every speed commanded).
    pub speed: broadcast::Sender<Utf8Bytes>,
    /// v2 frames (device changes, trains, boards, mode, events).
    pub v2: broadcast::Sender<Utf8Bytes>,
    /// Every device's 2021 frame as it is now (`None` while between positions): the 2021 protocol's periodic
    /// resend and a late or slow client's catch-up.
    pub devices_2021: watch::Receiver<Arc<[Option<Utf8Bytes>]>>,
    /// Every train's 2021 speed frame as it is now: what a `/speed` client gets on connect.
    pub speeds_2021: watch::Receiver<Arc<[Utf8Bytes]>>,
}

impl Feeds {
    /// Starts following `track`.
    pub async fn start(track: Track, journal: Option<Writer>, metrics: Arc<Metrics>) -> Feeds {
        let (v2021, _) = broadcast::channel(RING);
        let (v2, _) = broadcast::channel(RING);
        let (speed, _) = broadcast::channel(RING);
        let states: Vec<Option<OnOff>> = track.state().await.devices.iter().map(|p| p.state()).collect();
        let (devices_tx, devices_2021) = watch::channel(frames_2021(track.layout(), &states));
        let layout = track.layout();
        let speeds: Arc<[Utf8Bytes]> =
            track.speeds().into_iter().enumerate().map(|(t, s)| speed_frame(layout, t, s).into()).collect();
        let (speeds_tx, speeds_2021) = watch::channel(speeds);
        let feeds = Feeds { v2021, speed, v2, devices_2021, speeds_2021 };
        let follower =
            Follower { feeds: feeds.clone(), devices: devices_tx, speeds: speeds_tx, states, journal, metrics };
        tokio::spawn(follower.run(track));
        feeds
    }
}

/// Every device's 2021 frame.
fn frames_2021(layout: &Layout, states: &[Option<OnOff>]) -> Arc<[Option<Utf8Bytes>]> {
    states
        .iter()
        .zip(&layout.devices)
        .map(|(s, d)| s.map(|s| v2021::ServerFrame::device(&d.name, s).encode().into()))
        .collect()
}

/// Puts `value` at `i` of the shared list behind `list` (a new list: readers keep the one they hold).
fn replace<T: Clone>(list: &watch::Sender<Arc<[T]>>, i: usize, value: T) {
    list.send_modify(|all| {
        let mut now = all.to_vec();
        now[i] = value;
        *all = now.into();
    });
}

/// The task behind the feeds.
struct Follower {
    feeds: Feeds,
    devices: watch::Sender<Arc<[Option<Utf8Bytes>]>>,
    speeds: watch::Sender<Arc<[Utf8Bytes]>>,
    states: Vec<Option<OnOff>>,
    journal: Option<Writer>,
    metrics: Arc<Metrics>,
}

impl Follower {
    async fn run(mut self, track: Track) {
        let layout = track.layout().clone();
        let mut events = track.subscribe();
        loop {
            match events.recv().await {
                Ok(e) => {
                    self.metrics.event(&e);
                    self.follow(&layout, e);
                }
                // Missed events: read the devices again (trains and boards come again by themselves).
                Err(RecvError::Lagged(_)) => {
                    let Some(state) = track.try_state().await else { return };
                    for (device, p) in state.devices.iter().enumerate() {
                        self.device(&layout, device, p.state());
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Encodes what an event shows, once for each protocol.
    fn follow(&mut self, layout: &Layout, event: TrackEvent) {
        let frame = match event {
            TrackEvent::Sim(e) => match e.kind {
                EventKind::DeviceChanged { device, position } => return self.device(layout, device, position.state()),
                EventKind::SensorPassed { sensor, train } => v2::ServerFrame::Event(v2::Event {
                    kind: v2::EventKind::Sensor,
                    text: e.describe(layout),
                    sensor: Some(layout.sensors[sensor].name.clone()),
                    train: Some(layout.trains[train].name.clone()),
                }),
                EventKind::Collision { .. } => v2::ServerFrame::event(v2::EventKind::Collision, e.describe(layout)),
                EventKind::Derailment { .. } => v2::ServerFrame::event(v2::EventKind::Derailment, e.describe(layout)),
                _ => return,
            },
            TrackEvent::Divergence(d) => v2::ServerFrame::event(v2::EventKind::Divergence, d.describe(layout)),
            TrackEvent::Board(h) => v2::ServerFrame::Board(v2::Board::of(&h)),
            TrackEvent::Mode(mode) => v2::ServerFrame::Mode { mode },
            TrackEvent::Trains(now) => {
                v2::ServerFrame::Trains { trains: now.iter().map(|p| v2::Train::of(layout, p)).collect() }
            }
            TrackEvent::Speed { train, speed } => {
                let frame: Utf8Bytes = speed_frame(layout, train, speed).into();
                replace(&self.speeds, train, frame.clone());
                let _ = self.feeds.speed.send(frame);
                v2::ServerFrame::Speed { train: layout.trains[train].name.clone(), speed }
            }
            TrackEvent::Confirmed { device, state } => {
                let name = &layout.devices[device].name;
                let _ = self.feeds.v2021.send(v2021::ServerFrame::device(name, state).encode().into());
                v2::ServerFrame::Device(v2::Device { name: name.clone(), kind: None, state: Some(state) })
            }
            TrackEvent::SensorReport(_) => return,
        };
        // No subscriber is not an error.
        let _ = self.feeds.v2.send(frame.encode().into());
    }

    /// A device's state now: frames for both protocols if it changed, and the journal told.
    fn device(&mut self, layout: &Layout, device: usize, state: Option<OnOff>) {
        if self.states[device] == state {
            return;
        }
        self.states[device] = state;
        let name = &layout.devices[device].name;
        let frame_2021: Option<Utf8Bytes> = state.map(|s| v2021::ServerFrame::device(name, s).encode().into());
        replace(&self.devices, device, frame_2021.clone());
        if let Some(frame) = frame_2021 {
            let _ = self.feeds.v2021.send(frame);
        }
        let v2 = v2::ServerFrame::Device(v2::Device { name: name.clone(), kind: None, state });
        let _ = self.feeds.v2.send(v2.encode().into());
        if let (Some(journal), Some(_)) = (&self.journal, state) {
            journal.submit(vec![Entry::Device(device)]);
        }
    }
}
