//! What the journal records of a session, one JSON object per entry: what `/api/history` serves, what
//! `plarail-twin journal export` writes a line of, and what `plarail-twin replay` plays back. Every entry has its
//! wall-clock time (`unix_ms`); what it is, is told by its keys (see [`What`]). The gateway writes them, the replay
//! reads them: this is their one definition.
//!
//! A session starts with a [`Session`] entry (the layout, each device's state, the simulation's time then); the
//! simulation time of a later entry is that time plus the wall-clock time since (the simulation runs paced to
//! the wall clock), or its own `sim_ms` where it has one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sim::auto::Operation;
use sim::layout::OnOff;
use sim::twin::Mode;

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its sequence number in the journal (given on reading; not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Wall-clock time, ms since the Unix epoch.
    pub unix_ms: u64,
    /// What it records.
    #[serde(flatten)]
    pub what: What,
}

/// What an entry records, told apart by its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum What {
    /// A session started (the gateway started on the track).
    Session {
        /// How it started.
        session: Session,
    },
    /// A command (a visitor's, the operator's or automatic operation's) and what came of it.
    Command(Command),
    /// An operator action and what came of it.
    Operator {
        /// The action, as the v2 protocol spells it.
        operator: serde_json::Value,
        /// Done or not.
        result: Result,
        /// What was done, or why not.
        reason: String,
    },
    /// Automatic operation did or found something (in words).
    Automatic {
        /// What.
        automatic: String,
    },
    /// A train passed a hall sensor: in the simulation (`sim_ms`, `train`), or as a board reported it
    /// (`train_id`, the magnets' id).
    Sensor {
        /// The sensor's name.
        sensor: String,
        /// The train's name (the simulation's passes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train: Option<String>,
        /// The magnets' id a board read (a board's report).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_id: Option<u32>,
        /// Simulation time of the pass, ms (the simulation's passes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sim_ms: Option<u64>,
    },
    /// A block's detectors reported it (`reported`), or the simulation found it, occupied or free.
    Block {
        /// The block's id.
        block: String,
        /// Occupied.
        occupied: bool,
        /// Reported by a board (else the simulation's).
        reported: bool,
    },
    /// A board came or went.
    Board {
        /// The board's name.
        board: String,
        /// Reachable now.
        reachable: bool,
    },
    /// A collision or derailment in the simulation (in words).
    Accident {
        /// What.
        accident: String,
        /// Simulation time, ms.
        sim_ms: u64,
    },
    /// The mode changed.
    Mode {
        /// To.
        mode: Mode,
    },
    /// The operation changed.
    Operation {
        /// To.
        operation: Operation,
    },
}

/// How a session started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The layout's name.
    pub layout: String,
    /// The layout file's text, where the gateway had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_toml: Option<String>,
    /// The simulation's time then, ms.
    pub sim_ms: u64,
    /// The simulation's step, ms.
    pub step_ms: u64,
    /// Each device's state then (a device between positions is left out).
    pub devices: BTreeMap<String, OnOff>,
    /// The mode then.
    pub mode: Mode,
    /// The operation then.
    pub operation: Operation,
}

/// A command and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The device's or the train's name.
    pub target: String,
    /// What it was set to.
    pub value: Value,
    /// What came of it.
    pub result: Result,
    /// Why it was refused or failed.
    pub reason: Option<String>,
    /// Who asked.
    pub by: By,
    /// Which door it came through (`v2`, `2021`, `grpc`, `api`, `2023`, an edge's name), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    /// Which client (its address), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// How long the track took to answer it (its board's answer included), ms, where measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
}

/// Who sent a command: the door it came through and the client, as the journal records them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Caller {
    /// The door (`v2`, `2021`, `2021-speed`, `grpc`, `2023`).
    pub door: String,
    /// The client (its address), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl Caller {
    /// A client at `client` through `door`.
    pub fn new(door: &str, client: impl ToString) -> Caller {
        Caller { door: door.to_string(), client: Some(client.to_string()) }
    }
}

/// A command's value: a device state or a train's speed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A device's state.
    State(OnOff),
    /// A train's speed.
    Speed(i32),
}

/// What came of a command or an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Result {
    /// Carried out.
    Applied,
    /// Refused by a rule.
    Rejected,
    /// Allowed but not carried out.
    Failed,
}

/// Who asked for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// A visitor.
    Visitor,
    /// The operator.
    Operator,
    /// Automatic operation.
    Automatic,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reads_back_as_itself() {
        let texts = [
            r#"{"unix_ms":1,"target":"chofu_b1","value":"ON","result":"rejected","reason":"no","by":"visitor"}"#,
            r#"{"unix_ms":2,"target":"E233","value":120,"result":"applied","reason":null,"by":"operator","door":"v2","took_ms":3}"#,
            r#"{"unix_ms":3,"operator":"auto","result":"applied","reason":"operation auto"}"#,
            r#"{"unix_ms":4,"automatic":"E233 departed"}"#,
            r#"{"unix_ms":5,"sensor":"s1","train":"E233","sim_ms":900}"#,
            r#"{"unix_ms":6,"block":"b1","occupied":true,"reported":true}"#,
            r#"{"unix_ms":7,"board":"b1","reachable":false}"#,
            r#"{"unix_ms":8,"accident":"COLLISION","sim_ms":5}"#,
            r#"{"unix_ms":9,"mode":"live"}"#,
            r#"{"unix_ms":10,"operation":"mixed"}"#,
        ];
        for text in texts {
            let entry: Entry = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let again: serde_json::Value = serde_json::to_value(&entry).unwrap();
            assert_eq!(again, serde_json::from_str::<serde_json::Value>(text).unwrap(), "{text}");
        }
        let speed: Entry = serde_json::from_str(texts[1]).unwrap();
        assert!(matches!(speed.what, What::Command(Command { value: Value::Speed(120), by: By::Operator, .. })));
    }
}
