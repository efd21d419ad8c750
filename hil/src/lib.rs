//! HIL bridge: everything between the gateway and a track.
//!
//! - [`protocol`]: the ESP32 boards' HTTP protocol as plain data;
//! - [`firmware`]: what a servo board does with a command (a plain state machine);
//! - [`client`]: drives boards over HTTP, one request at a time per board, with timeouts and retries;
//! - [`virtual_boards`]: the firmware API served on loopback on top of the simulation, with fault injection;
//! - [`ingest`]: the `/registerPosition` sensor endpoint and the report <-> sensor mapping;
//! - [`rig`]: a simulated layout behind virtual servo and sensor boards;
//! - [`mirror`]: the live-mode mirror's bookkeeping (snap to sensor reports, divergences);
//! - [`track`]: the one track interface, in sim or live mode, with board health, restoration of desired
//!   states and the live-mode toggle.

pub mod client;
pub mod firmware;
pub mod ingest;
pub mod mirror;
pub mod protocol;
pub mod rig;
pub mod track;
pub mod virtual_boards;
