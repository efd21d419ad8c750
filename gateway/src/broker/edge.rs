//! A public edge gateway's [`Link`]: a track reached across the broker. It holds nothing that matters: the
//! layout, the state and every change come from the core's topics; commands go to the core and wait for its
//! reply (up to [`DEADLINE`]: after that the client is told the outcome is unknown, never that it was done).
//! The track is reachable while the broker is, the core is online (its will says when it is not) and its
//! heartbeat came within [`STALE_AFTER`] (a cut or half-open link anywhere between, bridges included); while it is
//! not, every door says so, commands are refused at once, and the last state is served marked offline. Back, the
//! edge asks for the snapshot at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hil::track::Outcome;
use rumqttc::AsyncClient;
use sim::interlocking::Request;
use sim::layout::Layout;
use tokio::sync::{oneshot, watch};

use super::connect::{AT_LEAST_ONCE, Broker, Seen, drive};
use super::on_site::unix_ms;
use super::wire::{
    Beat, ChangeMessage, CommandMessage, Effect, Follow, ONLINE, Reply, ReplyMessage, STALE_AFTER, SnapshotMessage,
    Topic, Topics, decode, encode,
};
use crate::feeds::Feeds;
use crate::link::{Link, Operated, Pending};
use wire::v2::{Command, OperatorAction, State};

/// How long a command waits for the core's reply.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Why a command is refused while the track cannot be reached.
pub const OFFLINE_REASON: &str =
    "the track cannot be reached (its core is offline, or the link to the venue is down): nothing was done";

/// How often an edge looks whether the core's heartbeat is late.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// What a client is told when no reply came in time.
pub const UNKNOWN_REASON: &str =
    "no answer from the track in time: the command may or may not have been carried out (watch the device)";

/// What a client is told when the core went away while its command was being carried out.
pub const LOST_REASON: &str =
    "the track went offline before answering: the command may or may not have been carried out (watch the device)";

/// An edge's link to the core (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    shared: Arc<Shared>,
    client: AsyncClient,
    topics: Topics,
    reply_to: String,
    client_id: String,
}

/// What the connection loop and the doors share.
struct Shared {
    /// The layout and the feeds, once the core's layout came.
    ready: OnceLock<(Arc<Layout>, Feeds)>,
    follow: Mutex<Follow>,
    /// Commands waiting for their reply, by id.
    pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    /// Whether the track is reachable (as last told to the clients).
    online: AtomicBool,
    /// Whether the broker is connected.
    connected: AtomicBool,
    /// What the core's `online` topic last said.
    core_online: AtomicBool,
    /// The core's last heartbeat, and when it came.
    beat: Mutex<Option<(Instant, Beat)>>,
    next_id: AtomicU64,
    /// Whether the first state arrived.
    started: watch::Sender<bool>,
}

impl Edge {
    /// Connects to `broker` and follows the track under `topics`; returns once the core's layout and first
    /// state came (telling how it waits every few seconds), trying the broker again with backoff meanwhile.
    pub async fn connect(broker: &Broker, topics: Topics) -> Result<Edge, String> {
        let client_id = format!("plarail-edge-{:016x}", rand_id());
        let (client, events) = broker.client(&client_id, None)?;
        let (started, mut waiting) = watch::channel(false);
        let shared = Arc::new(Shared {
            ready: OnceLock::new(),
            follow: Mutex::new(Follow::default()),
            pending: Mutex::new(HashMap::new()),
            online: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            core_online: AtomicBool::new(false),
            beat: Mutex::new(None),
            next_id: AtomicU64::new(1),
            started,
        });
        let reply_to = topics.topic(&Topic::Reply(client_id.clone()));
        let edge = Edge { shared: shared.clone(), client: client.clone(), topics: topics.clone(), reply_to, client_id };
        let (subscriber, url) = (edge.clone(), broker.url());
        let problem = Arc::new(Mutex::new(String::from("not connected yet")));
        let last_problem = problem.clone();
        tokio::spawn(drive(url.clone(), events, move |seen| {
            match seen {
                Seen::Connected => {
                    tracing::info!("connected to the broker {url}: following {}/", subscriber.topics.prefix());
                    subscriber.shared.connected.store(true, Ordering::SeqCst);
                    subscriber.subscribe();
                    // The retained snapshot may be a second behind: ask for the state as it is now.
                    subscriber.ask_snapshot();
                }
                Seen::Message { topic, payload } => subscriber.take(&topic, &payload),
                Seen::Lost(e) => {
                    tracing::warn!("{e}; trying again");
                    *problem.lock().unwrap_or_else(|p| p.into_inner()) = e;
                    subscriber.shared.connected.store(false, Ordering::SeqCst);
                    subscriber.look();
                }
            }
            true
        }));
        let watcher = edge.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(WATCH_EVERY);
            loop {
                every.tick().await;
                watcher.look();
            }
        });
        let mut waited = 0u64;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), waiting.wait_for(|s| *s)).await {
                Ok(_) => return Ok(edge),
                Err(_) => {
                    waited += 5;
                    let why = last_problem.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    tracing::warn!(
                        "waited {waited} s for the track's layout and state on {} under {}/ ({why}); is the core \
                         running with --broker?",
                        broker.url(),
                        topics.prefix()
                    );
                }
            }
        }
    }

    /// Subscribes to the core's topics and this edge's replies.
    fn subscribe(&self) {
        let topics = [
            Topic::Online,
            Topic::Layout,
            Topic::Snapshot,
            Topic::Change,
            Topic::Heartbeat,
            Topic::Reply(self.client_id.clone()),
        ];
        let filters = topics.iter().map(|t| rumqttc::SubscribeFilter::new(self.topics.topic(t), AT_LEAST_ONCE));
        if let Err(e) = self.client.try_subscribe_many(filters) {
            tracing::warn!("cannot subscribe to the track's topics: {e}");
        }
    }

    /// Asks the core to publish its snapshot now (a command with no reply; the core publishes one snapshot for
    /// any number of asks at once).
    fn ask_snapshot(&self) {
        let ask = CommandMessage {
            id: format!("{}:snapshot", self.client_id),
            reply_to: self.reply_to.clone(),
            seen: None,
            command: Command::Snapshot {},
            caller: None,
        };
        let topic = self.topics.topic(&Topic::Command);
        if let Err(e) = self.client.try_publish(topic, AT_LEAST_ONCE, false, encode(&ask)) {
            tracing::warn!("cannot ask for the track's snapshot: {e}");
        }
    }

    /// Takes one message from the broker.
    fn take(&self, topic: &str, payload: &[u8]) {
        let shared = &self.shared;
        match self.topics.parse(topic) {
            Some(Topic::Layout) => self.take_layout(payload),
            Some(Topic::Online) => {
                shared.core_online.store(payload == ONLINE.as_bytes(), Ordering::SeqCst);
                self.look();
            }
            Some(Topic::Heartbeat) => match decode::<Beat>(payload) {
                Ok(beat) => {
                    *shared.beat() = Some((Instant::now(), beat));
                    self.look();
                }
                Err(e) => tracing::warn!("a heartbeat from the broker is not one, ignored: {e}"),
            },
            Some(Topic::Snapshot) => match decode::<SnapshotMessage>(payload) {
                Ok(s) => {
                    let effects = shared.follow().snapshot(s);
                    self.effects(effects);
                    self.start_if_ready();
                }
                Err(e) => tracing::warn!("a snapshot from the broker is not one, ignored: {e}"),
            },
            Some(Topic::Change) => match decode::<ChangeMessage>(payload) {
                Ok(c) => {
                    let (effects, gap) = {
                        let mut follow = shared.follow();
                        let was_in_step = follow.in_step();
                        (follow.change(c), was_in_step && !follow.in_step())
                    };
                    self.effects(effects);
                    if gap {
                        // A change missed: ask for the snapshot rather than wait for the next one.
                        self.ask_snapshot();
                    }
                }
                Err(e) => tracing::warn!("a change from the broker is not one, ignored: {e}"),
            },
            Some(Topic::Reply(_)) => match decode::<ReplyMessage>(payload) {
                Ok(r) => {
                    if let Some(waiting) = shared.pending().remove(&r.id) {
                        let _ = waiting.send(r.reply);
                    }
                }
                Err(e) => tracing::warn!("a reply from the broker is not one, ignored: {e}"),
            },
            Some(Topic::Command) | None => {}
        }
    }

    /// The core's layout: the first one is this edge's for good (a core restarted on another layout needs the
    /// edges restarted).
    fn take_layout(&self, payload: &[u8]) {
        let parsed = std::str::from_utf8(payload)
            .map_err(|e| e.to_string())
            .and_then(|text| Layout::from_toml(text).map_err(|e| e.to_string()));
        match parsed {
            Ok(layout) => {
                if let Some((now, _)) = self.shared.ready.get() {
                    if now.name != layout.name {
                        tracing::error!(
                            "the core now runs layout {}, this edge serves {}: restart the edge",
                            layout.name,
                            now.name
                        );
                    }
                    return;
                }
                let layout = Arc::new(layout);
                let state = self.shared.follow().state().cloned().unwrap_or_else(|| empty(&layout));
                let _ = self.shared.ready.set((layout.clone(), Feeds::new(layout, &state)));
                self.start_if_ready();
            }
            Err(e) => tracing::error!("the layout on the broker cannot be read: {e}"),
        }
    }

    /// Marks the edge started once it has the layout and a state.
    fn start_if_ready(&self) {
        if self.shared.ready.get().is_some() && self.shared.follow().state().is_some() {
            self.shared.started.send_if_modified(|s| !std::mem::replace(s, true));
        }
    }

    /// Looks whether the track is reachable (the broker connected, the core online, its last beat fresh) and,
    /// if that changed, tells every door: unreachable, every command waiting is told its outcome is unknown;
    /// reachable again, the snapshot is asked for at once.
    fn look(&self) {
        let shared = &self.shared;
        let beat_fresh = shared.beat().is_some_and(|(came, _)| came.elapsed() <= STALE_AFTER);
        let reachable =
            shared.connected.load(Ordering::SeqCst) && shared.core_online.load(Ordering::SeqCst) && beat_fresh;
        let effects = {
            // One look at a time, so that two looks tell a change once and in order.
            let mut follow = shared.follow();
            if shared.online.swap(reachable, Ordering::SeqCst) == reachable {
                return;
            }
            follow.online(reachable)
        };
        self.effects(effects);
        if reachable {
            tracing::info!("the track is reachable");
            self.ask_snapshot();
        } else {
            tracing::warn!(
                "the track cannot be reached (broker connected: {}, core online: {}, heartbeat fresh: {beat_fresh})",
                shared.connected.load(Ordering::SeqCst),
                shared.core_online.load(Ordering::SeqCst)
            );
            for (_, waiting) in shared.pending().drain() {
                let _ = waiting.send(Reply::Failed { reason: LOST_REASON.into() });
            }
        }
    }

    /// Hands what came to the clients.
    fn effects(&self, effects: Vec<Effect>) {
        let Some((_, feeds)) = self.shared.ready.get() else { return };
        for e in effects {
            match e {
                Effect::Frame(frame) => feeds.publish(&frame),
                Effect::Reset(state) => feeds.reset(&state),
            }
        }
    }

    /// Sends a command to the core and waits for its reply.
    async fn send(&self, command: Command, caller: Option<::wire::record::Caller>) -> Reply {
        let id = format!("{}:{}", self.client_id, self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.shared.pending().insert(id.clone(), tx);
        // Looked at once waiting: a command that was waiting when the track became unreachable has been told so.
        if !self.shared.online.load(Ordering::SeqCst) {
            self.shared.pending().remove(&id);
            return Reply::Failed { reason: OFFLINE_REASON.into() };
        }
        let message = CommandMessage {
            id: id.clone(),
            reply_to: self.reply_to.clone(),
            seen: self.shared.beat().map(|(_, beat)| beat),
            command,
            caller,
        };
        let sent =
            self.client.publish(self.topics.topic(&Topic::Command), AT_LEAST_ONCE, false, encode(&message)).await;
        let reply = match sent {
            Err(e) => Reply::Failed { reason: format!("the command could not be sent to the track: {e}") },
            Ok(()) => match tokio::time::timeout(DEADLINE, rx).await {
                Ok(Ok(reply)) => reply,
                _ => Reply::Failed { reason: UNKNOWN_REASON.into() },
            },
        };
        self.shared.pending().remove(&id);
        reply
    }

    /// The layout and feeds (set before [`Edge::connect`] returns).
    fn ready(&self) -> &(Arc<Layout>, Feeds) {
        self.shared.ready.get().expect("an edge is handed out only once its layout came")
    }
}

impl Shared {
    fn follow(&self) -> std::sync::MutexGuard<'_, Follow> {
        self.follow.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Reply>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn beat(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Beat)>> {
        self.beat.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Link for Edge {
    fn layout(&self) -> &Arc<Layout> {
        &self.ready().0
    }

    fn feeds(&self) -> &Feeds {
        &self.ready().1
    }

    fn apply(&self, request: Request, caller: ::wire::record::Caller) -> Pending<'_, Outcome> {
        let layout = self.layout();
        let command = match request {
            Request::Device { device, state } => Command::Device { name: layout.devices[device].name.clone(), state },
            Request::Speed { train, speed } => Command::Speed { train: layout.trains[train].name.clone(), speed },
        };
        Box::pin(async move { self.send(command, Some(caller)).await.outcome() })
    }

    fn operate(&self, token: String, action: OperatorAction) -> Pending<'_, Operated> {
        Box::pin(async move { self.send(Command::Operator { token, action }, None).await.operated() })
    }

    fn snapshot(&self) -> Pending<'_, Option<State>> {
        let state = self.shared.follow().state().cloned().unwrap_or_else(|| empty(self.layout()));
        Box::pin(std::future::ready(Some(state)))
    }
}

/// The state of a layout before anything is known of it.
fn empty(layout: &Layout) -> State {
    State {
        mode: sim::twin::Mode::Sim,
        operation: sim::auto::Operation::Manual,
        plans: Vec::new(),
        time_ms: 0,
        devices: layout
            .devices
            .iter()
            .map(|d| wire::v2::Device { name: d.name.clone(), kind: Some(d.kind), state: None })
            .collect(),
        trains: Vec::new(),
        boards: Vec::new(),
        blocks: Vec::new(),
        online: false,
    }
}

/// A random client id suffix (the broker tells edges apart by it).
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(unix_ms());
    h.write_u32(std::process::id());
    h.finish()
}
