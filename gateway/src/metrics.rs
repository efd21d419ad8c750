//! Prometheus metrics: what `/metrics` shows, and where the gateway records it.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `plarail_clients` | gauge | `protocol` (`2021`, `v2`) |
//! | `plarail_commands_total` | counter | `result` (`applied`, `rejected`, `failed`), `target` (device or train) |
//! | `plarail_command_seconds` | histogram | `result` |
//! | `plarail_board_up` | gauge | `board` (1 alive, 0 not) |
//! | `plarail_sensor_reports_total` | counter | |
//! | `plarail_collisions_total`, `plarail_derailments_total`, `plarail_divergences_total` | counter | |
//! | `plarail_sim_real_time_factor` | gauge | |
//! | `plarail_mode` | gauge | `mode` (`sim`, `live`): 1 for the current mode |
//! | `plarail_grpc_requests_total` | counter | `method`, `code` (recorded in [`crate::grpc`]) |
//! | `plarail_resident_bytes` | gauge | the process's resident memory (Linux) |

use std::sync::OnceLock;
use std::time::Duration;

use hil::track::{Mode, Outcome, TrackEvent};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sim::twin::EventKind;

/// The process's Prometheus recorder (installed on first use).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
            .expect("valid buckets")
            .install_recorder()
            .expect("the only metrics recorder of the process")
    })
}

/// A client connected (`+1`) or left (`-1`).
pub fn client(protocol: &'static str, delta: f64) {
    gauge!("plarail_clients", "protocol" => protocol).increment(delta);
}

/// A command's result and how long it took.
pub fn command(target: &str, outcome: &Outcome, took: Duration) {
    let result = match outcome {
        Outcome::Applied => "applied",
        Outcome::Rejected(_) => "rejected",
        Outcome::Failed(_) => "failed",
    };
    counter!("plarail_commands_total", "result" => result, "target" => target.to_string()).increment(1);
    histogram!("plarail_command_seconds", "result" => result).record(took.as_secs_f64());
}

/// Records what a track event says.
pub fn event(e: &TrackEvent) {
    match e {
        TrackEvent::Board(h) => {
            gauge!("plarail_board_up", "board" => h.name.clone()).set(if h.alive { 1.0 } else { 0.0 })
        }
        TrackEvent::SensorReport(_) => counter!("plarail_sensor_reports_total").increment(1),
        TrackEvent::Divergence(_) => counter!("plarail_divergences_total").increment(1),
        TrackEvent::Mode(m) => mode(*m),
        TrackEvent::Sim(s) => match s.kind {
            EventKind::Collision { .. } => counter!("plarail_collisions_total").increment(1),
            EventKind::Derailment { .. } => counter!("plarail_derailments_total").increment(1),
            _ => {}
        },
        TrackEvent::Trains(_) => {}
    }
}

/// The current mode.
pub fn mode(m: Mode) {
    gauge!("plarail_mode", "mode" => "sim").set(if m == Mode::Sim { 1.0 } else { 0.0 });
    gauge!("plarail_mode", "mode" => "live").set(if m == Mode::Live { 1.0 } else { 0.0 });
}

/// Simulated time over wall time since the track started.
pub fn real_time_factor(factor: f64) {
    gauge!("plarail_sim_real_time_factor").set(factor);
}

/// The process's resident memory, read from `/proc/self/status` (Linux; elsewhere nothing is recorded).
pub fn resident_memory() {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return };
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    if let Some(kib) = kib {
        gauge!("plarail_resident_bytes").set(kib * 1024.0);
    }
}
