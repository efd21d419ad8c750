//! A virtual 2023 board on an MQTT broker: the firmware's state machine ([`crate::boards2023::firmware`]) behind a real
//! MQTT connection, as the ESP32 runs it: QoS 0, clean session, no will, PubSubClient's 15 s keep-alive; a stop
//! rail's 200 ms hold blocks the whole board (no message, no detector meanwhile); the festival build never
//! reconnects (a lost connection leaves it offline until restarted), the 2025 build tries every 5 s. Servo moves
//! go to a callback (the simulation, or a test); detector levels come from a shared list. Faults can be set at
//! run time: the connection cut, incoming messages dropped or delayed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::boards2023::firmware::{Act, Board, Build, RECONNECT_EVERY_MS, Setting};

/// PubSubClient's keep-alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often the board's loop reads its detectors.
pub const LOOP_EVERY: Duration = Duration::from_millis(10);

/// Faults a test or the operator injects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Incoming messages are lost.
    pub drop_messages: bool,
    /// Incoming messages wait this long before the board reads them, ms.
    pub delay_ms: u64,
}

/// Where a servo moved: `(pin, angle)`.
pub type Servo = Arc<dyn Fn(u8, u32) + Send + Sync>;

/// A running virtual board (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct VirtualMqttBoard {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    online: AtomicBool,
    gave_up: AtomicBool,
    /// Switched off for good.
    stopped: AtomicBool,
    dropped: std::sync::atomic::AtomicU64,
    cut: tokio::sync::Notify,
    faults: Mutex<Faults>,
    /// Each detector's level (`true`: closed).
    detectors: Mutex<Vec<bool>>,
}

impl VirtualMqttBoard {
    /// Boots the board and connects it to the broker at `host:port` (with `login` if given); servo moves go to
    /// `servo`.
    pub fn start(
        setting: Setting,
        build: Build,
        host: &str,
        port: u16,
        login: Option<(String, String)>,
        servo: Servo,
    ) -> VirtualMqttBoard {
        let shared = Arc::new(Shared {
            name: setting.name.clone(),
            online: AtomicBool::new(false),
            gave_up: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            dropped: std::sync::atomic::AtomicU64::new(0),
            cut: tokio::sync::Notify::new(),
            faults: Mutex::new(Faults::default()),
            detectors: Mutex::new(vec![false; setting.detectors.len()]),
        });
        let started = Instant::now();
        let (board, at_boot) = Board::boot(setting, build, 0);
        for act in &at_boot {
            if let Act::Move { pin, angle, .. } = act {
                servo(*pin, *angle);
            }
        }
        let mut options = MqttOptions::new(board.client_id(), host, port);
        options.set_keep_alive(KEEP_ALIVE).set_clean_session(true);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        tokio::spawn(run(board, options, shared.clone(), servo, started));
        VirtualMqttBoard { shared }
    }

    /// The board's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether it is connected to the broker now.
    pub fn online(&self) -> bool {
        self.shared.online.load(Ordering::SeqCst)
    }

    /// Whether it gave up its connection for good (the festival build, once the connection is lost).
    pub fn gave_up(&self) -> bool {
        self.shared.gave_up.load(Ordering::SeqCst)
    }

    /// Incoming messages dropped by the `drop_messages` fault so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Cuts its connection (as a Wi-Fi drop): the festival build stays offline, the 2025 build comes back.
    pub fn cut(&self) {
        self.shared.cut.notify_one();
    }

    /// Switches it off for good (whatever its build).
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.cut.notify_one();
    }

    /// Sets the faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Closes (`true`) or opens detector `i`.
    pub fn set_detector(&self, i: usize, closed: bool) {
        if let Some(level) = self.shared.detectors.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
            *level = closed;
        }
    }
}

/// The board's loop: connect, then messages and detectors, one at a time, until the connection is lost (and,
/// for the 2025 build, again after 5 s). The MQTT client's event loop runs in its own task and hands its events
/// over a channel, so that the board's ticks never interrupt a connection being made.
async fn run(mut board: Board, options: MqttOptions, shared: Arc<Shared>, servo: Servo, started: Instant) {
    loop {
        let (client, events) = AsyncClient::new(options.clone(), 64);
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let connection = tokio::spawn(forward(events, tx));
        let mut tick = tokio::time::interval(LOOP_EVERY);
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                _ = shared.cut.notified() => break,
                _ = tick.tick() => {
                    let closed = shared.detectors.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let now = started.elapsed().as_millis() as u64;
                    if shared.online.load(Ordering::SeqCst) {
                        act(&client, &servo, board.detectors(now, &closed)).await;
                    }
                    continue;
                }
            };
            match event {
                Some(Event::Incoming(Packet::ConnAck(_))) => {
                    shared.online.store(true, Ordering::SeqCst);
                    act(&client, &servo, board.connected()).await;
                }
                Some(Event::Incoming(Packet::Publish(p))) => {
                    let faults = *shared.faults.lock().unwrap_or_else(|e| e.into_inner());
                    if faults.drop_messages {
                        shared.dropped.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    if faults.delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
                    }
                    act(&client, &servo, board.message(&p.topic, &p.payload)).await;
                }
                Some(_) => {}
                None => break,
            }
        }
        connection.abort();
        shared.online.store(false, Ordering::SeqCst);
        // The festival build stays offline until restarted.
        if !board.reconnects() || shared.stopped.load(Ordering::SeqCst) {
            shared.gave_up.store(true, Ordering::SeqCst);
            return;
        }
        tokio::time::sleep(Duration::from_millis(RECONNECT_EVERY_MS)).await;
    }
}

/// The MQTT client's event loop: its events to `tx` until the connection fails (or the board stops reading).
async fn forward(mut events: rumqttc::EventLoop, tx: tokio::sync::mpsc::Sender<Event>) {
    while let Ok(event) = events.poll().await {
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// Carries out what the firmware does: publishes and subscriptions (QoS 0, not retained) and servo moves (a
/// stop rail's hold blocks the board).
async fn act(client: &AsyncClient, servo: &Servo, acts: Vec<Act>) {
    for a in acts {
        match a {
            Act::Subscribe(filter) => {
                let _ = client.try_subscribe(filter, QoS::AtMostOnce);
            }
            Act::Publish { topic, payload } => {
                let _ = client.try_publish(topic, QoS::AtMostOnce, false, payload);
            }
            Act::Move { pin, angle, hold_ms } => {
                servo(pin, angle);
                if let Some(ms) = hold_ms {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
    }
}
