//! HIL bridge: everything between the gateway and a track. Its modules, by hardware family:
//!
//! The 2021 HTTP servo boards and sensor boards:
//! - [`protocol`]: the ESP32 boards' HTTP protocol as plain data;
//! - [`firmware`]: what a servo board answers to every request, branch by branch (a plain state machine);
//! - [`arduino_json`]: how the firmware reads JSON (ArduinoJson 6: partial documents, lenient conversions);
//! - [`client`]: drives boards over HTTP, one request at a time per board, with timeouts and retries;
//! - [`virtual_boards`]: the firmware API served on loopback on top of the simulation, with fault injection;
//! - [`ingest`]: the `/registerPosition` sensor endpoint and the report <-> sensor mapping.
//!
//! The 2021 onboard speed controllers:
//! - [`onboard`]: what the controller does with a speed (PWM duty, kick, motor);
//! - [`speed`]: drives controllers over the 2021 gRPC `Speed.ControlSpeed`;
//! - [`virtual_controllers`]: the controller served on loopback on top of the simulation;
//! - [`proto2021`]: the 2021 gRPC services, generated.
//!
//! The 2023 MQTT boards:
//! - [`mqtt2023`]: their topics and words as plain data;
//! - [`firmware2023`]: the board firmware's state machine, both builds;
//! - [`virtual_mqtt_boards`]: that firmware on a broker, on top of the simulation;
//! - [`boards2023`]: the twin's link to the boards' broker (deltas, retained desired states, block reports);
//! - [`presence`]: which clients a broker says are connected (mosquitto's log, EMQX's events);
//! - [`embedded_broker`]: rumqttd in this process, with presence;
//! - [`block_word`]: the hardware's word on the blocks beside the mirror's (faulty detectors, phantoms).
//!
//! Virtual devices over a simulation:
//! - [`virtual_device`]: what every virtual device shares (where it sends what it does, where it listens);
//! - [`rig`]: a simulated layout behind virtual boards and controllers (`plarail-twin boards`, tests).
//!
//! The track:
//! - [`track`]: the one track interface, in sim or live mode, with board health, restoration of desired
//!   states, automatic operation and the live-mode toggle;
//! - [`mirror`]: the live-mode mirror's bookkeeping (snap to sensor and detector reports, divergences).

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
pub mod virtual_device;
pub mod virtual_mqtt_boards;

/// Code generated from `proto/plarail2021.proto`: the 2021 gRPC services (no package, as in 2021), which the
/// gateway serves and the onboard speed controllers answer.
#[allow(missing_docs, clippy::all)]
pub mod proto2021 {
    tonic::include_proto!("_");
}
