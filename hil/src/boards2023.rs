//! The twin's side of the 2023 MQTT boards, in the 2023 state manager's place: one MQTT client on the boards'
//! broker that answers each board's `get` with the device's desired state (`…/get/accepted`), tells every
//! change (`…/delta`), and takes the detectors' block reports (`block/{id}/update`). As in 2023: QoS 0 and
//! nothing retained towards the boards, the subscriptions `point/#`, `stop/#`, `block/#` at QoS 1. Unlike 2023
//! it subscribes again on every (re)connect, and anything it cannot read (an unknown id, another word, more
//! topic levels, a huge payload) is counted and logged and changes nothing. [`setting_of`] is a layout board's
//! `setting.json`, which the virtual boards boot from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sim::layout::{BoardId, DetectorTarget, DeviceKind, Layout, OnOff};

use crate::firmware2023::{Detector, Io, Setting};
use crate::mqtt2023::{FromBoard, Target, delta_topic, get_accepted_topic, read, state_word};

/// Where the boards' broker is (plain MQTT), the login if it needs one, and its clients' comings and goings
/// where the broker tells them (the embedded one does; mosquitto does not).
#[derive(Debug, Clone)]
pub struct BoardBroker {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User and password.
    pub login: Option<(String, String)>,
    /// Clients connecting and going, if the broker tells.
    pub presence: Option<tokio::sync::broadcast::Sender<crate::embedded_broker::Presence>>,
}

/// The client id a 2023 board connects with (`esp32-client-<name>`).
pub fn client_id(board: &str) -> String {
    format!("esp32-client-{board}")
}

/// A layout board's `setting.json`: its stop rails and points by pin, its wired detectors.
pub fn setting_of(layout: &Layout, board: BoardId) -> Setting {
    let io = |kind: DeviceKind| {
        layout
            .devices
            .iter()
            .filter(|d| d.board == board && d.kind == kind)
            .map(|d| Io { id: d.name.clone(), pin: d.pin as u8 })
            .collect()
    };
    let detectors = layout
        .detectors
        .iter()
        .filter_map(|d| match d.wiring {
            Some((b, pin)) if b == board => Some(Detector {
                block_id: layout.blocks[d.block].id.clone(),
                target: match d.target {
                    DetectorTarget::Close => "CLOSE",
                    DetectorTarget::Open => "OPEN",
                }
                .into(),
                pin: pin as u8,
            }),
            _ => None,
        })
        .collect();
    Setting {
        name: layout.boards[board].name.clone(),
        stops: io(DeviceKind::StopRail),
        points: io(DeviceKind::Switch),
        detectors,
    }
}

/// The topic target of a device: a stop rail's `stop`, a switch's `point`.
pub fn target_of(kind: DeviceKind) -> Target {
    match kind {
        DeviceKind::StopRail => Target::Stop,
        DeviceKind::Switch => Target::Point,
    }
}

/// What the twin does with a message a board (or anyone) published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Publish this (a `get` answered).
    Publish {
        /// Topic.
        topic: String,
        /// Payload.
        payload: &'static str,
    },
    /// A detector reported its block: the block's id and whether it reported `CLOSE`.
    Block(usize, bool),
    /// Nothing (the twin's own messages coming back).
    Nothing,
    /// Not readable, in words (counted and logged).
    Unreadable(String),
}

/// The twin's answer to a message: a `get` of a layout device is answered with its desired state (an unknown
/// id is unreadable: 2023 did not answer it either); a block report of a layout block is taken.
pub fn reply(layout: &Layout, topic: &str, payload: &[u8], desired: impl Fn(usize) -> OnOff) -> Reply {
    match read(topic, payload) {
        Ok(FromBoard::Get(target, id)) => match layout.device_id(&id) {
            Some(d) if target_of(layout.devices[d].kind) == target => {
                Reply::Publish { topic: get_accepted_topic(target, &id), payload: state_word(target, desired(d)) }
            }
            _ => Reply::Unreadable(format!("`{topic}`: the layout has no such {}", target.word())),
        },
        Ok(FromBoard::Block(id, close)) => match layout.block_id(&id) {
            Some(b) => Reply::Block(b, close),
            None => Reply::Unreadable(format!("`{topic}`: the layout has no such block")),
        },
        Ok(FromBoard::Echo) => Reply::Nothing,
        Err(e) => Reply::Unreadable(e.to_string()),
    }
}

/// What the twin subscribes to (as the 2023 state manager, less its unused `train/#` and `setting/#`).
pub const FILTERS: [&str; 3] = ["point/#", "stop/#", "block/#"];

/// A device's desired state, asked when a board's `get` is answered.
pub type Desired = Arc<dyn Fn(usize) -> OnOff + Send + Sync>;

/// Where block reports go: (block, `CLOSE`).
pub type Reports = tokio::sync::mpsc::UnboundedSender<(usize, bool)>;

/// The running client (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Boards2023 {
    layout: Arc<Layout>,
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    /// Subscriptions acknowledged since the last connect.
    subscribed: Arc<AtomicU64>,
    stopped: Arc<AtomicBool>,
    unreadable: Arc<AtomicU64>,
}

impl Boards2023 {
    /// Connects to the boards' broker as `plarail-twin-<layout>`; `get`s are answered from `desired`, block
    /// reports go to `reports`. It reconnects by itself (every second) until stopped.
    pub fn start(layout: Arc<Layout>, broker: &BoardBroker, desired: Desired, reports: Reports) -> Boards2023 {
        let mut options = MqttOptions::new(format!("plarail-twin-{}", layout.name), broker.host.clone(), broker.port);
        options.set_keep_alive(Duration::from_secs(5)).set_clean_session(true);
        if let Some((user, password)) = &broker.login {
            options.set_credentials(user, password);
        }
        let (client, events) = AsyncClient::new(options, 1024);
        let boards = Boards2023 {
            layout,
            client,
            connected: Arc::new(AtomicBool::new(false)),
            subscribed: Arc::new(AtomicU64::new(0)),
            stopped: Arc::new(AtomicBool::new(false)),
            unreadable: Arc::new(AtomicU64::new(0)),
        };
        tokio::spawn(boards.clone().run(events, desired, reports));
        boards
    }

    /// Whether it is connected to the broker now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Waits (up to `limit`) until it is connected and subscribed, so that no board's `get` goes unheard;
    /// whether it is.
    pub async fn subscribed(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.subscribed.load(Ordering::SeqCst) < FILTERS.len() as u64 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Disconnects for good.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
    }

    /// Messages it could not read so far.
    pub fn unreadable(&self) -> u64 {
        self.unreadable.load(Ordering::SeqCst)
    }

    /// Tells the boards a device's new state (`…/delta`, QoS 0, as 2023); an error when the broker is not
    /// connected (the delta would be lost).
    pub fn delta(&self, device: usize, state: OnOff) -> Result<(), String> {
        if !self.connected() {
            return Err("the boards' MQTT broker is not connected".into());
        }
        let d = &self.layout.devices[device];
        let target = target_of(d.kind);
        self.client
            .try_publish(delta_topic(target, &d.name), QoS::AtMostOnce, false, state_word(target, state))
            .map_err(|e| format!("cannot publish to the boards' broker: {e}"))
    }

    async fn run(self, mut events: rumqttc::EventLoop, desired: Desired, reports: Reports) {
        while !self.stopped.load(Ordering::SeqCst) {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    self.connected.store(true, Ordering::SeqCst);
                    self.subscribed.store(0, Ordering::SeqCst);
                    for filter in FILTERS {
                        let _ = self.client.try_subscribe(filter, QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.subscribed.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => match reply(&self.layout, &p.topic, &p.payload, &*desired) {
                    Reply::Publish { topic, payload } => {
                        let _ = self.client.try_publish(topic, QoS::AtMostOnce, false, payload);
                    }
                    Reply::Block(block, close) => {
                        let _ = reports.send((block, close));
                    }
                    Reply::Nothing => {}
                    Reply::Unreadable(why) => {
                        self.unreadable.fetch_add(1, Ordering::SeqCst);
                        tracing::warn!("2023 boards: unreadable message: {why}");
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    if self.connected.swap(false, Ordering::SeqCst) {
                        tracing::warn!("2023 boards: lost the broker ({e}); connecting again");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
