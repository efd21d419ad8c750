//! The feeds: every change on the track encoded once, as each protocol's frame, and the same bytes handed to
//! every client of that protocol (a broadcast ring, so an idle client costs no copy). A client that falls
//! behind the ring catches up from the latest state ([`Feeds::devices_2021`], or a v2 snapshot), never from
//! stale frames.
//!
//! The feeds are fed v2 frames ([`Feeds::publish`]), whoever makes them: the track in this process
//! (`crate::local`) or a core across a broker (`crate::broker::edge`); the 2021 frames are derived from them
//! here, so both give the 2021 clients the same bytes.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use sim::layout::Layout;
use tokio::sync::{broadcast, watch};

use wire::v2::{ServerFrame, State};
use wire::v2021;

/// Frames a feed holds for clients that read slowly; one further behind catches up from the latest state.
const RING: usize = 1024;

/// What 2021 clients are told when the track can no longer be reached from this gateway.
pub const UNREACHABLE_2021: &str = "the track cannot be reached: commands are refused until it is back";

/// The gateway's feeds (see the module documentation). Cheap to clone.
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
    devices_2021: Arc<watch::Sender<Arc<[Option<Utf8Bytes>]>>>,
    /// Every train's 2021 speed frame as it is now: what a `/speed` client gets on connect.
    speeds_2021: Arc<watch::Sender<Arc<[Utf8Bytes]>>>,
    layout: Arc<Layout>,
}

impl Feeds {
    /// Feeds of `layout`'s track, starting from `state`.
    pub fn new(layout: Arc<Layout>, state: &State) -> Feeds {
        let (v2021, _) = broadcast::channel(RING);
        let (v2, _) = broadcast::channel(RING);
        let (speed, _) = broadcast::channel(RING);
        let (devices, _) = watch::channel(devices(state));
        let (speeds, _) = watch::channel(speeds(&layout, state));
        Feeds { v2021, speed, v2, devices_2021: Arc::new(devices), speeds_2021: Arc::new(speeds), layout }
    }

    /// Every device's 2021 frame as it is now (`None` while between positions).
    pub fn devices_2021(&self) -> Arc<[Option<Utf8Bytes>]> {
        self.devices_2021.borrow().clone()
    }

    /// Every train's 2021 speed frame as it is now.
    pub fn speeds_2021(&self) -> Arc<[Utf8Bytes]> {
        self.speeds_2021.borrow().clone()
    }

    /// Hands a change to every client: the v2 frame as it is, and the 2021 frames it makes (a device with a
    /// state, a speed). A device frame is taken as a change or a confirmation of the device's state: the
    /// caller sends it only when one of the two happened.
    pub fn publish(&self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Device(d) => {
                if let Some(i) = self.layout.device_id(&d.name) {
                    let frame_2021: Option<Utf8Bytes> =
                        d.state.map(|s| v2021::ServerFrame::device(&d.name, s).encode().into());
                    replace(&self.devices_2021, i, frame_2021.clone());
                    if let Some(f) = frame_2021 {
                        // No subscriber is not an error.
                        let _ = self.v2021.send(f);
                    }
                }
            }
            ServerFrame::Speed { train, speed } => {
                if let Some(i) = self.layout.train_id(train) {
                    let f: Utf8Bytes = v2021::ServerFrame::speed(train, *speed).encode().into();
                    replace(&self.speeds_2021, i, f.clone());
                    let _ = self.speed.send(f);
                }
            }
            // The 2021 protocol has no word for it: its clients are told in an error frame.
            ServerFrame::Online { online: false } => {
                let _ = self.v2021.send(v2021::ServerFrame::error(UNREACHABLE_2021).encode().into());
            }
            _ => {}
        }
        let _ = self.v2.send(frame.encode().into());
    }

    /// Starts again from `state` (after changes were missed): the 2021 lists replaced, and every client handed
    /// the whole state (v2: a snapshot; 2021: every device's and every train's frame).
    pub fn reset(&self, state: &State) {
        let (now_devices, now_speeds) = (devices(state), speeds(&self.layout, state));
        self.devices_2021.send_replace(now_devices.clone());
        self.speeds_2021.send_replace(now_speeds.clone());
        for f in now_devices.iter().flatten() {
            let _ = self.v2021.send(f.clone());
        }
        for f in now_speeds.iter() {
            let _ = self.speed.send(f.clone());
        }
        let _ = self.v2.send(ServerFrame::Snapshot(state.clone()).encode().into());
    }
}

/// Every device's 2021 frame in `state`.
fn devices(state: &State) -> Arc<[Option<Utf8Bytes>]> {
    state.devices.iter().map(|d| d.state.map(|s| v2021::ServerFrame::device(&d.name, s).encode().into())).collect()
}

/// Every train's 2021 speed frame in `state`, in the layout's order (0 for a train it does not list).
fn speeds(layout: &Layout, state: &State) -> Arc<[Utf8Bytes]> {
    layout
        .trains
        .iter()
        .map(|t| {
            let speed = state.trains.iter().find(|s| s.name == t.name).and_then(|s| s.speed).unwrap_or(0);
            v2021::ServerFrame::speed(&t.name, speed).encode().into()
        })
        .collect()
}

/// Puts `value` at `i` of the shared list behind `list` (a new list: readers keep the one they hold).
fn replace<T: Clone>(list: &watch::Sender<Arc<[T]>>, i: usize, value: T) {
    list.send_modify(|all| {
        let mut now = all.to_vec();
        if i < now.len() {
            now[i] = value;
        }
        *all = now.into();
    });
}
