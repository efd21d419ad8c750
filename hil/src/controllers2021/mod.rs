//! The 2021 onboard speed controllers (ESP32 on the train, gRPC `Speed.ControlSpeed`).
//!
//! - [`onboard`]: what the controller does with a speed (PWM duty, kick, motor);
//! - [`client`]: drives controllers over the 2021 gRPC, with timeouts and retries;
//! - [`virtual_controller`]: the controller served on loopback on top of the simulation;
//! - [`proto`]: the 2021 gRPC services, generated.

pub mod client;
pub mod onboard;
pub mod virtual_controller;

/// Code generated from `proto/plarail2021.proto`: the 2021 gRPC services (no package, as in 2021), which the
/// gateway serves and the onboard speed controllers answer.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("_");
}
