//! Virtual servo boards: the firmware served on loopback on top of a running simulation.
//!
//! Each board of the layout listens on its own port and answers every request exactly as the 2021 firmware
//! does ([`crate::boards2021::firmware`], branch by branch), one client at a time (the ESP32 web server's loop), closing
//! every connection after its answer. A servo write drives the simulated device to the servo's new angle; an
//! angle equal to neither the device's ON nor its OFF angle leaves it between positions, which the simulation
//! treats as unsafe.
//!
//! Two paths are the twin's own, not the firmware's: faults can be set per board at run time on
//! `/_twin/faults` (JSON [`Faults`], or [`VirtualBoard::set_faults`]), and `/_twin/reboot` power-cycles it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sim::layout::{BoardKind, DeviceId, Layout};
use sim::twin::SimCommand;

use crate::boards2021::firmware::{HttpRequest, POWER_ON_ANGLE, ServoBoard};
use crate::virtual_devices::device::SimSink;

/// Faults a virtual board shows, settable at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added latency before every answer, ms (a slow WiFi link): a command is carried out at once and answered
    /// late (a client that gives up meanwhile does not undo it); the board serves its next client meanwhile.
    pub latency_ms: u64,
    /// Take requests and never answer them.
    pub drop_requests: bool,
    /// Answer every request with status 500.
    pub error_500: bool,
    /// NTP answers when the board boots, so its clock is right at once after a reboot (without it, the clock
    /// counts from 0, as at a festival with no internet).
    pub ntp: bool,
}

struct Shared {
    firmware: Mutex<ServoBoard>,
    faults: Mutex<Faults>,
    /// Until then the board is booting and answers nothing.
    down_until: Mutex<Option<Instant>>,
    started: Instant,
    devices: HashMap<u32, DeviceId>,
    sink: SimSink,
    /// Requests answered with an error status (400 or 404).
    refused: AtomicU64,
    /// Requests the firmware answered (any status).
    answered: AtomicU64,
    /// Writes that changed a servo's angle, by pin.
    moves: Mutex<HashMap<u32, u64>>,
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
    /// its clock starts again (from 0, or from NTP's time with [`Faults::ntp`]).
    pub fn reboot(&self) {
        reboot(&self.shared, Duration::ZERO);
    }

    /// Power-cycles the board and keeps it silent for `down` (booting, joining the WiFi): requests meanwhile
    /// get no answer.
    pub fn reboot_for(&self, down: Duration) {
        reboot(&self.shared, down);
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

    /// How many requests the firmware answered (whatever the status): health checks, commands, clock sets.
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::Relaxed)
    }

    /// The board's clock (`time(NULL)`): unix seconds once set, else seconds since boot.
    pub fn clock(&self) -> i64 {
        self.shared.firmware.lock().expect("firmware").clock(self.shared.now_ms())
    }

    /// How many commands moved the servo on `pin` (wrote an angle it was not at).
    pub fn moves(&self, pin: u32) -> u64 {
        self.shared.moves.lock().expect("moves").get(&pin).copied().unwrap_or(0)
    }
}

fn reboot(shared: &Shared, down: Duration) {
    let ntp = shared.faults.lock().expect("faults").ntp.then(unix_now);
    shared.firmware.lock().expect("firmware").reboot(shared.now_ms(), ntp);
    *shared.down_until.lock().expect("down") = (!down.is_zero()).then(|| Instant::now() + down);
    for &device in shared.devices.values() {
        (shared.sink)(SimCommand::SetAngle { device, angle: POWER_ON_ANGLE });
    }
}

/// The time now in unix seconds.
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
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
        let (listener, addr) = crate::virtual_devices::device::listen(listen, b).await?;
        let devices =
            layout.devices.iter().enumerate().filter(|(_, d)| d.board == id).map(|(i, d)| (d.pin, i)).collect();
        let shared = Arc::new(Shared {
            firmware: Mutex::new(ServoBoard::new(0, None)),
            faults: Mutex::new(Faults::default()),
            down_until: Mutex::new(None),
            started: Instant::now(),
            devices,
            sink: sink.clone(),
            refused: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            moves: Mutex::default(),
        });
        let app = Router::new()
            .route("/_twin/faults", get(faults_get).put(faults_put))
            .route("/_twin/reboot", post(reboot_post))
            .fallback(serve)
            .with_state(shared.clone());
        tokio::spawn(async move {
            // The server ends only with the runtime; an accept error ends this board's server.
            let _ = axum::serve(listener, app).await;
        });
        boards.push(VirtualBoard { name: b.name.clone(), addr, shared });
    }
    Ok(boards)
}

/// Every request but the twin's own: the firmware's answer, one client at a time.
async fn serve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = *shared.faults.lock().expect("faults");
    let booting = shared.down_until.lock().expect("down").is_some_and(|until| Instant::now() < until);
    if faults.drop_requests || booting {
        return std::future::pending().await;
    }
    if faults.error_500 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let request = HttpRequest { post: method == Method::POST, path: uri.path(), form, body: &body };
    let outcome = {
        // One request at a time, as the firmware's loop serves them.
        let mut firmware = shared.firmware.lock().expect("firmware");
        let before = firmware.clone();
        let outcome = firmware.handle(&request, shared.now_ms());
        if let Some((pin, angle)) = outcome.moved
            && before.angle(pin) != Some(angle)
        {
            *shared.moves.lock().expect("moves").entry(pin).or_default() += 1;
        }
        if let Some((pin, angle)) = outcome.moved
            && let Some(&device) = shared.devices.get(&pin)
        {
            (shared.sink)(SimCommand::SetAngle { device, angle });
        }
        outcome
    };
    // The answer is on its way (a slow WiFi): the board serves the next client meanwhile.
    tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    if outcome.reply.status != 200 {
        shared.refused.fetch_add(1, Ordering::Relaxed);
    }
    shared.answered.fetch_add(1, Ordering::Relaxed);
    let status = StatusCode::from_u16(outcome.reply.status).expect("firmware statuses are valid");
    let headers = [(header::CONTENT_TYPE, outcome.reply.content_type), (header::CONNECTION, "close")];
    (status, headers, outcome.reply.body).into_response()
}

/// The twin's own answers (not the firmware's): JSON, status 200 or 400.
fn twin_json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn faults_get(State(shared): State<Arc<Shared>>) -> Response {
    let faults = *shared.faults.lock().expect("faults");
    twin_json(StatusCode::OK, serde_json::to_string(&faults).expect("plain JSON"))
}

async fn faults_put(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            *shared.faults.lock().expect("faults") = f;
            twin_json(StatusCode::OK, serde_json::to_string(&f).expect("plain JSON"))
        }
        Err(e) => {
            let body = serde_json::json!({ "error": format!("not a fault setting: {e}") }).to_string();
            twin_json(StatusCode::BAD_REQUEST, body)
        }
    }
}

async fn reboot_post(State(shared): State<Arc<Shared>>) -> Response {
    reboot(&shared, Duration::ZERO);
    twin_json(StatusCode::OK, r#"{"rebooted":true}"#.into())
}
