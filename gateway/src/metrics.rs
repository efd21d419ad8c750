//! Prometheus metrics: what `/metrics` shows, and where the gateway records it.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `plarail_clients` | gauge | `protocol` (`2021`, `v2`) |
//! | `plarail_commands_total` | counter | `result` (`applied`, `rejected`, `failed`), `target` (device or train) |
//! | `plarail_command_seconds` | histogram | `result` |
//! | `plarail_commands_late_total` | counter | commands from edges that reached the core too long after their edge's last heartbeat (a cut uplink), refused |
//! | `plarail_board_up` | gauge | `board` (1 alive, 0 not) |
//! | `plarail_sensor_reports_total` | counter | |
//! | `plarail_block_reports_total` | counter | 2023 detectors' reports over MQTT (`block/{id}/update`) |
//! | `plarail_detector_health_changes_total{health}` | counter | 2023 pass detectors found `stuck` or `chattering`, taken `out_of_service`, `ok` again |
//! | `plarail_collisions_total`, `plarail_derailments_total`, `plarail_divergences_total` | counter | |
//! | `plarail_sim_real_time_factor` | gauge | |
//! | `plarail_mode` | gauge | `mode` (`sim`, `live`): 1 for the current mode |
//! | `plarail_grpc_requests_total` | counter | `method`, `code` (recorded in [`crate::grpc`]) |
//! | `plarail_resident_bytes` | gauge | the process's resident memory (Linux) |
//! | `plarail_cpu_seconds_total` | gauge | the process's CPU time, user and system (Linux) |
//! | `plarail_video_viewers` | gauge | `camera` |
//! | `plarail_video_publisher_up` | gauge | `camera` (1 while a source sends) |
//! | `plarail_video_bitrate_bps` | gauge | `camera` (incoming) |
//! | `plarail_video_frames_total`, `plarail_video_keyframe_requests_total`, `plarail_video_nacks_total` | counter | `camera` |

use std::time::Duration;

use hil::track::{Outcome, TrackEvent};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use sim::auto::{AutoEvent, Operation, TrainPlan, Wait};
use sim::layout::Layout;
use sim::twin::EventKind;
use sim::twin::Mode;

/// One gateway's metrics: its own recorder, so that what `/metrics` shows is what this gateway recorded (a
/// process may run several, as the tests do).
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
            .expect("valid buckets")
            .build_recorder();
        let metrics = Metrics { recorder };
        // Counters of rare events start at 0, so that they are there (and their rates defined) before the first.
        metrics.record(|| {
            for name in [
                "plarail_sensor_reports_total",
                "plarail_collisions_total",
                "plarail_derailments_total",
                "plarail_divergences_total",
            ] {
                counter!(name).absolute(0);
            }
        });
        metrics
    }
}

impl Metrics {
    /// Everything recorded, in Prometheus' text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// Records the cameras' state (the video doors call it every second).
    pub fn cameras(&self, cameras: &[video::CameraInfo]) {
        self.record(|| {
            for c in cameras {
                let camera = c.id.clone();
                gauge!("plarail_video_viewers", "camera" => camera.clone()).set(c.viewers as f64);
                gauge!("plarail_video_publisher_up", "camera" => camera.clone()).set(f64::from(u8::from(c.on_air)));
                gauge!("plarail_video_bitrate_bps", "camera" => camera.clone()).set(c.bitrate);
                counter!("plarail_video_frames_total", "camera" => camera.clone()).absolute(c.frames);
                counter!("plarail_video_keyframe_requests_total", "camera" => camera.clone())
                    .absolute(c.keyframe_requests);
                counter!("plarail_video_nacks_total", "camera" => camera).absolute(c.nacks);
            }
        });
    }

    fn record(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// A client connected (`+1`) or left (`-1`).
    pub fn client(&self, protocol: &'static str, delta: f64) {
        self.record(|| gauge!("plarail_clients", "protocol" => protocol).increment(delta));
    }

    /// A command's result and how long it took.
    pub fn command(&self, target: &str, outcome: &Outcome, took: Duration) {
        let result = result(outcome);
        self.record(|| {
            counter!("plarail_commands_total", "result" => result, "target" => target.to_string()).increment(1);
            histogram!("plarail_command_seconds", "result" => result).record(took.as_secs_f64());
        });
    }

    /// A command from an edge came too late (after a cut) and was refused.
    pub fn late_command(&self) {
        self.record(|| counter!("plarail_commands_late_total").increment(1));
    }

    /// A gRPC request and its answer's code.
    pub fn grpc(&self, method: &'static str, code: &str) {
        self.record(|| {
            counter!("plarail_grpc_requests_total", "method" => method, "code" => code.to_string()).increment(1)
        });
    }

    /// Records what a track event says.
    pub fn event(&self, e: &TrackEvent) {
        self.record(|| match e {
            // A board nothing is known of is neither up nor down: no figure.
            TrackEvent::Board(h) if h.unknown => {}
            TrackEvent::Board(h) => {
                gauge!("plarail_board_up", "board" => h.name.clone()).set(if h.alive { 1.0 } else { 0.0 })
            }
            TrackEvent::SensorReport(_) => counter!("plarail_sensor_reports_total").increment(1),
            TrackEvent::BlockReport { .. } => counter!("plarail_block_reports_total").increment(1),
            TrackEvent::Divergence(_) => counter!("plarail_divergences_total").increment(1),
            TrackEvent::Detector { health, .. } => {
                counter!("plarail_detector_health_changes_total", "health" => health.word().replace(' ', "_"))
                    .increment(1)
            }
            TrackEvent::Mode(m) => mode(*m),
            TrackEvent::Sim(s) => match s.kind {
                EventKind::Collision { .. } => counter!("plarail_collisions_total").increment(1),
                EventKind::Derailment { .. } => counter!("plarail_derailments_total").increment(1),
                _ => {}
            },
            TrackEvent::Operation(o) => operation(*o),
            TrackEvent::AutoRequest { outcome, .. } => {
                counter!("plarail_auto_requests_total", "result" => result(outcome)).increment(1)
            }
            TrackEvent::Trains(_)
            | TrackEvent::Block { .. }
            | TrackEvent::Speed { .. }
            | TrackEvent::Confirmed { .. }
            | TrackEvent::Plans { .. }
            | TrackEvent::Auto(_) => {}
        });
    }

    /// The current mode.
    pub fn mode(&self, m: Mode) {
        self.record(|| mode(m));
    }

    /// The current operation.
    pub fn operation(&self, o: Operation) {
        self.record(|| operation(o));
    }

    /// What automatic operation did: a call at a station (trains per hour through it), a departure (how long
    /// the train stood, how late against its dwell), a deadlock found or broken.
    pub fn automatic(&self, layout: &Layout, e: &AutoEvent) {
        self.record(|| match e {
            AutoEvent::Arrived { station, .. } => {
                let station = layout.stations[*station].id.clone();
                counter!("plarail_auto_calls_total", "station" => station).increment(1)
            }
            AutoEvent::Departed { stood_ms, late_ms, .. } => {
                histogram!("plarail_auto_stood_seconds").record(*stood_ms as f64 / 1000.0);
                histogram!("plarail_auto_late_seconds").record(*late_ms as f64 / 1000.0);
            }
            AutoEvent::Deadlock { .. } => counter!("plarail_deadlocks_total", "state" => "found").increment(1),
            AutoEvent::DeadlockBroken { .. } => counter!("plarail_deadlocks_total", "state" => "broken").increment(1),
            AutoEvent::HeldBack { .. } => counter!("plarail_deadlocks_total", "state" => "avoided").increment(1),
        });
    }

    /// How many automatic trains wait now, by reason (`dwell`, `route`, `behind`, `visitor`, `stopped`).
    pub fn waiting(&self, plans: &[TrainPlan]) {
        self.record(|| {
            for reason in ["dwell", "route", "behind", "visitor", "stopped"] {
                let n = plans.iter().filter(|p| p.wait.as_ref().map(wait_word) == Some(reason)).count();
                gauge!("plarail_auto_waiting_trains", "reason" => reason).set(n as f64);
            }
        });
    }

    /// Simulated time over wall time since the track started.
    pub fn real_time_factor(&self, factor: f64) {
        self.record(|| gauge!("plarail_sim_real_time_factor").set(factor));
    }

    /// The process's resident memory, read from `/proc/self/status` (Linux; elsewhere nothing is recorded).
    pub fn resident_memory(&self) {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return };
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
        if let Some(kib) = kib {
            self.record(|| gauge!("plarail_resident_bytes").set(kib * 1024.0));
        }
    }

    /// The process's CPU time so far, read from `/proc/self/stat` (Linux, in clock ticks of 10 ms).
    pub fn cpu_time(&self) {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
        // After the command name in parentheses: state is field 3, utime 14 and stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(14), ticks(15)) {
            self.record(|| gauge!("plarail_cpu_seconds_total").set((user + system) / 100.0));
        }
    }
}

/// A wait's reason as a label.
fn wait_word(w: &Wait) -> &'static str {
    match w {
        Wait::Dwell { .. } => "dwell",
        Wait::Route { .. } => "route",
        Wait::HeldBack { .. } => "held_back",
        Wait::Behind(_) => "behind",
        Wait::Visitor => "visitor",
        Wait::Stopped => "stopped",
    }
}

/// An outcome's word in the `result` label.
fn result(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Applied => "applied",
        Outcome::Rejected(_) => "rejected",
        Outcome::Failed(_) => "failed",
    }
}

fn operation(o: Operation) {
    for (word, each) in [("manual", Operation::Manual), ("auto", Operation::Auto), ("mixed", Operation::Mixed)] {
        gauge!("plarail_operation", "operation" => word).set(if o == each { 1.0 } else { 0.0 });
    }
}

fn mode(m: Mode) {
    gauge!("plarail_mode", "mode" => "sim").set(if m == Mode::Sim { 1.0 } else { 0.0 });
    gauge!("plarail_mode", "mode" => "live").set(if m == Mode::Live { 1.0 } else { 0.0 });
}
