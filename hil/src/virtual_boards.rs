//! Virtual servo boards: the firmware's HTTP API served on loopback on top of a running simulation.
//!
//! Each board of the layout listens on its own port and answers every request as the 2021 firmware does:
//! `POST /` with a command ([`crate::firmware`]); `POST /health` with status 404 and body `{"status":"OK"}` (the
//! firmware's quirk); any other path or method with the ESP32 web server's default, 404 `Not found: <path>`
//! (so `GET /health`, which the 2021 server polled, is a 404). A servo that moves drives the simulated device
//! to the new angle; an angle equal to neither the device's ON nor its OFF angle leaves it between positions,
//! which the simulation treats as unsafe.
//!
//! Two paths are the twin's own, not the firmware's: faults can be set per board at run time on
//! `/_twin/faults` (JSON [`Faults`], or [`VirtualBoard::set_faults`]), and `/_twin/reboot` power-cycles it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sim::layout::{BoardKind, DeviceId, Layout};
use sim::twin::SimCommand;

use crate::firmware::{POWER_ON_ANGLE, ServoBoard};
use crate::protocol::{Answer, BoardCommand};
use crate::rig::SimSink;

/// Faults a virtual board shows, settable at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added latency before every answer, ms. A command is carried out at once and answered late (a client that
    /// gives up meanwhile does not undo it), as a slow board does.
    pub latency_ms: u64,
    /// Take requests and never answer them.
    pub drop_requests: bool,
    /// Answer every request with status 500.
    pub error_500: bool,
}

struct Shared {
    firmware: Mutex<ServoBoard>,
    faults: Mutex<Faults>,
    started: Instant,
    devices: HashMap<u32, DeviceId>,
    sink: SimSink,
    /// Requests answered with an error status (400 or 404).
    refused: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// One running virtual servo board.
#[derive(Clone)]
pub struct VirtualBoard {
    /// The board's name in the layout.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl VirtualBoard {
    /// Sets the faults it shows from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("faults") = faults;
    }

    /// The faults it shows.
    pub fn faults(&self) -> Faults {
        *self.shared.faults.lock().expect("faults")
    }

    /// Power-cycles the board: its servos return to their power-on angle (moving the simulated devices) and
    /// its clock is lost.
    pub fn reboot(&self) {
        reboot(&self.shared);
    }

    /// How many requests it refused (answered 400 or 404), as the firmware would have: a live track sends
    /// none.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// The angle of the servo on `pin`.
    pub fn angle(&self, pin: u32) -> Option<u32> {
        self.shared.firmware.lock().expect("firmware").angle(pin)
    }
}

fn reboot(shared: &Shared) {
    shared.firmware.lock().expect("firmware").reboot(shared.now_ms());
    for &device in shared.devices.values() {
        (shared.sink)(SimCommand::SetAngle { device, angle: POWER_ON_ANGLE });
    }
}

/// Starts a virtual board for every servo board of the layout. `listen` may give a board's address by its
/// name or its layout address; the others listen on `127.0.0.1` with a port chosen by the system.
pub async fn start(
    layout: &Layout,
    listen: &HashMap<String, SocketAddr>,
    sink: SimSink,
) -> std::io::Result<Vec<VirtualBoard>> {
    let mut boards = Vec::new();
    for (id, b) in layout.boards.iter().enumerate().filter(|(_, b)| b.kind == BoardKind::Servo) {
        let (listener, addr) = crate::rig::listen(listen, b).await?;
        let devices =
            layout.devices.iter().enumerate().filter(|(_, d)| d.board == id).map(|(i, d)| (d.pin, i)).collect();
        let shared = Arc::new(Shared {
            firmware: Mutex::new(ServoBoard::for_board(layout, id, 0)),
            faults: Mutex::new(Faults::default()),
            started: Instant::now(),
            devices,
            sink: sink.clone(),
            refused: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/", post(command).fallback(not_found))
            .route("/health", post(health_post).fallback(not_found))
            .route("/_twin/faults", get(faults_get).put(faults_put))
            .route("/_twin/reboot", post(reboot_post))
            .fallback(not_found)
            .with_state(shared.clone());
        tokio::spawn(async move {
            // The server ends only with the runtime; an accept error ends this board's server.
            let _ = axum::serve(listener, app).await;
        });
        boards.push(VirtualBoard { name: b.name.clone(), addr, shared });
    }
    Ok(boards)
}

/// Applies latency, drops and 500s; `None` means go on and answer.
async fn faulted(shared: &Shared) -> Option<Response> {
    let faults = *shared.faults.lock().expect("faults");
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.drop_requests {
        std::future::pending::<()>().await;
    }
    faults.error_500.then(|| (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
}

/// An answer of the firmware's, counted when it refuses.
fn json(shared: &Shared, status: u16, body: String) -> Response {
    if status != 200 {
        shared.refused.fetch_add(1, Ordering::Relaxed);
    }
    let status = StatusCode::from_u16(status).expect("firmware statuses are valid");
    (status, [("content-type", "application/json")], body).into_response()
}

async fn command(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults = *shared.faults.lock().expect("faults");
    if (faults.drop_requests || faults.error_500)
        && let Some(r) = faulted(&shared).await
    {
        return r;
    }
    let answer = match BoardCommand::decode(&body) {
        Err(answer) => answer,
        Ok(cmd) => {
            let outcome = shared.firmware.lock().expect("firmware").handle(&cmd, shared.now_ms());
            if let Some((pin, angle)) = outcome.moved
                && let Some(&device) = shared.devices.get(&pin)
            {
                (shared.sink)(SimCommand::SetAngle { device, angle });
            }
            outcome.answer
        }
    };
    tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    json(&shared, answer.status(), answer.body())
}

/// The firmware's `POST /health`: status 404 with body `{"status":"OK"}`.
async fn health_post(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = faulted(&shared).await {
        return r;
    }
    json(&shared, 404, r#"{"status":"OK"}"#.into())
}

/// What the ESP32 web server answers for a path (or method) the firmware did not register.
async fn not_found(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    if let Some(r) = faulted(&shared).await {
        return r;
    }
    shared.refused.fetch_add(1, Ordering::Relaxed);
    (StatusCode::NOT_FOUND, [("content-type", "text/plain")], format!("Not found: {}", uri.path())).into_response()
}

async fn faults_get(State(shared): State<Arc<Shared>>) -> Response {
    let faults = *shared.faults.lock().expect("faults");
    json(&shared, 200, serde_json::to_string(&faults).expect("plain JSON"))
}

async fn faults_put(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            *shared.faults.lock().expect("faults") = f;
            json(&shared, 200, serde_json::to_string(&f).expect("plain JSON"))
        }
        Err(e) => {
            let body = serde_json::json!({ "error": format!("not a fault setting: {e}") }).to_string();
            (StatusCode::BAD_REQUEST, [("content-type", "application/json")], body).into_response()
        }
    }
}

async fn reboot_post(State(shared): State<Arc<Shared>>) -> Response {
    reboot(&shared);
    json(&shared, 200, Answer::Ok { last_update: 0 }.body())
}
