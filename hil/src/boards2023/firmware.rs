//! The 2023 ESP32 board firmware (`ueckoken/plarail2023: hardware/esp32-control`, festival build `7beb801`) as a
//! state machine over MQTT messages and detector levels, branch by branch from its source, quirks included:
//!
//! - Client id `esp32-client-<name>`; clean session, no will, QoS 0. After the first connect it subscribes to
//!   `stop/+/get/accepted`, `point/+/get/accepted`, `stop/+/delta`, `point/+/delta` and publishes `get` once to
//!   `point/{id}/get` for each of its points, then `stop/{id}/get` for each of its stops (`main.cpp`,
//!   `IOManager::getInitialState`).
//! - A message on any topic starting `stop/` (or `point/`) is handled alike, `…/get/accepted` or `…/delta`:
//!   the id is the text up to the next `/`; the payload, read as a C string (up to the first NUL), is compared
//!   exactly with the two words; any other word, or an id not the board's own, does nothing
//!   (`TopicRouter.cpp`). The first of the board's stops with that id moves.
//! - A stop rail is attached, written (`STOP_STATE_STOP` 180 degrees, `STOP_STATE_GO` 0), held for a blocking
//!   200 ms (the whole board waits: no message, no detector meanwhile), then detached (`StopRail.cpp`). A point
//!   is attached at boot (the servo library's default pulse: 1472 us, angle 92, neither position) and stays
//!   attached: normal 159 degrees, reverse 179 (`PointRail.cpp`).
//! - A detector is a GPIO pulled up; while it reads LOW (the micro-switch closed) it publishes
//!   `block/{block_id}/update` with its configured word (`CLOSE` or `OPEN`) at most once every 3000 ms, counted
//!   from boot, so the first 3 s after boot say nothing (`PassDetector.cpp`).
//! - PubSubClient's buffer is 256 bytes: a longer message never reaches the callback.
//! - The festival build never reconnects; the 2025 build (`--firmware 2025`) retries every 5 s and subscribes
//!   again, but never asks for its state again.

use crate::boards2021::firmware::POWER_ON_ANGLE;

/// The four subscriptions, in the order the firmware makes them.
pub const SUBSCRIPTIONS: [&str; 4] = ["stop/+/get/accepted", "point/+/get/accepted", "stop/+/delta", "point/+/delta"];
/// A stop rail's angle for `STOP_STATE_STOP` (bar up).
pub const STOP_ON_ANGLE: u32 = 180;
/// A stop rail's angle for `STOP_STATE_GO` (bar down).
pub const STOP_OFF_ANGLE: u32 = 0;
/// A point's angle for `POINT_STATE_NORMAL`.
pub const POINT_STRAIGHT_ANGLE: u32 = 159;
/// A point's angle for `POINT_STATE_REVERSE`.
pub const POINT_REVERSE_ANGLE: u32 = 179;
/// How long a stop rail's servo is held (and the board blocked) before it is detached, ms.
pub const STOP_HOLD_MS: u64 = 200;
/// A detector held closed publishes at most this often, ms.
pub const DETECTOR_EVERY_MS: u64 = 3000;
/// PubSubClient's buffer: the packet (fixed header, topic, payload) must fit.
pub const MAX_PACKET: usize = 256;
/// How often the 2025 build tries the broker again, ms.
pub const RECONNECT_EVERY_MS: u64 = 5000;

/// A servo's pin and the id it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Io {
    /// The device id.
    pub id: String,
    /// The GPIO.
    pub pin: u8,
}

/// A detector: its block, the word it reports, its GPIO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detector {
    /// The block it reports.
    pub block_id: String,
    /// `CLOSE` (the block's entry) or `OPEN` (its exit).
    pub target: String,
    /// The GPIO.
    pub pin: u8,
}

/// A board's `setting.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Setting {
    /// The board's name (its client id's suffix).
    pub name: String,
    /// Its stop rails.
    pub stops: Vec<Io>,
    /// Its points.
    pub points: Vec<Io>,
    /// Its detectors.
    pub detectors: Vec<Detector>,
}

/// Which build the board runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Build {
    /// The festival build: never reconnects.
    #[default]
    Festival2023,
    /// The 2025 build: reconnects every 5 s and subscribes again.
    Reconnecting2025,
}

/// What the board does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Subscribe to a topic filter (QoS 0).
    Subscribe(&'static str),
    /// Publish (QoS 0, not retained).
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Drive a servo to an angle; a stop rail's is then held `hold_ms`, the board blocked meanwhile, and
    /// detached.
    Move {
        /// The GPIO.
        pin: u8,
        /// The angle.
        angle: u32,
        /// For a stop rail: the blocking hold before the detach.
        hold_ms: Option<u64>,
    },
}

/// One board (see the module documentation).
#[derive(Debug, Clone)]
pub struct Board {
    setting: Setting,
    build: Build,
    boot_ms: u64,
    connected_before: bool,
    last_report_ms: Vec<u64>,
}

impl Board {
    /// The board powered on at `now_ms`, and what it does then (its points attached at the default pulse).
    pub fn boot(setting: Setting, build: Build, now_ms: u64) -> (Board, Vec<Act>) {
        let acts =
            setting.points.iter().map(|p| Act::Move { pin: p.pin, angle: POWER_ON_ANGLE, hold_ms: None }).collect();
        let last_report_ms = vec![0; setting.detectors.len()];
        (Board { setting, build, boot_ms: now_ms, connected_before: false, last_report_ms }, acts)
    }

    /// Its setting.
    pub fn setting(&self) -> &Setting {
        &self.setting
    }

    /// Its MQTT client id.
    pub fn client_id(&self) -> String {
        format!("esp32-client-{}", self.setting.name)
    }

    /// Whether it tries the broker again after losing it.
    pub fn reconnects(&self) -> bool {
        self.build == Build::Reconnecting2025
    }

    /// Connected to the broker: the subscriptions, and after the first connect only, a `get` per device.
    pub fn connected(&mut self) -> Vec<Act> {
        let mut acts: Vec<Act> = SUBSCRIPTIONS.iter().map(|f| Act::Subscribe(f)).collect();
        if !std::mem::replace(&mut self.connected_before, true) {
            let get =
                |kind: &str, io: &Io| Act::Publish { topic: format!("{kind}/{}/get", io.id), payload: b"get".to_vec() };
            acts.extend(self.setting.points.iter().map(|p| get("point", p)));
            acts.extend(self.setting.stops.iter().map(|s| get("stop", s)));
        }
        acts
    }

    /// A message from the broker.
    pub fn message(&mut self, topic: &str, payload: &[u8]) -> Vec<Act> {
        // MQTT's fixed header (at most 5 bytes) and the topic's length (2) count against the buffer.
        if 5 + 2 + topic.len() + payload.len() > MAX_PACKET {
            return Vec::new();
        }
        let word = match payload.iter().position(|&b| b == 0) {
            Some(nul) => &payload[..nul],
            None => payload,
        };
        // The two branches of `TopicRouter.cpp`: the devices, their two words and angles, and a stop rail's hold.
        let (rest, devices, words, hold_ms) = if let Some(rest) = topic.strip_prefix("stop/") {
            let words = [(&b"STOP_STATE_GO"[..], STOP_OFF_ANGLE), (&b"STOP_STATE_STOP"[..], STOP_ON_ANGLE)];
            (rest, &self.setting.stops, words, Some(STOP_HOLD_MS))
        } else if let Some(rest) = topic.strip_prefix("point/") {
            let words = [
                (&b"POINT_STATE_NORMAL"[..], POINT_STRAIGHT_ANGLE),
                (&b"POINT_STATE_REVERSE"[..], POINT_REVERSE_ANGLE),
            ];
            (rest, &self.setting.points, words, None)
        } else {
            return Vec::new();
        };
        let Some((id, _)) = rest.split_once('/') else { return Vec::new() };
        let Some(&(_, angle)) = words.iter().find(|(w, _)| *w == word) else { return Vec::new() };
        match devices.iter().find(|d| d.id == id) {
            Some(d) => vec![Act::Move { pin: d.pin, angle, hold_ms }],
            None => Vec::new(),
        }
    }

    /// One pass of the loop at `now_ms` with each detector's level (`true`: closed, LOW): the reports due.
    pub fn detectors(&mut self, now_ms: u64, closed: &[bool]) -> Vec<Act> {
        let millis = now_ms.saturating_sub(self.boot_ms);
        let mut acts = Vec::new();
        for (i, d) in self.setting.detectors.iter().enumerate() {
            if !closed.get(i).copied().unwrap_or(false)
                || millis.wrapping_sub(self.last_report_ms[i]) < DETECTOR_EVERY_MS
            {
                continue;
            }
            acts.push(Act::Publish {
                topic: format!("block/{}/update", d.block_id),
                payload: d.target.clone().into_bytes(),
            });
            self.last_report_ms[i] = millis;
        }
        acts
    }
}
