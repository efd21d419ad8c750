//! HIL bridge: everything between the gateway and a track.
//!
//! - [`protocol`]: the ESP32 boards' HTTP protocol as plain data;
//! - [`firmware`]: what a servo board answers to every request, branch by branch (a plain state machine);
//! - [`arduino_json`]: how the firmware reads JSON (ArduinoJson 6: partial documents, lenient conversions);
//! - [`client`]: drives boards over HTTP, one request at a time per board, with timeouts and retries;
//! - [`virtual_boards`]: the firmware API served on loopback on top of the simulation, with fault injection;
//! - [`ingest`]: the `/registerPosition` sensor endpoint and the report <-> sensor mapping;
//! - [`rig`]: a simulated layout behind virtual servo and sensor boards;
//! - [`mirror`]: the live-mode mirror's bookkeeping (snap to sensor reports, divergences);
//! - [`onboard`]: what the 2021 onboard speed controller does with a speed (PWM duty, kick, motor);
//! - [`speed`]: drives onboard speed controllers over the 2021 gRPC `Speed.ControlSpeed`;
//! - [`virtual_controllers`]: the 2021 speed controller served on loopback on top of the simulation;
//! - [`track`]: the one track interface, in sim or live mode, with board health, restoration of desired
//!   states and the live-mode toggle.

pub mod arduino_json;
pub mod block_word;
pub mod boards2023;
pub mod client;
pub mod embedded_broker;
pub mod firmware;
pub mod firmware2023;
pub mod ingest;
pub mod mirror;
pub mod mqtt2023;
pub mod onboard;
pub mod presence;
pub mod protocol;
pub mod rig;
pub mod speed;
pub mod track;
pub mod virtual_boards;
pub mod virtual_controllers;
pub mod virtual_mqtt_boards;

/// Code generated from `proto/plarail2021.proto`: the 2021 gRPC services (no package, as in 2021), which the
/// gateway serves and the onboard speed controllers answer.
#[allow(missing_docs, clippy::all)]
pub mod proto2021 {
    tonic::include_proto!("_");
}
