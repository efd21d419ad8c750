//! The v2 protocol on `/ws/v2`: JSON text frames, spoken by the twin's phone page, the desktop window attached
//! to a gateway, and the load tool.
//!
//! A client sends [`ClientFrame`]s: a command with an `id` that the answer repeats:
//! - `{"id": 1, "cmd": "device", "name": "chofu_b1", "state": "ON"}`
//! - `{"id": 2, "cmd": "speed", "train": "TAKAO", "speed": 50}` (the 2021 scale: 0..100, percent of the
//!   train's top speed)
//! - `{"id": 3, "cmd": "snapshot"}`
//! - `{"id": 4, "cmd": "operator", "token": "...", "action": "live" | "live_force" | "sim" | "emergency_stop" |
//!   "reset" | "manual" | "auto" | "mixed"}`; a 2023 pass detector out of service or back, a train placed in a
//!   block: `"action": {"detector_out_of_service": "chofu_down_b1/CLOSE"}`, `{"detector_in_service": "…"}`,
//!   `{"place_train": {"train": "KEIO8000", "block": "chofu_down_b1"}}`
//!
//! The server sends [`ServerFrame`]s, each with a `type`: a `snapshot` first (and again after a client fell
//! behind), then answers to commands (`ack`, `rejected`, `failed`, `denied`, `error`) and what happens on the
//! track (`device`, `speed`, `trains`, `board`, `mode`, `event`).

use serde::{Deserialize, Serialize};
use sim::auto::{Operation, TrainPlan};
use sim::layout::{DeviceKind, Layout, OnOff};
use sim::twin::Mode;
use sim::twin::TrainStatus;

/// A command with the id its answer repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientFrame {
    /// The command's id.
    pub id: u64,
    /// The command.
    #[serde(flatten)]
    pub command: Command,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Operate a device.
    Device {
        /// The device's name.
        name: String,
        /// The state asked for.
        state: OnOff,
    },
    /// Set a train's speed.
    Speed {
        /// The train's name.
        train: String,
        /// Speed on the 2021 scale, 0..100 (percent of the train's top speed); negative asks for reverse,
        /// which the interlocking refuses.
        speed: i32,
    },
    /// Send a snapshot.
    Snapshot {},
    /// An operator action, with the operator token.
    Operator {
        /// The token.
        token: String,
        /// The action.
        action: OperatorAction,
    },
}

/// An operator action (see `crate::operator`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    /// Switch to the real boards, refused while any does not answer.
    Live,
    /// Switch to the real boards even with boards not answering.
    LiveForce,
    /// Switch back to the simulation.
    Sim,
    /// Run the layout by hand (visitors and the operator).
    Manual,
    /// Run every train automatically (visitors' commands refused).
    Auto,
    /// Run automatically except where a visitor operates.
    Mixed,
    /// Raise every stop rail and stop every train.
    EmergencyStop,
    /// Drive every device and train back to the layout's initial state.
    Reset,
    /// Take a 2023 pass detector (`BLOCK/CLOSE` or `BLOCK/OPEN`) out of service: its reports are ignored, so a
    /// stuck one no longer holds its block.
    DetectorOutOfService(String),
    /// Put a pass detector back in service.
    DetectorInService(String),
    /// Place a train in a block (in live mode: the mirror's train, where the hardware says a train is).
    PlaceTrain {
        /// The train's name.
        train: String,
        /// The block's id.
        block: String,
    },
}

impl ClientFrame {
    /// Reads a client frame: its id (when one could be read) and the command, or why it is not one.
    pub fn decode(text: &str) -> (Option<u64>, Result<Command, String>) {
        let mut value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => return (None, Err("not a JSON frame".into())),
        };
        let id = value.as_object_mut().and_then(|o| o.remove("id")).and_then(|v| v.as_u64());
        if value.get("cmd").and_then(|c| c.as_str()) == Some("device")
            && let Some(reason) = super::unknown_state(&value)
        {
            return (id, Err(reason));
        }
        (id, serde_json::from_value(value).map_err(|e| format!("not a command: {e}")))
    }

    /// The frame as JSON text.
    pub fn encode(&self) -> String {
        super::encode(self)
    }
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The command was carried out (an operator action says what it did in `detail`).
    Ack {
        /// The command's id.
        id: u64,
        /// What an operator action did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// The interlocking refused the command.
    Rejected {
        /// The command's id.
        id: u64,
        /// The rule that refused it.
        rule: String,
        /// Why, in words.
        reason: String,
    },
    /// The command was allowed but not carried out.
    Failed {
        /// The command's id.
        id: u64,
        /// Why, in words.
        reason: String,
    },
    /// An operator action without the right token.
    Denied {
        /// The command's id.
        id: u64,
        /// Why, in words.
        reason: String,
    },
    /// The frame is not a command (or the client is over its limits).
    Error {
        /// The command's id, when one could be read.
        id: Option<u64>,
        /// Why, in words.
        reason: String,
    },
    /// The whole track.
    Snapshot(State),
    /// A device's new state.
    Device(Device),
    /// A train's speed was commanded.
    Speed {
        /// The train's name.
        train: String,
        /// Its speed on the 2021 scale.
        speed: i32,
    },
    /// Where every train is now.
    Trains {
        /// Every train.
        trains: Vec<Train>,
    },
    /// A board's health changed.
    Board(Board),
    /// A block became occupied or free.
    Block(Block),
    /// The mode changed.
    Mode {
        /// The mode now.
        mode: Mode,
    },
    /// The operation changed.
    Operation {
        /// The operation now.
        operation: Operation,
    },
    /// Automatic operation's plans changed (every train's).
    Plans {
        /// Each train's plan.
        plans: Vec<Plan>,
    },
    /// Something happened, in words.
    Event(Event),
    /// The track's core went offline or came back (an edge gateway's link to it across the broker).
    Online {
        /// Whether it is online now.
        online: bool,
    },
}

/// The whole track: the v2 `snapshot` frame, and `GET /api/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Which track the commands drive.
    pub mode: Mode,
    /// How the layout is run: `manual`, `auto` or `mixed`.
    #[serde(default)]
    pub operation: Operation,
    /// Automatic operation's plan for each train (left out in manual operation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<Plan>,
    /// Simulation time, ms.
    pub time_ms: u64,
    /// Every device.
    pub devices: Vec<Device>,
    /// Every train.
    pub trains: Vec<Train>,
    /// Every servo board and speed controller.
    pub boards: Vec<Board>,
    /// Every block and whether it is occupied, as its detectors report (a layout without blocks has none, and
    /// the key is left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Block>,
    /// Whether the track's core is reachable: always in one process; on an edge gateway, whether the core is
    /// online across the broker (when it is not, commands are refused and the rest is as last seen).
    #[serde(default = "yes")]
    pub online: bool,
}

fn yes() -> bool {
    true
}

/// A device and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its name.
    pub name: String,
    /// Its kind (in snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DeviceKind>,
    /// Its state; `null` while it is between positions.
    pub state: Option<OnOff>,
}

/// A train for views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Train {
    /// Its name.
    pub name: String,
    /// The segment its front is on.
    pub segment: String,
    /// Its front's offset on that segment, mm.
    pub offset_mm: f64,
    /// Its front on the schematic, x.
    pub x: f64,
    /// Its front on the schematic, y.
    pub y: f64,
    /// The speed it runs at, mm/s.
    pub speed_mm_s: u32,
    /// Running, crashed, derailed or removed.
    pub status: TrainStatus,
    /// The speed it was last commanded, on the 2021 scale (in snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<i32>,
    /// Where its name is drawn (the middle of the name's baseline, layout units), placed by the layout's drawing
    /// clear of the station names and of the other trains' names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<[f64; 2]>,
}

/// Automatic operation's plan for a train.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The train.
    pub train: String,
    /// Whether it runs automatically now.
    pub automatic: bool,
    /// The stop rail it stops at next (or stands at).
    pub next_stop: Option<String>,
    /// Why it stands, in words (none while it runs).
    pub waiting: Option<String>,
    /// How many times it has called at a station under automatic operation.
    pub calls: u32,
}

impl Plan {
    /// Every train's plan as views see it.
    pub fn all(layout: &Layout, plans: &[TrainPlan], now_ms: u64) -> Vec<Plan> {
        plans
            .iter()
            .enumerate()
            .map(|(t, p)| Plan {
                train: layout.trains[t].name.clone(),
                automatic: p.automatic,
                next_stop: p.next_stop.map(|d| layout.devices[d].name.clone()),
                waiting: p.wait.as_ref().map(|w| w.describe(layout, now_ms)),
                calls: p.calls,
            })
            .collect()
    }
}

/// A block and whether a train is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Its id.
    pub id: String,
    /// Occupied (`CLOSE`): a train is in it (in live mode, as its detectors last reported).
    pub occupied: bool,
    /// Its detectors that are not well, in words (`CLOSE stuck`, `OPEN out of service`); left out when both
    /// are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectors: Option<String>,
}

/// A servo board's or speed controller's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// Its name.
    pub name: String,
    /// The address the track drives it at.
    pub address: String,
    /// Whether it answers.
    pub alive: bool,
    /// Whether its devices' states are being re-sent.
    pub restoring: bool,
    /// Whether nothing is known of whether it is there (a 2023 board on a broker that does not tell its
    /// clients, not heard from yet); left out when it is known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What kind of thing.
    pub kind: EventKind,
    /// What happened, in words.
    pub text: String,
    /// The sensor a train passed (sensor events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// The train that passed it (sensor events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A train passed a hall sensor.
    Sensor,
    /// Trains collided.
    Collision,
    /// A train derailed.
    Derailment,
    /// In live mode, the real track contradicted the mirror.
    Divergence,
    /// Automatic operation: a train called at a station or departed, a deadlock.
    Automatic,
    /// A 2023 pass detector's health changed (stuck, chattering, out of service, well again).
    Detector,
}

impl ServerFrame {
    /// Reads a server frame.
    pub fn decode(text: &str) -> Result<ServerFrame, String> {
        serde_json::from_str(text).map_err(|e| format!("not a v2 server frame: {e}"))
    }

    /// The frame as JSON text.
    pub fn encode(&self) -> String {
        super::encode(self)
    }

    /// The event of a kind with words only.
    pub fn event(kind: EventKind, text: String) -> ServerFrame {
        ServerFrame::Event(Event { kind, text, sensor: None, train: None })
    }
}

impl State {
    /// Takes in a change frame, as a client following the feed does (answers and events change nothing; a
    /// snapshot replaces the whole). Every change sets a value, so taking one twice, or one the state already
    /// holds, leaves the state as it was.
    pub fn apply(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Snapshot(s) => *self = s.clone(),
            ServerFrame::Device(d) => {
                if let Some(now) = self.devices.iter_mut().find(|x| x.name == d.name) {
                    now.state = d.state;
                }
            }
            ServerFrame::Speed { train, speed } => {
                if let Some(now) = self.trains.iter_mut().find(|t| &t.name == train) {
                    now.speed = Some(*speed);
                }
            }
            ServerFrame::Trains { trains } => {
                for t in trains {
                    match self.trains.iter_mut().find(|x| x.name == t.name) {
                        // The commanded speed comes with `speed` frames only.
                        Some(now) => *now = Train { speed: now.speed, ..t.clone() },
                        None => self.trains.push(t.clone()),
                    }
                }
            }
            ServerFrame::Board(b) => match self.boards.iter_mut().find(|x| x.name == b.name) {
                Some(now) => *now = b.clone(),
                None => self.boards.push(b.clone()),
            },
            ServerFrame::Block(b) => {
                if let Some(now) = self.blocks.iter_mut().find(|x| x.id == b.id) {
                    *now = b.clone();
                }
            }
            ServerFrame::Mode { mode } => self.mode = *mode,
            ServerFrame::Operation { operation } => {
                self.operation = *operation;
                // In manual operation no train has a plan (as a snapshot has none).
                if *operation == Operation::Manual {
                    self.plans.clear();
                }
            }
            ServerFrame::Plans { plans } => self.plans = plans.clone(),
            ServerFrame::Online { online } => self.online = *online,
            ServerFrame::Ack { .. }
            | ServerFrame::Rejected { .. }
            | ServerFrame::Failed { .. }
            | ServerFrame::Denied { .. }
            | ServerFrame::Error { .. }
            | ServerFrame::Event(_) => {}
        }
    }
}
