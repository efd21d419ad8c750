//! The twin's side of the 2023 MQTT boards, in the 2023 state manager's place: one MQTT client on the boards'
//! broker that answers each board's `get` with the device's desired state (`…/get/accepted`), tells every
//! change (`…/delta`), and takes the detectors' block reports (`block/{id}/update`). As in 2023: QoS 0, the
//! subscriptions `point/#`, `stop/#`, `block/#` at QoS 1. Unlike 2023:
//! - every device's desired state is a **retained** `…/delta` while the link's track is in use: any broker
//!   (mosquitto as installed, EMQX, the embedded one) hands it to a board as it subscribes, so a board that
//!   comes back by any firmware, or missed a delta while it was away, has its states at once, without the
//!   broker telling who connected (the firmware treats a retained delta as any other; a servo already in place
//!   does not move). The link publishes them all again on every (re)connect (a broker restarted without
//!   persistence has lost them) and takes them off ([`Boards2023::clear`]) when its track goes out of use;
//! - it subscribes again on every (re)connect, and anything it cannot read (an unknown id, another word, more
//!   topic levels, a huge payload) is counted and logged and changes nothing.
//!
//! No rotation of re-sent deltas: the firmware holds a stop rail's servo for a blocking 200 ms on every
//! delta it acts on, its detectors unread meanwhile, so re-telling states the boards have would cost passes.
//! [`setting_of`] is a layout board's `setting.json`, which the virtual boards boot from.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use sim::layout::{BoardId, BoardKind, DetectorTarget, DeviceKind, Layout, OnOff};
use tokio::sync::broadcast;

use crate::boards2023::firmware::{Detector, Io, Setting};
use crate::boards2023::presence::{Presence, SYS_FILTERS, read_sys};
use crate::boards2023::protocol::{FromBoard, Target, delta_topic, get_accepted_topic, read, state_word};

/// Where the boards' broker is, the login if it needs one, TLS for an mqtts:// one, and how it tells its
/// clients' comings and goings.
#[derive(Debug, Clone)]
pub struct BoardBroker {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User and password.
    pub login: Option<(String, String)>,
    /// TLS settings (mqtts://), or plain MQTT.
    pub tls: Option<rumqttc::TlsConfiguration>,
    /// Clients connecting and going as the embedded broker reports them, every one from its start; without it,
    /// the link reads them from the broker's `$SYS` topics ([`crate::boards2023::presence`]), from when it subscribed.
    pub presence: Option<broadcast::Sender<Presence>>,
}

impl BoardBroker {
    /// A plain MQTT broker at `host:port` without a login, whose `$SYS` topics tell presence.
    pub fn plain(host: &str, port: u16) -> BoardBroker {
        BoardBroker { host: host.into(), port, login: None, tls: None, presence: None }
    }
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
    /// Publish this (a `get` of this device answered).
    Publish {
        /// The device asked.
        device: usize,
        /// Topic.
        topic: String,
        /// Payload.
        payload: &'static str,
    },
    /// A `get` of this device left unanswered (the track this link drives is not the one in use).
    Held(usize),
    /// A detector reported its block: the block's id and whether it reported `CLOSE`.
    Block(usize, bool),
    /// Nothing (the twin's own messages coming back).
    Nothing,
    /// Not readable, in words (counted and logged).
    Unreadable(String),
}

/// The twin's answer to a message: a `get` of a layout device is answered with its desired state, or held
/// when `desired` gives none (an unknown id is unreadable: 2023 did not answer it either); a block report of a
/// layout block is taken.
pub fn reply(layout: &Layout, topic: &str, payload: &[u8], desired: impl Fn(usize) -> Option<OnOff>) -> Reply {
    match read(topic, payload) {
        Ok(FromBoard::Get(target, id)) => match layout.device_id(&id) {
            Some(d) if target_of(layout.devices[d].kind) == target => match desired(d) {
                Some(state) => Reply::Publish {
                    device: d,
                    topic: get_accepted_topic(target, &id),
                    payload: state_word(target, state),
                },
                None => Reply::Held(d),
            },
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

/// A device's desired state, asked when a board's `get` is answered (`None`: leave it unanswered).
pub type Desired = Arc<dyn Fn(usize) -> Option<OnOff> + Send + Sync>;

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
    /// Each device's state as retained on the broker (`None`: nothing retained by this link), by device.
    /// Held while a delta is published, so that the broker keeps the newest.
    retained: Arc<Mutex<Vec<Option<OnOff>>>>,
    /// Its subscriptions: the boards' topics, and the broker's `$SYS` presence topics where it has no other way.
    filters: Vec<&'static str>,
    presence: broadcast::Sender<Presence>,
    /// Whether presence is told of every client from the start (the embedded broker).
    told_from_start: bool,
}

impl Boards2023 {
    /// Connects to the boards' broker as `plarail-twin-<layout>-<role>`; `get`s are answered from `desired`,
    /// block reports go to `reports`. It reconnects by itself (every second) until stopped.
    pub fn start(
        layout: Arc<Layout>,
        role: &str,
        broker: &BoardBroker,
        desired: Desired,
        reports: Reports,
    ) -> Boards2023 {
        let id = format!("plarail-twin-{}-{role}", layout.name);
        let mut options = MqttOptions::new(id, broker.host.clone(), broker.port);
        options.set_keep_alive(Duration::from_secs(5)).set_clean_session(true);
        if let Some((user, password)) = &broker.login {
            options.set_credentials(user, password);
        }
        if let Some(tls) = &broker.tls {
            options.set_transport(Transport::tls_with_config(tls.clone()));
        }
        let (client, events) = AsyncClient::new(options, 1024);
        let mut filters = FILTERS.to_vec();
        if broker.presence.is_none() {
            filters.extend(SYS_FILTERS);
        }
        let boards = Boards2023 {
            layout: layout.clone(),
            client,
            connected: Arc::new(AtomicBool::new(false)),
            subscribed: Arc::new(AtomicU64::new(0)),
            stopped: Arc::new(AtomicBool::new(false)),
            unreadable: Arc::new(AtomicU64::new(0)),
            retained: Arc::new(Mutex::new(vec![None; layout.devices.len()])),
            filters,
            presence: broker.presence.clone().unwrap_or_else(|| broadcast::channel(256).0),
            told_from_start: broker.presence.is_some(),
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
        while self.subscribed.load(Ordering::SeqCst) < self.filters.len() as u64 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The boards' comings and goings from now on: as the broker tells them, and a board counted connected
    /// when a message comes from it (a `get` of its device, a report of its detector).
    pub fn presence(&self) -> broadcast::Receiver<Presence> {
        self.presence.subscribe()
    }

    /// Whether [`Boards2023::presence`] tells every board from its start (else a board connected before the
    /// link subscribed is unknown until it is heard from).
    pub fn told_from_start(&self) -> bool {
        self.told_from_start
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

    /// Tells the boards a device's new state (`…/delta`, QoS 0, retained); an error when the broker is not
    /// connected (the delta would be lost).
    pub fn delta(&self, device: usize, state: OnOff) -> Result<(), String> {
        let mut retained = self.retained.lock().expect("retained");
        if !self.connected() {
            return Err("the boards' MQTT broker is not connected".into());
        }
        self.publish(device, Some(state)).map_err(|e| format!("cannot publish to the boards' broker: {e}"))?;
        retained[device] = Some(state);
        Ok(())
    }

    /// Retains every MQTT device's desired state on the broker (each told to the boards connected now as a
    /// delta), or does so as soon as the broker is connected.
    pub fn retain_all(&self, desired: impl Fn(usize) -> OnOff) {
        let mut retained = self.retained.lock().expect("retained");
        for device in self.mqtt_devices() {
            retained[device] = Some(desired(device));
        }
        if self.connected() {
            self.publish_retained(&retained);
        }
    }

    /// Takes this link's retained states off the broker (an empty retained message on each device's delta
    /// topic, which the firmware ignores), as its track goes out of use.
    pub fn clear(&self) {
        let mut retained = self.retained.lock().expect("retained");
        for device in self.mqtt_devices() {
            if retained[device].take().is_some() && self.connected() {
                let _ = self.publish(device, None);
            }
        }
    }

    /// The devices on the layout's MQTT boards.
    fn mqtt_devices(&self) -> impl Iterator<Item = usize> + '_ {
        let layout = &self.layout;
        (0..layout.devices.len()).filter(|&d| layout.boards[layout.devices[d].board].kind == BoardKind::Mqtt)
    }

    /// Publishes every retained state again (after a (re)connect).
    fn publish_retained(&self, retained: &[Option<OnOff>]) {
        for (device, state) in retained.iter().enumerate() {
            if let Some(state) = *state
                && let Err(e) = self.publish(device, Some(state))
            {
                tracing::warn!("2023 boards: cannot retain {}'s state: {e}", self.layout.devices[device].name);
            }
        }
    }

    /// Publishes a device's retained delta (`None`: the empty message that removes it).
    fn publish(&self, device: usize, state: Option<OnOff>) -> Result<(), rumqttc::ClientError> {
        let d = &self.layout.devices[device];
        let target = target_of(d.kind);
        let payload = state.map_or("", |s| state_word(target, s));
        self.client.try_publish(delta_topic(target, &d.name), QoS::AtMostOnce, true, payload)
    }

    /// A message came from `board`: it is connected (told where the broker does not tell it from the start).
    fn heard(&self, board: BoardId) {
        if !self.told_from_start {
            let _ = self.presence.send(Presence::Connected(client_id(&self.layout.boards[board].name)));
        }
    }

    async fn run(self, mut events: rumqttc::EventLoop, desired: Desired, reports: Reports) {
        while !self.stopped.load(Ordering::SeqCst) {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let retained = self.retained.lock().expect("retained");
                    self.connected.store(true, Ordering::SeqCst);
                    self.subscribed.store(0, Ordering::SeqCst);
                    for filter in &self.filters {
                        let _ = self.client.try_subscribe(*filter, QoS::AtLeastOnce);
                    }
                    self.publish_retained(&retained);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.subscribed.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.starts_with('$') => {
                    if let Some(presence) = read_sys(&p.topic, &p.payload) {
                        let _ = self.presence.send(presence);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => match reply(&self.layout, &p.topic, &p.payload, &*desired) {
                    Reply::Publish { device, topic, payload } => {
                        self.heard(self.layout.devices[device].board);
                        let _ = self.client.try_publish(topic, QoS::AtMostOnce, false, payload);
                    }
                    Reply::Held(device) => {
                        self.heard(self.layout.devices[device].board);
                        tracing::info!(
                            "2023 boards: {} asked its state on the track not in use; it is told when that track is",
                            self.layout.devices[device].name
                        );
                    }
                    Reply::Block(block, close) => {
                        let target = if close { DetectorTarget::Close } else { DetectorTarget::Open };
                        let wired = self.layout.detectors.iter().filter(|d| d.block == block && d.target == target);
                        for board in wired.filter_map(|d| d.wiring.map(|(b, _)| b)) {
                            self.heard(board);
                        }
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
