//! Gateway: what visitors, operators and scripts talk to, over one [`hil::track::Track`].
//!
//! So far: the 2021 WebSocket protocol on `/ws` ([`protocol_2021`]), the state snapshot on `/api/state`, and
//! the 2021 sensor ingest on `/registerPosition` ([`server`]). The control page, the v2 protocol, gRPC,
//! metrics, operator actions, the journal and the load tool are to come (issue 4).

pub mod protocol_2021;
pub mod server;
