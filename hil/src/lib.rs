//! HIL bridge: everything between the gateway and a track.
//!
//! - [`protocol`]: the ESP32 boards' HTTP protocol as plain data;
//! - [`firmware`]: what a servo board does with a command (a plain state machine);
//! - [`client`]: drives boards over HTTP, one request at a time per board, with timeouts and retries;
//! - [`virtual_boards`]: the firmware API served on loopback on top of the simulation, with fault injection;
//! - [`ingest`]: the `/registerPosition` sensor endpoint and the report <-> sensor mapping;
//! - [`rig`]: a simulated layout behind virtual servo and sensor boards;
//! - [`track`]: the one track interface (sim mode), with board health and restoration of desired states.
//!
//! Still to come (issue 3): live mode with the mirror, and the live-mode toggle.

pub mod client;
pub mod firmware;
pub mod ingest;
pub mod protocol;
pub mod rig;
pub mod track;
pub mod virtual_boards;
