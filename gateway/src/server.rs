//! The HTTP side: the phone control page on `/`, the 2021 WebSocket protocol on `/ws`, the v2 protocol on
//! `/ws/v2`, the state snapshot on `/api/state`, the layout picture on `/api/layout`, and the sensor ingest on
//! `/registerPosition`, all over one [`Track`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use hil::track::{BoardHealth, Mode, Outcome, Snapshot, Track, TrackEvent, TrainPosition};
use serde_json::{Value, json};
use sim::layout::{Layout, OnOff};
use sim::twin::EventKind;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::journal::Journal;
use crate::limits::{Bucket, Limits, PerAddress};
use crate::protocol_2021::{device_frame, error_frame, parse};
use crate::protocol_v2 as v2;
use crate::{metrics, operator};

/// Largest WebSocket frame accepted from a client, in bytes.
pub const MAX_FRAME_BYTES: usize = 4096;

/// Read buffer of a client's WebSocket, in bytes (it grows for a larger frame, up to [`MAX_FRAME_BYTES`]).
const READ_BUFFER_BYTES: usize = 1024;

/// Bytes of frames a client's WebSocket gathers before writing them out without a flush.
const WRITE_BUFFER_BYTES: usize = 8192;

/// How often the 2021 protocol re-sends every device's state.
pub const RESEND_EVERY: Duration = Duration::from_secs(2);

/// The state shared by every connection.
/// How a gateway is set up.
#[derive(Clone, Default)]
pub struct Options {
    /// The operator token; without one, operator actions are refused.
    pub operator_token: Option<String>,
    /// Visitor limits.
    pub limits: Limits,
    /// Where desired states and the command history are kept, if anywhere.
    pub journal: Option<Arc<Journal>>,
}

#[derive(Clone)]
struct Gateway {
    options: Arc<Options>,
    per_address: Arc<PerAddress>,
    track: Track,
    devices: watch::Receiver<Arc<Vec<Option<OnOff>>>>,
    trains: watch::Receiver<Arc<Vec<TrainPosition>>>,
}

/// The gateway's routes over `track`. Spawns the task that keeps the latest device states for the clients.
pub async fn router(track: Track, options: Options) -> Router {
    let initial: Vec<Option<OnOff>> = track.state().await.devices.iter().map(|p| p.state()).collect();
    let (tx, devices) = watch::channel(Arc::new(initial));
    let (trains_tx, trains) = watch::channel(Arc::new(Vec::new()));
    tokio::spawn(follow_devices(track.clone(), tx, trains_tx, options.journal.clone()));
    let ingest = hil::ingest::router(track.layout().clone(), track.readings());
    metrics::handle();
    metrics::mode(track.mode());
    for (_, h) in track.boards() {
        metrics::event(&TrackEvent::Board(h));
    }
    tokio::spawn(sample_every_second(track.clone()));
    Router::new()
        .route("/", get(index))
        .route("/page.js", get(|| async { asset(include_str!("page/page.js"), "text/javascript; charset=utf-8") }))
        .route("/page.css", get(|| async { asset(include_str!("page/page.css"), "text/css; charset=utf-8") }))
        .route("/api/layout", get(api_layout))
        .route("/metrics", get(|| async { metrics::handle().render() }))
        .route("/ws", get(ws_2021))
        .route("/ws/v2", get(ws_v2))
        .route("/api/state", get(api_state))
        .route("/api/history", get(api_history))
        .with_state(Gateway { options: Arc::new(options), per_address: Arc::default(), track, devices, trains })
        .merge(ingest)
}

/// Serves `app` on `listener` (with each client's address known, for the per-address limit) until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Keeps the latest state of every device and the latest train positions. A client that reads slowly only
/// ever sees the latest states.
async fn follow_devices(
    track: Track,
    tx: watch::Sender<Arc<Vec<Option<OnOff>>>>,
    trains: watch::Sender<Arc<Vec<TrainPosition>>>,
    journal: Option<Arc<Journal>>,
) {
    let mut events = track.subscribe();
    loop {
        let event = events.recv().await;
        if let Ok(e) = &event {
            metrics::event(e);
        }
        match event {
            Ok(TrackEvent::Sim(e)) => {
                if let EventKind::DeviceChanged { device, position } = e.kind {
                    tx.send_modify(|all| Arc::make_mut(all)[device] = position.state());
                    if let (Some(journal), Some(state)) = (&journal, position.state()) {
                        let (journal, name) = (journal.clone(), track.layout().devices[device].name.clone());
                        let stored = tokio::task::spawn_blocking(move || journal.set_device(&name, state)).await;
                        if let Ok(Err(e)) = stored {
                            tracing::error!("{e}");
                        }
                    }
                }
            }
            Ok(TrackEvent::Trains(now)) => {
                trains.send_replace(Arc::new(now));
            }
            Ok(_) => {}
            // Missed events: read the whole state again.
            Err(RecvError::Lagged(_)) => {
                let now = track.state().await.devices.iter().map(|p| p.state()).collect();
                tx.send_replace(Arc::new(now));
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Samples the simulation's real-time factor and the process's memory every second while the track runs.
async fn sample_every_second(track: Track) {
    let started = std::time::Instant::now();
    let Some(first) = track.try_state().await else { return };
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(now) = track.try_state().await else { return };
        let wall = started.elapsed().as_secs_f64();
        metrics::real_time_factor((now.time_ms - first.time_ms) as f64 / 1000.0 / wall);
        metrics::resident_memory();
    }
}

/// Carries out a request and records its result (metrics, journal).
async fn apply(gw: &Gateway, request: sim::interlocking::Request) -> Outcome {
    let started = std::time::Instant::now();
    let outcome = gw.track.apply(request).await;
    let layout = gw.track.layout();
    let (target, value) = match request {
        sim::interlocking::Request::Device { device, state } => {
            (&layout.devices[device].name, json!(if state == OnOff::On { "ON" } else { "OFF" }))
        }
        sim::interlocking::Request::Speed { train, speed } => (&layout.trains[train].name, json!(speed)),
    };
    metrics::command(target, &outcome, started.elapsed());
    let (result, reason) = match &outcome {
        Outcome::Applied => ("applied", None),
        Outcome::Rejected(r) => ("rejected", Some(r.message.clone())),
        Outcome::Failed(f) => ("failed", Some(f.clone())),
    };
    journal(gw, json!({ "target": target, "value": value, "result": result, "reason": reason })).await;
    outcome
}

/// Appends an entry, stamped with the time, to the journal's history (if there is a journal).
async fn journal(gw: &Gateway, mut entry: Value) {
    let Some(journal) = gw.options.journal.clone() else { return };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    entry["unix_ms"] = json!(now);
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || journal.record(&entry)).await {
        tracing::error!("{e}");
    }
}

/// `GET /api/history?limit=N`: the latest commands with their results, newest first (needs a journal).
async fn api_history(
    State(gw): State<Gateway>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let Some(journal) = gw.options.journal.clone() else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "no journal: start with --data-dir" }))).into_response();
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= 10_000 => n,
        Some(_) => {
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": "limit must be 0..10000" }))).into_response();
        }
    };
    match tokio::task::spawn_blocking(move || journal.history(limit)).await {
        Ok(Ok(entries)) => Json(json!({ "history": entries })).into_response(),
        _ => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": "the journal cannot be read" }))).into_response()
        }
    }
}

/// A client's allowance of commands: its own bucket and its address's.
struct Allowance {
    bucket: Bucket,
    ip: IpAddr,
}

impl Allowance {
    fn new(gw: &Gateway, ip: IpAddr) -> Allowance {
        Allowance { bucket: Bucket::new(gw.options.limits.per_connection, Instant::now()), ip }
    }

    /// `None` when the command may go, else the reason it may not.
    fn check(&mut self, gw: &Gateway) -> Option<String> {
        let now = Instant::now();
        let limits = &gw.options.limits;
        if !self.bucket.take(now) {
            return Some(format!("too many commands: at most {} per second per connection", limits.per_connection));
        }
        if !gw.per_address.take(self.ip, limits.per_address, now) {
            return Some(format!("too many commands: at most {} per second per address", limits.per_address));
        }
        None
    }
}

/// Refuses a WebSocket from an origin not on the allow-list.
fn origin_refused(gw: &Gateway, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get("origin").and_then(|o| o.to_str().ok());
    (!gw.options.limits.origin_allowed(origin))
        .then(|| (StatusCode::FORBIDDEN, "this origin may not open a WebSocket here").into_response())
}

/// Counts a connected client for as long as it lives.
struct Connected(&'static str);

impl Connected {
    fn new(protocol: &'static str) -> Connected {
        metrics::client(protocol, 1.0);
        Connected(protocol)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::client(self.0, -1.0);
    }
}

async fn ws_2021(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(gw, peer, &headers, ws, client_2021)
}

/// Opens a WebSocket for `client` if the origin is allowed, with the frame size limit.
fn upgrade<F>(
    gw: Gateway,
    peer: SocketAddr,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
    client: fn(Gateway, WebSocket, IpAddr) -> F,
) -> Response
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if let Some(refusal) = origin_refused(&gw, headers) {
        return refusal;
    }
    // Small buffers: an idle client costs little memory. Frames wait in the write buffer until a flush (or
    // until it holds WRITE_BUFFER_BYTES), so a burst of frames goes out in one write.
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |s| client(gw, s, peer.ip()))
}

/// One 2021 client: its commands go to the track; every change, and every 2 s every state, comes back.
async fn client_2021(gw: Gateway, socket: WebSocket, ip: IpAddr) {
    let _connected = Connected::new("2021");
    let mut allowance = Allowance::new(&gw, ip);
    let layout = gw.track.layout().clone();
    let (mut out, mut inbox) = socket.split();
    let mut devices = gw.devices.clone();
    let mut sent: Vec<Option<OnOff>> = vec![None; layout.devices.len()];
    let mut resend = tokio::time::interval(RESEND_EVERY);
    loop {
        let frames: Vec<String> = tokio::select! {
            message = inbox.next() => match message {
                Some(Ok(Message::Text(text))) => match parse(&layout, text.as_str()) {
                    Err(reason) => vec![error_frame(&reason)],
                    Ok(_) if let Some(reason) = allowance.check(&gw) => vec![error_frame(&reason)],
                    Ok(request) => match apply(&gw, request).await {
                        Outcome::Applied => Vec::new(),
                        Outcome::Rejected(r) => vec![error_frame(&r.message)],
                        Outcome::Failed(reason) => vec![error_frame(&reason)],
                    },
                },
                Some(Ok(Message::Binary(_))) => vec![error_frame("text frames only")],
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => Vec::new(),
            },
            changed = devices.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = devices.borrow_and_update().clone();
                let frames = changes(&layout, &sent, &now);
                sent = now.to_vec();
                frames
            }
            _ = resend.tick() => {
                let now = devices.borrow().clone();
                sent = now.to_vec();
                changes(&layout, &vec![None; now.len()], &now)
            }
        };
        if send_all(&mut out, frames).await.is_err() {
            return;
        }
    }
}

/// Sends `frames` with one write: they wait in the write buffer until the flush.
async fn send_all(
    out: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    frames: Vec<String>,
) -> Result<(), axum::Error> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        out.feed(Message::Text(frame.into())).await?;
    }
    out.flush().await
}

/// The devices whose state differs between `before` and `now`, with their state now.
fn changed_devices<'a>(
    before: &'a [Option<OnOff>],
    now: &'a [Option<OnOff>],
) -> impl Iterator<Item = (usize, Option<OnOff>)> + 'a {
    now.iter().zip(before).enumerate().filter(|(_, (n, b))| n != b).map(|(d, (n, _))| (d, *n))
}

/// 2021 frames for the devices whose state differs (a device between positions has no 2021 frame).
fn changes(layout: &Layout, before: &[Option<OnOff>], now: &[Option<OnOff>]) -> Vec<String> {
    changed_devices(before, now).filter_map(|(d, n)| n.map(|s| device_frame(&layout.devices[d].name, s))).collect()
}

/// `GET /`: the phone control page (no CDN: everything it needs is served from here).
async fn index() -> impl IntoResponse {
    axum::response::Html(include_str!("page/index.html"))
}

/// One of the page's files, with its content type.
fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(axum::http::header::CONTENT_TYPE, kind), (axum::http::header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /api/layout`: the layout as a schematic picture (tracks, devices, sensors, stations, trains).
async fn api_layout(State(gw): State<Gateway>) -> impl IntoResponse {
    Json(gw.track.layout().drawing())
}

/// `GET /api/state`: the mode, every device, train and board.
async fn api_state(State(gw): State<Gateway>) -> impl IntoResponse {
    Json(snapshot_value(gw.track.layout(), &gw.track.snapshot().await))
}

fn state_name(state: Option<OnOff>) -> Value {
    match state {
        Some(OnOff::On) => json!("ON"),
        Some(OnOff::Off) => json!("OFF"),
        None => json!(null),
    }
}

/// A train for views: where its front is (segment, offset and schematic x, y), its speed and status.
fn train_value(layout: &Layout, p: &TrainPosition) -> Value {
    let [x, y] = layout.point_at(p.front.seg, p.front.offset);
    let status = p.status.name();
    json!({
        "name": layout.trains[p.train].name,
        "segment": layout.segments[p.front.seg].id,
        "offset_mm": p.front.offset,
        "x": x,
        "y": y,
        "speed_mm_s": p.speed,
        "status": status,
    })
}

fn board_value(h: &BoardHealth) -> Value {
    json!({ "name": h.name, "address": h.address, "alive": h.alive, "restoring": h.restoring })
}

fn mode_name(mode: Mode) -> &'static str {
    if mode == Mode::Sim { "sim" } else { "live" }
}

/// The whole track as JSON (`/api/state`, and the v2 `snapshot` frame).
fn snapshot_value(layout: &Layout, snap: &Snapshot) -> Value {
    let devices: Vec<Value> = layout
        .devices
        .iter()
        .zip(&snap.state.devices)
        .map(|(d, p)| json!({ "name": d.name, "kind": d.kind, "state": state_name(p.state()) }))
        .collect();
    let trains: Vec<Value> = snap
        .state
        .trains
        .iter()
        .map(|t| {
            let p = TrainPosition {
                train: t.id,
                front: t.body.front(layout),
                speed: t.effective_speed(),
                status: t.status,
            };
            let mut v = train_value(layout, &p);
            v["set_speed_mm_s"] = json!(t.set_speed);
            v
        })
        .collect();
    let boards: Vec<Value> = snap.boards.iter().map(|(_, h)| board_value(h)).collect();
    json!({
        "mode": mode_name(snap.mode),
        "time_ms": snap.state.time_ms,
        "devices": devices,
        "trains": trains,
        "boards": boards,
    })
}

async fn ws_v2(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(gw, peer, &headers, ws, client_v2)
}

/// One v2 client: a snapshot first; then acks or refusals for its commands, device and train changes (latest
/// only), board health, mode and events as they happen.
async fn client_v2(gw: Gateway, socket: WebSocket, ip: IpAddr) {
    let _connected = Connected::new("v2");
    let mut allowance = Allowance::new(&gw, ip);
    let layout = gw.track.layout().clone();
    let (mut out, mut inbox) = socket.split();
    let mut devices = gw.devices.clone();
    let mut trains = gw.trains.clone();
    let mut events = gw.track.subscribe();
    let mut sent: Vec<Option<OnOff>> = devices.borrow_and_update().to_vec();
    let snapshot = |snap: Snapshot| {
        let mut v = snapshot_value(&layout, &snap);
        v["type"] = json!("snapshot");
        v.to_string()
    };
    if out.send(Message::Text(snapshot(gw.track.snapshot().await).into())).await.is_err() {
        return;
    }
    loop {
        let frames: Vec<String> = tokio::select! {
            message = inbox.next() => match message {
                Some(Ok(Message::Text(text))) => match v2::parse(&layout, text.as_str()) {
                    (id, Err(reason)) => vec![v2::error(id, &reason)],
                    (id @ Some(_), Ok(_)) if let Some(reason) = allowance.check(&gw) => vec![v2::error(id, &reason)],
                    (Some(id), Ok(v2::Command::Operator { token, action })) => {
                        if operator::authorised(gw.options.operator_token.as_deref(), &token) {
                            let result = operator::perform(&gw.track, action).await;
                            let (done, text) = match &result {
                                Ok(detail) => ("applied", detail.clone()),
                                Err(reason) => ("failed", reason.clone()),
                            };
                            journal(&gw, json!({ "operator": format!("{action:?}"), "result": done, "reason": text })).await;
                            vec![match result {
                                Ok(detail) => v2::done(id, &detail),
                                Err(reason) => v2::failed(id, &reason),
                            }]
                        } else {
                            vec![v2::denied(id)]
                        }
                    }
                    (Some(id), Ok(v2::Command::Track(request))) => vec![match apply(&gw, request).await {
                        Outcome::Applied => v2::ack(id),
                        Outcome::Rejected(r) => v2::rejected(id, r.kind.label(), &r.message),
                        Outcome::Failed(reason) => v2::failed(id, &reason),
                    }],
                    (Some(_), Ok(v2::Command::Snapshot)) => vec![snapshot(gw.track.snapshot().await)],
                    (None, Ok(_)) => vec![v2::error(None, "a command needs an id")],
                },
                Some(Ok(Message::Binary(_))) => vec![v2::error(None, "text frames only")],
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => Vec::new(),
            },
            changed = devices.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = devices.borrow_and_update().clone();
                let frames = changed_devices(&sent, &now).map(|(d, n)| v2::device(&layout.devices[d].name, n)).collect();
                sent = now.to_vec();
                frames
            }
            changed = trains.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = trains.borrow_and_update().clone();
                let list: Vec<Value> = now.iter().map(|p| train_value(&layout, p)).collect();
                vec![json!({ "type": "trains", "trains": list }).to_string()]
            }
            event = events.recv() => match event {
                Ok(TrackEvent::Board(h)) => {
                    let mut v = board_value(&h);
                    v["type"] = json!("board");
                    vec![v.to_string()]
                }
                Ok(TrackEvent::Mode(m)) => vec![json!({ "type": "mode", "mode": mode_name(m) }).to_string()],
                Ok(TrackEvent::Divergence(d)) => vec![v2::event("divergence", &d.describe(&layout))],
                Ok(TrackEvent::Sim(e)) => match e.kind {
                    EventKind::SensorPassed { sensor, train } => {
                        let (sensor, train) = (&layout.sensors[sensor].name, &layout.trains[train].name);
                        vec![v2::sensor_event(sensor, train, &e.describe(&layout))]
                    }
                    EventKind::Collision { .. } => vec![v2::event("collision", &e.describe(&layout))],
                    EventKind::Derailment { .. } => vec![v2::event("derailment", &e.describe(&layout))],
                    _ => Vec::new(),
                },
                Ok(_) => Vec::new(),
                // Too slow for the event stream: start again from a snapshot.
                Err(RecvError::Lagged(_)) => vec![snapshot(gw.track.snapshot().await)],
                Err(RecvError::Closed) => return,
            },
        };
        if send_all(&mut out, frames).await.is_err() {
            return;
        }
    }
}
