//! The HTTP side: the 2021 WebSocket protocol on `/ws`, the state snapshot on `/api/state`, and the sensor
//! ingest on `/registerPosition`, all over one [`Track`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use hil::track::{Mode, Outcome, Track, TrackEvent};
use serde_json::{Value, json};
use sim::layout::OnOff;
use sim::twin::{EventKind, TrainStatus};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::protocol_2021::{device_frame, error_frame, parse};

/// Largest WebSocket frame accepted from a client, in bytes.
pub const MAX_FRAME_BYTES: usize = 4096;

/// How often the 2021 protocol re-sends every device's state.
pub const RESEND_EVERY: Duration = Duration::from_secs(2);

/// The state shared by every connection.
#[derive(Clone)]
struct Gateway {
    track: Track,
    devices: watch::Receiver<Arc<Vec<Option<OnOff>>>>,
}

/// The gateway's routes over `track`. Spawns the task that keeps the latest device states for the clients.
pub async fn router(track: Track) -> Router {
    let initial: Vec<Option<OnOff>> = track.state().await.devices.iter().map(|p| p.state()).collect();
    let (tx, rx) = watch::channel(Arc::new(initial));
    tokio::spawn(follow_devices(track.clone(), tx));
    let ingest = hil::ingest::router(track.layout().clone(), track.readings());
    Router::new()
        .route("/", get(index))
        .route("/ws", get(ws_2021))
        .route("/api/state", get(api_state))
        .with_state(Gateway { track, devices: rx })
        .merge(ingest)
}

/// Keeps the latest state of every device. A client that reads slowly only ever sees the latest states.
async fn follow_devices(track: Track, tx: watch::Sender<Arc<Vec<Option<OnOff>>>>) {
    let mut events = track.subscribe();
    loop {
        match events.recv().await {
            Ok(TrackEvent::Sim(e)) => {
                if let EventKind::DeviceChanged { device, position } = e.kind {
                    tx.send_modify(|all| Arc::make_mut(all)[device] = position.state());
                }
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

async fn ws_2021(State(gw): State<Gateway>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_FRAME_BYTES).max_frame_size(MAX_FRAME_BYTES).on_upgrade(move |s| client_2021(gw, s))
}

/// One 2021 client: its commands go to the track; every change, and every 2 s every state, comes back.
async fn client_2021(gw: Gateway, socket: WebSocket) {
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
                    Ok(request) => match gw.track.apply(request).await {
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
        for frame in frames {
            if out.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
    }
}

/// Frames for the devices whose state differs between `before` and `now`.
fn changes(layout: &sim::layout::Layout, before: &[Option<OnOff>], now: &[Option<OnOff>]) -> Vec<String> {
    now.iter()
        .zip(before)
        .enumerate()
        .filter(|(_, (n, b))| n != b)
        .filter_map(|(d, (n, _))| n.map(|s| device_frame(&layout.devices[d].name, s)))
        .collect()
}

/// `GET /`: what this server offers (the phone control page is not built yet).
async fn index() -> impl IntoResponse {
    axum::response::Html(
        "<!doctype html><meta charset=utf-8><title>plarail-twin</title><h1>plarail-twin</h1>\
         <p>The phone control page is not built yet. This server speaks:</p><ul>\
         <li><code>/ws</code>: the 2021 WebSocket protocol</li>\
         <li><a href=/api/state><code>/api/state</code></a>: devices, trains, boards and mode as JSON</li>\
         <li><code>POST /registerPosition</code>: the 2021 hall-sensor reports</li></ul>",
    )
}

/// `GET /api/state`: the mode, every device, train and board.
async fn api_state(State(gw): State<Gateway>) -> impl IntoResponse {
    let snap = gw.track.snapshot().await;
    let layout = gw.track.layout();
    let devices: Vec<Value> = layout
        .devices
        .iter()
        .zip(&snap.state.devices)
        .map(|(d, p)| {
            let state = match p.state() {
                Some(OnOff::On) => json!("ON"),
                Some(OnOff::Off) => json!("OFF"),
                None => json!(null),
            };
            json!({ "name": d.name, "kind": d.kind, "state": state })
        })
        .collect();
    let trains: Vec<Value> = snap
        .state
        .trains
        .iter()
        .map(|t| {
            let front = t.body.front(layout);
            let status = match t.status {
                TrainStatus::Running => "running",
                TrainStatus::Crashed => "crashed",
                TrainStatus::Derailed => "derailed",
                TrainStatus::Removed => "removed",
            };
            json!({
                "name": layout.trains[t.id].name,
                "segment": layout.segments[front.seg].id,
                "offset_mm": front.offset,
                "speed_mm_s": t.effective_speed(),
                "set_speed_mm_s": t.set_speed,
                "status": status,
            })
        })
        .collect();
    let boards: Vec<Value> = snap
        .boards
        .iter()
        .map(|(_, h)| json!({ "name": h.name, "address": h.address, "alive": h.alive, "restoring": h.restoring }))
        .collect();
    let mode = if snap.mode == Mode::Sim { "sim" } else { "live" };
    Json(json!({ "mode": mode, "time_ms": snap.state.time_ms, "devices": devices, "trains": trains, "boards": boards }))
}
