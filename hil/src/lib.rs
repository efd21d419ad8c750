//! HIL bridge: everything between the gateway and a track.
//!
//! So far: the ESP32 boards' protocol as plain data ([`protocol`]) and the servo firmware's behaviour
//! ([`firmware`]), on which virtual boards and the board client are built. Virtual boards over HTTP, the
//! client, sensor ingest, the track interface, the mirror, health and the live-mode toggle are to come
//! (issue 3).

pub mod firmware;
pub mod protocol;
