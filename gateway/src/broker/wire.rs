//! The broker wire, defined once: the topics under a prefix that names the layout, the messages on them, and
//! the two pieces of logic each side keeps, as plain data: the edge's [`Follow`] (changes in order, a missed one
//! noticed, a resync from the retained snapshot) and the core's [`Seen`] (a command carried out at most once
//! even when the broker delivers it twice).
//!
//! | topic (under `PREFIX/`) | from → to | QoS, retained | payload |
//! |---|---|---|---|
//! | `online` | core → edges | 1, retained | `online`; the core's will: `offline` |
//! | `layout` | core → edges | 1, retained | the layout file (TOML) the core runs |
//! | `snapshot` | core → edges | 1, retained | [`SnapshotMessage`]: the whole track and the number of the last change in it |
//! | `change` | core → edges | 1 | [`ChangeMessage`]: one v2 frame, numbered |
//! | `heartbeat` | core → edges | 0 | [`Beat`]: the core is there and reachable, every [`BEAT_EVERY`] |
//! | `command` | edges → core | 1 | [`CommandMessage`]: a command, its id, where to reply, the last beat its edge saw (a `snapshot` command: publish the snapshot now, no reply) |
//! | `reply/CLIENT` | core → the edge whose client id is `CLIENT` | 1 | [`ReplyMessage`] |

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use hil::track::{Failure, Outcome};
use serde::{Deserialize, Serialize};
use sim::interlocking::{RejectKind, Rejection};

use crate::link::Operated;
use wire::v2::{Command, ServerFrame, State};

/// The word on `online` while the core is connected.
pub const ONLINE: &str = "online";

/// The word on `online` once the core is gone (its will).
pub const OFFLINE: &str = "offline";

/// How often the core says it is there (on `heartbeat`): through every broker and bridge between it and the
/// edges, so that an edge notices a cut link, which the core's will does not tell (the core keeps its broker).
pub const BEAT_EVERY: Duration = Duration::from_millis(250);

/// How old the last beat may be: beyond it an edge takes the track as unreachable (and refuses commands), and
/// the core refuses a command whose edge had seen no later beat when it sent it (it came late: its edge has
/// given up on it and told its client so).
pub const STALE_AFTER: Duration = Duration::from_secs(2);

/// One heartbeat of the core: its run, and the time since that run started (ms, by the core's own clock, which
/// is the only clock that reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// The core's run (its start, unix ms).
    pub epoch: u64,
    /// Milliseconds since the run started.
    pub ms: u64,
}

impl Beat {
    /// Whether a command whose edge had last seen `seen` when it sent it may still be carried out by the core
    /// whose beat is `now`: seen in this run, at most [`STALE_AFTER`] ago.
    pub fn fresh(seen: Option<Beat>, now: Beat) -> bool {
        matches!(seen, Some(s) if s.epoch == now.epoch && now.ms.saturating_sub(s.ms) <= STALE_AFTER.as_millis() as u64)
    }
}

/// The topics of one layout's track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

/// Which topic a message came on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `online`.
    Online,
    /// `layout`.
    Layout,
    /// `snapshot`.
    Snapshot,
    /// `change`.
    Change,
    /// `heartbeat`.
    Heartbeat,
    /// `command`.
    Command,
    /// `reply/CLIENT`.
    Reply(String),
}

impl Topics {
    /// The default prefix of a layout: `plarail/<layout name>`.
    pub fn of_layout(name: &str) -> Topics {
        Topics { prefix: format!("plarail/{name}") }
    }

    /// Topics under `prefix` (no trailing `/`; no wildcards).
    pub fn new(prefix: &str) -> Result<Topics, String> {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() || prefix.contains(['+', '#', '\0']) {
            return Err(format!("`{prefix}` is not a topic prefix (no wildcards, not empty)"));
        }
        Ok(Topics { prefix: prefix.to_string() })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic of `which`.
    pub fn topic(&self, which: &Topic) -> String {
        let p = &self.prefix;
        match which {
            Topic::Online => format!("{p}/online"),
            Topic::Layout => format!("{p}/layout"),
            Topic::Snapshot => format!("{p}/snapshot"),
            Topic::Change => format!("{p}/change"),
            Topic::Heartbeat => format!("{p}/heartbeat"),
            Topic::Command => format!("{p}/command"),
            Topic::Reply(client) => format!("{p}/reply/{client}"),
        }
    }

    /// Which of this prefix's topics `topic` is, if any.
    pub fn parse(&self, topic: &str) -> Option<Topic> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        Some(match rest {
            "online" => Topic::Online,
            "layout" => Topic::Layout,
            "snapshot" => Topic::Snapshot,
            "change" => Topic::Change,
            "heartbeat" => Topic::Heartbeat,
            "command" => Topic::Command,
            _ => match rest.strip_prefix("reply/") {
                Some(client) if !client.is_empty() && !client.contains('/') => Topic::Reply(client.to_string()),
                _ => return None,
            },
        })
    }
}

/// The whole track, as of change `seq` of the core's run `epoch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMessage {
    /// The core's run (its start, unix ms): numbers restart with it.
    pub epoch: u64,
    /// The last change the state holds (later ones may be in it too: every change sets a value).
    pub seq: u64,
    /// The state.
    pub state: State,
}

/// One change: a v2 frame, numbered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeMessage {
    /// The core's run.
    pub epoch: u64,
    /// Its number: one more than the change before.
    pub seq: u64,
    /// The frame.
    pub frame: ServerFrame,
}

/// A command from an edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandMessage {
    /// Its id, unique across edges (the edge's client id and a number).
    pub id: String,
    /// Where the reply goes.
    pub reply_to: String,
    /// The core's last beat the edge had seen when it sent this (`None`: none yet). One older than
    /// [`STALE_AFTER`] when the command comes (it waited in a broker or a bridge through a cut) is refused: by
    /// then the edge has taken the track as unreachable and told its client the outcome is unknown, so the
    /// command is never carried out after the partition.
    pub seen: Option<Beat>,
    /// The command (a device, a speed, or an operator action with its token).
    pub command: Command,
    /// Who sent it to the edge: the door and the client, for the core's journal (absent from an older edge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<::wire::record::Caller>,
}

/// The reply to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyMessage {
    /// The command's id.
    pub id: String,
    /// What became of it.
    pub reply: Reply,
}

/// What became of a command on the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// Carried out.
    Applied,
    /// Refused by the interlocking.
    Rejected {
        /// The rule (its label).
        rule: String,
        /// Why, in words.
        reason: String,
    },
    /// Not carried out, or not wholly; why.
    Failed {
        /// Why, in words.
        reason: String,
    },
    /// An operator action without the operator token.
    Denied,
    /// An operator action done; what it did.
    Done {
        /// What it did, in words.
        detail: String,
    },
}

impl Reply {
    /// A track command's outcome.
    pub fn of_outcome(outcome: &Outcome) -> Reply {
        match outcome {
            Outcome::Applied => Reply::Applied,
            Outcome::Rejected(r) => Reply::Rejected { rule: r.kind.label().into(), reason: r.message.clone() },
            Outcome::Failed(reason) => Reply::Failed { reason: reason.to_string() },
        }
    }

    /// An operator action's result.
    pub fn of_operated(operated: Operated) -> Reply {
        match operated {
            Operated::Denied => Reply::Denied,
            Operated::Done(detail) => Reply::Done { detail },
            Operated::Failed(reason) => Reply::Failed { reason },
        }
    }

    /// The outcome of a track command this reply answers.
    pub fn outcome(self) -> Outcome {
        match self {
            Reply::Applied | Reply::Done { .. } => Outcome::Applied,
            Reply::Rejected { rule, reason } => Outcome::Rejected(Rejection {
                kind: RejectKind::from_label(&rule).unwrap_or(RejectKind::Unknown),
                message: reason,
            }),
            Reply::Failed { reason } => Outcome::Failed(Failure::Reported(reason)),
            Reply::Denied => Outcome::Failed(Failure::Denied),
        }
    }

    /// The result of an operator action this reply answers.
    pub fn operated(self) -> Operated {
        match self {
            Reply::Denied => Operated::Denied,
            Reply::Done { detail } => Operated::Done(detail),
            Reply::Applied => Operated::Done(String::new()),
            Reply::Rejected { reason, .. } | Reply::Failed { reason } => Operated::Failed(reason),
        }
    }
}

/// Encodes a message as JSON.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Our own types, with string keys only: encoding cannot fail.
    serde_json::to_vec(message).unwrap_or_default()
}

/// Decodes a message, or says why it is not one.
pub fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| format!("not a {}: {e}", std::any::type_name::<T>()))
}

/// What an edge does with what came from the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Hand this change to the clients.
    Frame(ServerFrame),
    /// Start the clients again from this state (changes were missed, or this is the first state).
    Reset(State),
}

/// Changes missed while out of step kept at most, waiting for a snapshot to follow.
const WAITING: usize = 4096;

/// The edge's view of the core's changes: applied in order, each once; a gap noticed and closed from the next
/// snapshot at least as new as it.
#[derive(Debug, Default)]
pub struct Follow {
    /// The state, once a snapshot came.
    state: Option<State>,
    epoch: u64,
    seq: u64,
    in_step: bool,
    waiting: VecDeque<ChangeMessage>,
    /// Whether the core is online (its `online` topic; unknown, so offline, until it comes).
    online: bool,
}

impl Follow {
    /// The state as the edge knows it (`None` before the first snapshot).
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// Whether the state is up to date with every change seen.
    pub fn in_step(&self) -> bool {
        self.in_step
    }

    /// Sets whether the core is online (kept in the state, told to the clients).
    pub fn online(&mut self, online: bool) -> Vec<Effect> {
        self.online = online;
        match &mut self.state {
            Some(s) if s.online != online => {
                s.online = online;
                vec![Effect::Frame(ServerFrame::Online { online })]
            }
            _ => Vec::new(),
        }
    }

    /// Takes in a change.
    pub fn change(&mut self, c: ChangeMessage) -> Vec<Effect> {
        if self.in_step && c.epoch == self.epoch {
            if c.seq <= self.seq {
                // Delivered again, or already in the snapshot: nothing new.
                return Vec::new();
            }
            if c.seq == self.seq + 1 {
                self.seq = c.seq;
                if let Some(s) = &mut self.state {
                    s.apply(&c.frame);
                }
                return vec![Effect::Frame(c.frame)];
            }
        }
        // A gap, another run of the core, or no snapshot yet: wait for a snapshot.
        self.in_step = false;
        if self.waiting.len() == WAITING {
            self.waiting.pop_front();
        }
        self.waiting.push_back(c);
        Vec::new()
    }

    /// Takes in a snapshot: while in step, only one newer than the changes seen counts (it means changes were
    /// skipped); out of step, it is the new start, and the changes waiting after it are applied.
    pub fn snapshot(&mut self, s: SnapshotMessage) -> Vec<Effect> {
        if self.in_step && s.epoch == self.epoch && s.seq <= self.seq {
            // As new as what the edge has: its clock (the simulation time) is taken quietly.
            if s.seq == self.seq
                && let Some(now) = &mut self.state
            {
                now.time_ms = now.time_ms.max(s.state.time_ms);
            }
            return Vec::new();
        }
        if !self.in_step && self.state.is_some() && s.epoch == self.epoch && s.seq < self.seq {
            // Older than what the clients already have.
            return Vec::new();
        }
        let online = self.online;
        self.epoch = s.epoch;
        self.seq = s.seq;
        self.in_step = true;
        let mut state = s.state;
        state.online = online;
        self.state = Some(state.clone());
        let mut effects = vec![Effect::Reset(state)];
        let mut waiting: Vec<ChangeMessage> = self.waiting.drain(..).filter(|c| c.epoch == s.epoch).collect();
        waiting.sort_by_key(|c| c.seq);
        for c in waiting {
            effects.extend(self.change(c));
        }
        // What was applied after the reset goes out as frames after it; the reset carries the state before them.
        effects
    }
}

/// Commands the core remembers, to carry each out at most once.
const REMEMBERED: usize = 10_000;

/// What the core does with a command it received.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// New: carry it out.
    New,
    /// Being carried out (delivered twice): its reply will go once it is done.
    InProgress,
    /// Carried out before: send this reply again.
    Done(Reply),
}

/// The commands the core received lately (see [`Seen`]).
#[derive(Debug, Default)]
pub struct Received {
    replies: HashMap<String, Option<Reply>>,
    order: VecDeque<String>,
}

impl Received {
    /// Notes command `id`, and says what to do with it.
    pub fn begin(&mut self, id: &str) -> Seen {
        match self.replies.get(id) {
            Some(None) => Seen::InProgress,
            Some(Some(reply)) => Seen::Done(reply.clone()),
            None => {
                if self.order.len() == REMEMBERED
                    && let Some(old) = self.order.pop_front()
                {
                    self.replies.remove(&old);
                }
                self.order.push_back(id.to_string());
                self.replies.insert(id.to_string(), None);
                Seen::New
            }
        }
    }

    /// Notes what became of command `id`.
    pub fn finish(&mut self, id: &str, reply: &Reply) {
        if let Some(slot) = self.replies.get_mut(id) {
            *slot = Some(reply.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_fresh_only_within_stale_after_of_a_beat_of_this_run() {
        let now = Beat { epoch: 7, ms: 60_000 };
        let stale = STALE_AFTER.as_millis() as u64;
        assert!(Beat::fresh(Some(Beat { epoch: 7, ms: 60_000 - stale }), now));
        assert!(Beat::fresh(Some(now), now));
        // Sent before a cut, delivered after it.
        assert!(!Beat::fresh(Some(Beat { epoch: 7, ms: 60_000 - stale - 1 }), now));
        // Seen from another run of the core, or no beat seen at all.
        assert!(!Beat::fresh(Some(Beat { epoch: 6, ms: 60_000 }), now));
        assert!(!Beat::fresh(None, now));
        assert_eq!(Topics::of_layout("x").parse("plarail/x/heartbeat"), Some(Topic::Heartbeat));
    }
}
