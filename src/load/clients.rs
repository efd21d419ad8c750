//! The load's clients: what they share (the switches followed, commands in flight, latencies), the watching
//! clients, and how a client connects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use sim::layout::OnOff;
use tokio_tungstenite::tungstenite::Message;
use wire::{v2, v2021};

use super::switches::Switch;

/// A client WebSocket.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A command in flight: sent, waiting for its ack and for every client to see it.
pub struct Flight {
    /// Its v2 id.
    pub id: u64,
    /// The state it sets.
    pub on: bool,
    /// When it was sent.
    pub sent: Instant,
    /// How many clients have seen it.
    pub seen: usize,
    /// When the last of them saw it.
    pub last_seen: Instant,
    /// Whether the server acknowledged it (a 2021 command is taken as acknowledged when sent).
    pub acked: bool,
    /// Whether a frame showing the state it sets counts as seeing it even when that is no change for the
    /// client: after a refusal whose outcome may be unknown (a track cut off meanwhile), the device may already
    /// be in that state, and the command's answer is then the server's echo of the state.
    pub echo_counts: bool,
}

/// One switch as the load tool follows it.
#[derive(Default)]
pub struct Slot {
    /// Its state as last seen by every client (`true`: on).
    pub state: Option<bool>,
    /// Its command in flight.
    pub flight: Option<Flight>,
    /// Whether its last command was refused: it may or may not have been carried out (see
    /// [`Flight::echo_counts`]).
    pub uncertain: bool,
}

/// What every task shares.
pub struct Shared {
    switches: HashMap<String, usize>,
    /// The switches' names, by index.
    pub names: Vec<String>,
    /// The switches, by index.
    pub slots: Vec<Mutex<Slot>>,
    /// The switch of each v2 command in flight, by id.
    pub ids: Mutex<HashMap<u64, usize>>,
    clients: usize,
    /// Frames the watching clients received.
    pub messages: AtomicU64,
    /// Latency from a command to every client seeing it, µs.
    pub latencies: Mutex<Histogram<u64>>,
    /// Commands carried out.
    pub applied: AtomicU64,
    /// Commands the server refused.
    pub refused: AtomicU64,
    /// Commands the server's rate limits refused.
    pub limited: AtomicU64,
}

impl Shared {
    /// Follows `switches` (their states at the start) for `clients` watching clients.
    pub fn new(switches: &[Switch], clients: usize) -> Shared {
        Shared {
            switches: switches.iter().enumerate().map(|(i, d)| (d.name.clone(), i)).collect(),
            names: switches.iter().map(|d| d.name.clone()).collect(),
            slots: switches
                .iter()
                .map(|d| Mutex::new(Slot { state: d.state.map(|s| s == OnOff::On), flight: None, uncertain: false }))
                .collect(),
            ids: Mutex::default(),
            clients,
            messages: AtomicU64::new(0),
            latencies: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")),
            applied: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        }
    }

    /// A client saw switch `idx` in state `on`, a change for it or not (`changed`).
    fn seen(&self, idx: usize, on: bool, changed: bool) {
        let mut slot = self.slots[idx].lock().expect("slot lock");
        if let Some(f) = slot.flight.as_mut().filter(|f| f.on == on && (changed || f.echo_counts)) {
            f.seen += 1;
            f.last_seen = Instant::now();
        }
        self.complete(&mut slot);
    }

    /// The v2 commander's answer to command `id`.
    pub fn answered(&self, id: u64, refusal: Option<&str>) {
        let Some(idx) = self.ids.lock().expect("ids lock").remove(&id) else { return };
        match refusal {
            None => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                let mut slot = self.slots[idx].lock().expect("slot lock");
                if let Some(f) = slot.flight.as_mut() {
                    f.acked = true;
                }
                self.complete(&mut slot);
            }
            Some(reason) => self.refused(idx, reason),
        }
    }

    /// The server refused the command in flight for switch `idx` (or did not carry it out).
    pub fn refused(&self, idx: usize, reason: &str) {
        let counter = if reason.contains("too many commands") { &self.limited } else { &self.refused };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut slot = self.slots[idx].lock().expect("slot lock");
        slot.flight = None;
        slot.uncertain = true;
    }

    /// Records the latency and frees the switch once the command is acked and every client has seen it.
    fn complete(&self, slot: &mut Slot) {
        if let Some(f) = slot.flight.as_ref().filter(|f| f.acked && f.seen >= self.clients) {
            let micros = f.last_seen.duration_since(f.sent).as_micros() as u64;
            self.latencies.lock().expect("histogram lock").record(micros.max(1)).expect("latency in range");
            slot.state = Some(f.on);
            slot.flight = None;
        }
    }
}

/// A device change in a frame of either protocol, if it is one. A 2021 device frame is read without
/// allocating: a thousand clients read every frame on the cores the server runs on.
pub fn device_change(text: &str, protocol_v2: bool, f: impl FnOnce(&str, OnOff)) {
    if protocol_v2 {
        if let Ok(v2::ServerFrame::Device(v2::Device { name, state: Some(state), .. })) = v2::ServerFrame::decode(text)
        {
            f(&name, state);
        }
    } else if let Ok(d) = serde_json::from_str::<v2021::DeviceFrame<&str>>(text) {
        f(d.station_name, d.state);
    }
}

/// One watching client: counts every frame, and reports switch changes.
pub async fn watch(mut ws: Ws, shared: Arc<Shared>, protocol_v2: bool) {
    let mut known: Vec<Option<bool>> = vec![None; shared.slots.len()];
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        shared.messages.fetch_add(1, Ordering::Relaxed);
        device_change(text.as_str(), protocol_v2, |name, state| {
            let on = state == OnOff::On;
            if let Some(&idx) = shared.switches.get(name) {
                let changed = known[idx] != Some(on);
                known[idx] = Some(on);
                shared.seen(idx, on, changed);
            }
        });
    }
}

/// Opens a client WebSocket with a small read buffer (the default 128 KiB is zeroed on every read).
pub async fn connect(
    url: &str,
) -> tokio_tungstenite::tungstenite::Result<(Ws, tokio_tungstenite::tungstenite::handshake::client::Response)> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    tokio_tungstenite::connect_async_with_config(url, Some(config), false).await
}

/// The next text frame within 10 s.
pub async fn next_text(ws: &mut Ws) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}
