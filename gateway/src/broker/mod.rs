//! The twin past one machine: an on-site core and public edge gateways tied by an MQTT broker (mosquitto,
//! EMQX, any MQTT 3.1.1 broker with retained messages and wills).
//!
//! - [`wire`]: the topics and messages, defined once, and each side's logic as plain data.
//! - [`connect`]: the broker's URL, login and TLS; the connection loop with backoff.
//! - [`on_site`]: the core's side: publishes the track, carries out the edges' commands.
//! - [`edge`]: the edge's side: a [`crate::link::Link`] over the broker.

pub mod connect;
pub mod edge;
pub mod on_site;
pub mod wire;
