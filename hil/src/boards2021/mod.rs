//! The 2021 HTTP servo boards and sensor boards (ESP32, `KTPCP4servo.ino`).
//!
//! - [`protocol`]: their HTTP protocol as plain data;
//! - [`firmware`]: what a servo board answers to every request, branch by branch (a plain state machine);
//! - [`arduino_json`]: how the firmware reads JSON (ArduinoJson 6: partial documents, lenient conversions);
//! - [`client`]: drives boards over HTTP, one request at a time per board, with timeouts and retries;
//! - [`virtual_board`]: the firmware served on loopback on top of the simulation, with fault injection;
//! - [`ingest`]: the `/registerPosition` sensor endpoint and the report <-> sensor mapping.

pub mod arduino_json;
pub mod client;
pub mod firmware;
pub mod ingest;
pub mod protocol;
pub mod virtual_board;

#[cfg(test)]
mod tests;
