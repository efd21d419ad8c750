//! Hall-sensor ingest: the 2021 `POST /registerPosition` endpoint, and the mapping between sensor reports and
//! the layout's sensors (both ways: virtual sensor boards build reports from simulated sensor passes).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sim::layout::{BoardKind, Layout, SensorId, TrainId};
use sim::twin::{EventKind, SimEvent};
use tokio::sync::mpsc::UnboundedSender;

use crate::protocol::SensorReport;

/// Largest report body accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 4096;

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
}

impl IngestError {
    /// The HTTP status for this refusal (403 for a board not allowed, 400 otherwise).
    pub fn status(&self) -> u16 {
        match self {
            IngestError::UnknownBoard(_) => 403,
            _ => 400,
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

#[derive(Clone)]
struct Ingest {
    layout: Arc<Layout>,
    readings: UnboundedSender<SensorReading>,
}

/// The `/registerPosition` endpoint; accepted readings go to `readings`.
pub fn router(layout: Arc<Layout>, readings: UnboundedSender<SensorReading>) -> Router {
    Router::new()
        .route("/registerPosition", post(register))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
        .with_state(Ingest { layout, readings })
}

async fn register(State(ingest): State<Ingest>, body: Bytes) -> Response {
    let result =
        SensorReport::decode(&body).map_err(IngestError::Malformed).and_then(|report| resolve(&ingest.layout, &report));
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
