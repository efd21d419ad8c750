//! One WebSocket session driver for both protocols: it reads client frames, lets the protocol's plain
//! functions ([`crate::protocol_2021`], [`crate::protocol_v2`]) say what each asks, carries it out through the
//! [`Core`], and writes the answers and the protocol's feed to the client, several frames per write. A client
//! that falls behind its feed catches up from the latest state.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use sim::interlocking::Request;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::core::Core;
use crate::limits::Bucket;
use crate::metrics::Metrics;
use crate::step::Step;
use crate::{protocol_2021, protocol_v2};

/// Largest WebSocket frame accepted from a client, in bytes.
pub const MAX_FRAME_BYTES: usize = 4096;

/// Read buffer of a client's WebSocket, in bytes (it grows for a larger frame, up to [`MAX_FRAME_BYTES`]).
const READ_BUFFER_BYTES: usize = 1024;

/// Bytes of frames a client's WebSocket gathers before writing them out without a flush.
const WRITE_BUFFER_BYTES: usize = 8192;

/// Most feed frames gathered into one write.
const FRAMES_PER_WRITE: usize = 64;

/// How often the 2021 protocol re-sends every device's state.
pub const RESEND_EVERY: Duration = Duration::from_secs(2);

/// The protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The 2021 protocol on `/ws`.
    V2021,
    /// The 2021 speed protocol on `/speed`.
    Speed2021,
    /// The v2 protocol on `/ws/v2`.
    V2,
}

impl Protocol {
    /// Its name in metrics.
    fn name(self) -> &'static str {
        match self {
            Protocol::V2021 => "2021",
            Protocol::Speed2021 => "2021-speed",
            Protocol::V2 => "v2",
        }
    }

    /// Its error frame.
    fn error(self, id: Option<u64>, reason: &str) -> String {
        match self {
            Protocol::V2021 | Protocol::Speed2021 => protocol_2021::error(reason),
            Protocol::V2 => protocol_v2::error(id, reason),
        }
    }

    /// The feed it follows.
    fn feed(self, core: &Core) -> broadcast::Receiver<Utf8Bytes> {
        match self {
            Protocol::V2021 => core.feeds().v2021.subscribe(),
            Protocol::Speed2021 => core.feeds().speed.subscribe(),
            Protocol::V2 => core.feeds().v2.subscribe(),
        }
    }

    /// What a client that just connected, or fell behind its feed, is sent: the latest state.
    async fn catch_up(self, core: &Core) -> Vec<Utf8Bytes> {
        match self {
            Protocol::V2021 => every_device_2021(core),
            Protocol::Speed2021 => core.feeds().speeds_2021().to_vec(),
            // A stopped track has no state to catch up with.
            Protocol::V2 => core.link.snapshot().await.map(|s| protocol_v2::snapshot(s).into()).into_iter().collect(),
        }
    }

    /// What a client frame asks.
    fn read(self, core: &Core, text: &str) -> Step {
        match self {
            Protocol::V2021 => protocol_2021::read(core.layout(), text),
            Protocol::Speed2021 => protocol_2021::read_speed(core.layout(), text),
            Protocol::V2 => protocol_v2::read(core.layout(), text),
        }
    }
}

/// Every device's current 2021 frame.
fn every_device_2021(core: &Core) -> Vec<Utf8Bytes> {
    core.feeds().devices_2021().iter().flatten().cloned().collect()
}

/// The 2021 frame of the device or train a request names, as it is now.
fn current_2021(core: &Core, request: Request) -> Option<Utf8Bytes> {
    match request {
        Request::Device { device, .. } => core.feeds().devices_2021().get(device).cloned().flatten(),
        Request::Speed { train, .. } => core.feeds().speeds_2021().get(train).cloned(),
    }
}

/// Opens a WebSocket session if the origin is allowed, with the frame size limit and small buffers (an idle
/// client costs little memory).
pub fn upgrade(
    core: Core,
    protocol: Protocol,
    peer: SocketAddr,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let origin = headers.get("origin").and_then(|o| o.to_str().ok());
    if !core.options.limits.origin_allowed(origin) {
        return (StatusCode::FORBIDDEN, "this origin may not open a WebSocket here").into_response();
    }
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| run(core, protocol, socket, peer.ip()))
}

/// Drives one session until the client leaves or its connection fails.
async fn run(core: Core, protocol: Protocol, mut socket: WebSocket, ip: IpAddr) {
    let _connected = Connected::new(core.metrics.clone(), protocol.name());
    let mut allowance = Allowance::new(&core, ip);
    // Subscribe before catching up, so that nothing between the two is missed.
    let mut feed = protocol.feed(&core);
    if send_all(&mut socket, Box::pin(protocol.catch_up(&core)).await).await.is_err() {
        return;
    }
    let mut resend = tokio::time::interval_at(tokio::time::Instant::now() + RESEND_EVERY, RESEND_EVERY);
    // A late re-send is not made up for with a burst of them.
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        // The feed first: a wake-up for a change then costs no look at the socket. The socket is only read
        // here and only written below, so it needs no splitting (and no lock between two halves).
        let frames: Vec<Utf8Bytes> = tokio::select! {
            biased;
            frame = feed.recv() => match frame {
                Ok(first) => match drain(&mut feed, first) {
                    Some(frames) => frames,
                    None => Box::pin(protocol.catch_up(&core)).await,
                },
                Err(RecvError::Lagged(_)) => Box::pin(protocol.catch_up(&core)).await,
                Err(RecvError::Closed) => return,
            },
            message = socket.recv() => match message {
                // Boxed: carrying out a command takes a large future (the board's HTTP request among it), which
                // an idle session should not hold.
                Some(Ok(Message::Text(text))) => {
                    Box::pin(respond(&core, (protocol, ip), &mut allowance, text.as_str())).await
                }
                Some(Ok(Message::Binary(_))) => vec![protocol.error(None, "text frames only").into()],
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => Vec::new(),
            },
            _ = resend.tick(), if protocol == Protocol::V2021 => every_device_2021(&core),
        };
        if send_all(&mut socket, frames).await.is_err() {
            return;
        }
    }
}

/// `first` and the feed frames already waiting behind it (up to [`FRAMES_PER_WRITE`]); `None` when the client
/// fell behind the feed meanwhile.
fn drain(feed: &mut broadcast::Receiver<Utf8Bytes>, first: Utf8Bytes) -> Option<Vec<Utf8Bytes>> {
    let mut frames = vec![first];
    while frames.len() < FRAMES_PER_WRITE {
        match feed.try_recv() {
            Ok(frame) => frames.push(frame),
            Err(TryRecvError::Lagged(_)) => return None,
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    Some(frames)
}

/// What a client frame asks, carried out; its answer's frames. `ip`: the client's, for the journal.
async fn respond(
    core: &Core,
    (protocol, ip): (Protocol, IpAddr),
    allowance: &mut Allowance,
    text: &str,
) -> Vec<Utf8Bytes> {
    let step = protocol.read(core, text);
    let id = match &step {
        Step::Reply(frame) => return vec![frame.clone().into()],
        Step::Track { id, .. } => *id,
        Step::Operator { id, .. } => Some(*id),
        Step::Snapshot => None,
    };
    if let Some(reason) = allowance.check(core) {
        return vec![protocol.error(id, &reason).into()];
    }
    let answer = match step {
        Step::Reply(frame) => Some(frame),
        Step::Track { id, request } => {
            let outcome = core.apply(request, wire::record::Caller::new(protocol.name(), ip)).await;
            match (protocol, id) {
                (Protocol::V2, Some(id)) => Some(protocol_v2::answer(id, &outcome)),
                _ => {
                    // The 2021 page ignores the error frame: it is told the truth as well.
                    let refused = protocol_2021::answer(&outcome).map(Utf8Bytes::from);
                    let truth = refused.as_ref().and_then(|_| current_2021(core, request));
                    return refused.into_iter().chain(truth).collect();
                }
            }
        }
        Step::Operator { id, token, action } => Some(protocol_v2::operated(id, core.operate(&token, action).await)),
        Step::Snapshot => return protocol.catch_up(core).await,
    };
    answer.into_iter().map(Utf8Bytes::from).collect()
}

/// Sends `frames` with one write: they wait in the write buffer until the flush.
async fn send_all(out: &mut WebSocket, frames: Vec<Utf8Bytes>) -> Result<(), axum::Error> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        out.feed(Message::Text(frame)).await?;
    }
    out.flush().await
}

/// A client's allowance of commands: its own bucket and its address's.
struct Allowance {
    bucket: Bucket,
    ip: IpAddr,
}

impl Allowance {
    fn new(core: &Core, ip: IpAddr) -> Allowance {
        Allowance { bucket: Bucket::new(core.options.limits.per_connection, Instant::now()), ip }
    }

    /// `None` when the command may go, else the reason it may not.
    fn check(&mut self, core: &Core) -> Option<String> {
        let now = Instant::now();
        let limits = &core.options.limits;
        if !self.bucket.take(now) {
            return Some(format!("too many commands: at most {} per second per connection", limits.per_connection));
        }
        if !core.per_address.take(self.ip, limits.per_address, now) {
            return Some(format!("too many commands: at most {} per second per address", limits.per_address));
        }
        None
    }
}

/// Counts a connected client for as long as it lives.
struct Connected(Arc<Metrics>, &'static str);

impl Connected {
    fn new(metrics: Arc<Metrics>, protocol: &'static str) -> Connected {
        metrics.client(protocol, 1.0);
        Connected(metrics, protocol)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.client(self.1, -1.0);
    }
}
