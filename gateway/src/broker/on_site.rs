//! The on-site core's side of the broker: a door of its [`Core`] that publishes the track (the layout, a
//! retained snapshot, every change numbered, `online` with `offline` as its will, a heartbeat) and carries out
//! the commands edges send, each at most once and only while fresh, replying on the edge's reply topic.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, LastWill, QoS};
use sim::interlocking::Request;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

use super::connect::{AT_LEAST_ONCE, Broker, Seen, drive};
use super::wire::{
    BEAT_EVERY, Beat, ChangeMessage, CommandMessage, OFFLINE, ONLINE, Received, Reply, ReplyMessage, Seen as Again,
    SnapshotMessage, Topic, Topics, decode, encode,
};
use crate::core::Core;
use wire::v2::{Command, ServerFrame};

/// How often the retained snapshot is brought up to date (when anything changed).
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// The core's client id: one core per broker and prefix (a second one takes the first's place).
fn client_id(topics: &Topics) -> String {
    format!("plarail-core-{}", topics.prefix().replace('/', "-"))
}

/// Unix time now, ms.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Starts publishing `core`'s track under `topics` on `broker` and carrying out the commands that come
/// through it; `layout_file` is the layout's TOML, published for the edges. Runs until the process ends,
/// reconnecting with backoff.
pub fn start(core: Core, broker: &Broker, topics: Topics, layout_file: String) -> Result<(), String> {
    let will = LastWill::new(topics.topic(&Topic::Online), OFFLINE, AT_LEAST_ONCE, true);
    let (client, events) = broker.client(&client_id(&topics), Some(will))?;
    // A snapshot wanted now: after a (re)connection, or asked for by an edge.
    let wanted = Arc::new(Notify::new());
    let epoch = unix_ms();
    let clock = Clock { epoch, start: Instant::now() };
    tokio::spawn(publish(core.clone(), client.clone(), topics.clone(), epoch, wanted.clone()));
    tokio::spawn(beat(client.clone(), topics.topic(&Topic::Heartbeat), clock));
    let received = Arc::new(Mutex::new(Received::default()));
    let url = broker.url();
    tokio::spawn(drive(url.clone(), events, move |seen| {
        match seen {
            Seen::Connected => {
                tracing::info!("connected to the broker {url}: publishing the track under {}/", topics.prefix());
                let _ = client.try_subscribe(topics.topic(&Topic::Command), AT_LEAST_ONCE);
                let retained = |topic: Topic, payload: Vec<u8>| {
                    let _ = client.try_publish(topics.topic(&topic), AT_LEAST_ONCE, true, payload);
                };
                retained(Topic::Layout, layout_file.clone().into_bytes());
                retained(Topic::Online, ONLINE.as_bytes().to_vec());
                wanted.notify_one();
            }
            Seen::Message { topic, payload } if topics.parse(&topic) == Some(Topic::Command) => {
                match decode::<CommandMessage>(&payload) {
                    // An edge asks for the state as it is now: one snapshot for any number of asks at once.
                    Ok(CommandMessage { command: Command::Snapshot {}, .. }) => wanted.notify_one(),
                    Ok(command) => {
                        let fresh = Beat::fresh(command.seen, clock.now());
                        let door = (core.clone(), client.clone(), topics.clone(), received.clone());
                        tokio::spawn(carry_out(door, command, fresh));
                    }
                    Err(e) => tracing::warn!("a message on {topic} is not a command, ignored: {e}"),
                }
            }
            Seen::Message { .. } => {}
            Seen::Lost(e) => tracing::warn!("{e}; trying again"),
        }
        true
    }));
    Ok(())
}

/// The core's run and its own clock, for its beats.
#[derive(Clone, Copy)]
struct Clock {
    epoch: u64,
    start: Instant,
}

impl Clock {
    /// The beat now.
    fn now(&self) -> Beat {
        Beat { epoch: self.epoch, ms: self.start.elapsed().as_millis() as u64 }
    }
}

/// Says the core is there every [`BEAT_EVERY`] (at most once: a beat is worth nothing late, and one a broker
/// kept through a cut would tell an edge the track is there when it is not).
async fn beat(client: AsyncClient, topic: String, clock: Clock) {
    let mut every = tokio::time::interval(BEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if client.publish(&topic, QoS::AtMostOnce, false, encode(&clock.now())).await.is_err() {
            return;
        }
    }
}

/// Publishes every change of the feed, numbered, and the retained snapshot every [`SNAPSHOT_EVERY`] when
/// anything changed, at once after a (re)connection or when an edge asks (`wanted`), and after changes were
/// missed (a gap in the numbers tells the edges to take it).
async fn publish(core: Core, client: AsyncClient, topics: Topics, epoch: u64, wanted: Arc<Notify>) {
    let mut feed = core.feeds().v2.subscribe();
    let (change_topic, snapshot_topic) = (topics.topic(&Topic::Change), topics.topic(&Topic::Snapshot));
    let mut seq = 0u64;
    let mut published: Option<u64> = None;
    let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
    loop {
        let snapshot_now = tokio::select! {
            frame = feed.recv() => match frame {
                Ok(bytes) => {
                    let Ok(frame) = ServerFrame::decode(bytes.as_str()) else { continue };
                    seq += 1;
                    let change = encode(&ChangeMessage { epoch, seq, frame });
                    if client.publish(&change_topic, AT_LEAST_ONCE, false, change).await.is_err() {
                        return;
                    }
                    false
                }
                Err(RecvError::Lagged(_)) => {
                    // Changes missed: skip a number, so that the edges resync from the snapshot that follows.
                    seq += 1;
                    true
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => published != Some(seq),
            _ = wanted.notified() => true,
        };
        if snapshot_now {
            // The track stopped: nothing more to publish.
            let Some(state) = core.link.snapshot().await else { return };
            let snapshot = encode(&SnapshotMessage { epoch, seq, state });
            if client.publish(&snapshot_topic, AT_LEAST_ONCE, true, snapshot).await.is_err() {
                return;
            }
            published = Some(seq);
        }
    }
}

/// Carries out one command from an edge (unless it was seen before, or it is not `fresh`: it came more than
/// [`STALE_AFTER`](super::wire::STALE_AFTER) after its edge's last beat) and replies.
async fn carry_out(door: (Core, AsyncClient, Topics, Arc<Mutex<Received>>), message: CommandMessage, fresh: bool) {
    let (core, client, topics, received) = door;
    // Replies go to reply topics only: a command cannot make the core write the track's topics.
    if !matches!(topics.parse(&message.reply_to), Some(Topic::Reply(_))) {
        tracing::warn!(
            "a command with the reply topic {} ignored: not under {}/reply/",
            message.reply_to,
            topics.prefix()
        );
        return;
    }
    let again = received.lock().unwrap_or_else(|e| e.into_inner()).begin(&message.id);
    let reply = match again {
        Again::InProgress => return,
        Again::Done(reply) => reply,
        Again::New => {
            let reply = if fresh {
                command(&core, message.command, message.caller).await
            } else {
                core.metrics.late_command();
                Reply::Failed { reason: LATE_REASON.into() }
            };
            received.lock().unwrap_or_else(|e| e.into_inner()).finish(&message.id, &reply);
            reply
        }
    };
    let answer = encode(&ReplyMessage { id: message.id, reply });
    let _ = client.publish(message.reply_to, AT_LEAST_ONCE, false, answer).await;
}

/// Why a command that came late is not carried out.
pub const LATE_REASON: &str =
    "the command reached the track too late (its edge had lost sight of the track) and was not carried out";

/// Carries out a command through the core's doors' one path.
async fn command(core: &Core, command: Command, caller: Option<wire::record::Caller>) -> Reply {
    let layout = core.layout();
    let request = match command {
        Command::Device { name, state } => layout.device_id(&name).map(|device| Request::Device { device, state }),
        Command::Speed { train, speed } => layout.train_id(&train).map(|train| Request::Speed { train, speed }),
        Command::Operator { token, action } => return Reply::of_operated(core.operate(&token, action).await),
        // Taken before a command is carried out (see `start`): not one to carry out.
        Command::Snapshot {} => return Reply::Failed { reason: "a snapshot comes on the snapshot topic".into() },
    };
    match request {
        // Through an edge: its door and client, marked as the edge's (an older edge says neither).
        Some(request) => {
            let caller = caller.unwrap_or_else(|| wire::record::Caller { door: "edge".into(), client: None });
            Reply::of_outcome(
                &core.apply(request, wire::record::Caller { door: format!("edge {}", caller.door), ..caller }).await,
            )
        }
        None => Reply::Rejected {
            rule: sim::interlocking::RejectKind::Unknown.label().into(),
            reason: "the layout has no device or train by that name".into(),
        },
    }
}
