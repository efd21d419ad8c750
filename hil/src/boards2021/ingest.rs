//! Hall-sensor ingest: the 2021 `POST /registerPosition` endpoint, and the mapping between sensor reports and
//! the layout's sensors (both ways: virtual sensor boards build reports from simulated sensor passes).
//!
//! A report is trusted only from its board: it must come from the board's address (the layout's, or the one
//! `--board` maps it to), and a board may send at most [`REPORTS_PER_SECOND`] reports a second; the rest are
//! refused (403, 429) and change nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sim::layout::{BoardId, BoardKind, Layout, SensorId, TrainId};
use sim::twin::{EventKind, SimEvent};
use tokio::sync::mpsc::UnboundedSender;

use crate::boards2021::protocol::SensorReport;

/// Largest report body accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 4096;

/// Time a report's body may take to arrive; a slower sender is answered 408 and let go.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most reports one sensor board may send in a second (a train passes a sensor a few times a second at most).
pub const REPORTS_PER_SECOND: u32 = 20;

/// An accepted report: which sensor saw which train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorReading {
    /// The sensor.
    pub sensor: SensorId,
    /// The train id the board read from the magnets.
    pub train_id: u32,
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The body is not a report.
    #[error("{0}")]
    Malformed(String),
    /// The reporting board is not on the layout's allow-list of sensor boards.
    #[error("board {0} is not an allowed sensor board")]
    UnknownBoard(String),
    /// The board has no sensor on that pin.
    #[error("board {board} has no sensor on pin {pin}")]
    UnknownPin {
        /// Board address.
        board: String,
        /// The pin.
        pin: u32,
    },
    /// The report names a board but came from another address.
    #[error("a report for board {board} came from {from}, not from the board ({expected})")]
    WrongSender {
        /// Board address.
        board: String,
        /// Where it came from.
        from: IpAddr,
        /// Where the board's reports come from, in words.
        expected: String,
    },
    /// The board sent more reports than [`REPORTS_PER_SECOND`].
    #[error("board {0} sent more than {REPORTS_PER_SECOND} reports in a second")]
    TooMany(String),
}

impl IngestError {
    /// The HTTP status for this refusal (403 for a board not allowed, 400 otherwise).
    pub fn status(&self) -> u16 {
        match self {
            IngestError::UnknownBoard(_) | IngestError::WrongSender { .. } => 403,
            IngestError::TooMany(_) => 429,
            IngestError::Malformed(_) | IngestError::UnknownPin { .. } => 400,
        }
    }
}

/// Maps a report to a sensor of the layout.
pub fn resolve(layout: &Layout, report: &SensorReport) -> Result<SensorReading, IngestError> {
    let board = layout
        .boards
        .iter()
        .position(|b| b.kind == BoardKind::Sensor && b.address == report.mac_address)
        .ok_or_else(|| IngestError::UnknownBoard(report.mac_address.clone()))?;
    let sensor = layout
        .sensors
        .iter()
        .position(|s| s.wiring == Some((board, report.pin)))
        .ok_or_else(|| IngestError::UnknownPin { board: report.mac_address.clone(), pin: report.pin })?;
    Ok(SensorReading { sensor, train_id: report.train_id })
}

/// The train id a virtual sensor board reports for a train (its index + 1; 0 is no train).
pub fn train_id(train: TrainId) -> u32 {
    train as u32 + 1
}

/// The report a sensor board sends for a simulated sensor pass, if the sensor is wired to a board.
pub fn report_for(layout: &Layout, event: &SimEvent) -> Option<SensorReport> {
    let EventKind::SensorPassed { sensor, train } = event.kind else { return None };
    let (board, pin) = layout.sensors[sensor].wiring?;
    Some(SensorReport { mac_address: layout.boards[board].address.clone(), pin, train_id: train_id(train) })
}

/// Where each sensor board's reports must come from, and how many each has sent in the current second.
#[derive(Debug, Clone)]
pub struct Senders {
    /// The address of each board of the layout (by board id), when it is an IP address.
    addresses: Vec<Option<IpAddr>>,
    /// Each board's count of reports in its current one-second window.
    windows: Arc<Mutex<Vec<(Instant, u32)>>>,
}

impl Senders {
    /// The senders of the layout's boards at `addresses` (by board id; `HOST` or `HOST:PORT`).
    pub fn new(addresses: &[String]) -> Senders {
        let ip = |a: &String| a.parse::<IpAddr>().ok().or_else(|| a.parse::<SocketAddr>().ok().map(|s| s.ip()));
        let now = Instant::now();
        Senders {
            addresses: addresses.iter().map(ip).collect(),
            windows: Arc::new(Mutex::new(vec![(now, 0); addresses.len()])),
        }
    }

    /// Whether board `board` (named `name`) may send a report from `from` now: its address, within its rate.
    pub fn admit(&self, board: BoardId, name: &str, from: IpAddr, now: Instant) -> Result<(), IngestError> {
        match self.addresses.get(board).copied().flatten() {
            Some(expected) if expected == from || (expected.is_loopback() && from.is_loopback()) => {}
            expected => {
                let expected = expected.map_or("an address that is not an IP address".to_string(), |e| e.to_string());
                return Err(IngestError::WrongSender { board: name.to_string(), from, expected });
            }
        }
        let mut windows = self.windows.lock().expect("report windows");
        let (start, count) = &mut windows[board];
        if now.duration_since(*start) >= Duration::from_secs(1) {
            (*start, *count) = (now, 0);
        }
        *count += 1;
        if *count > REPORTS_PER_SECOND {
            return Err(IngestError::TooMany(name.to_string()));
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Ingest {
    layout: Arc<Layout>,
    senders: Senders,
    readings: UnboundedSender<SensorReading>,
}

/// The `/registerPosition` endpoint; reports from `senders` that pass go to `readings`. It needs the peer's
/// address (serve it with `into_make_service_with_connect_info::<SocketAddr>`).
pub fn router(layout: Arc<Layout>, senders: Senders, readings: UnboundedSender<SensorReading>) -> Router {
    Router::new().route("/registerPosition", post(register)).with_state(Ingest { layout, senders, readings })
}

async fn register(State(ingest): State<Ingest>, ConnectInfo(peer): ConnectInfo<SocketAddr>, body: Body) -> Response {
    let refuse = |status: StatusCode, error: &str| {
        (status, [("content-type", "application/json")], serde_json::json!({ "error": error }).to_string())
            .into_response()
    };
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_REPORT_BYTES)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "a report is at most 4096 bytes"),
        Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "the report's body did not arrive in time"),
    };
    let result = SensorReport::decode(&body).map_err(IngestError::Malformed).and_then(|report| {
        let reading = resolve(&ingest.layout, &report)?;
        let board = ingest.layout.sensors[reading.sensor].wiring.expect("a resolved sensor is wired").0;
        ingest.senders.admit(board, &report.mac_address, peer.ip(), Instant::now())?;
        Ok(reading)
    });
    match result {
        Ok(reading) => {
            if ingest.readings.send(reading).is_err() {
                let body = serde_json::json!({ "error": "the track is not listening" }).to_string();
                return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
            }
            (StatusCode::OK, [("content-type", "application/json")], r#"{"status":"OK"}"#).into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).expect("valid status");
            let body = serde_json::json!({ "error": e.to_string() }).to_string();
            (status, [("content-type", "application/json")], body).into_response()
        }
    }
}
