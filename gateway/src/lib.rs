//! Gateway: what visitors, operators and scripts talk to, over one [`hil::track::Track`].
//!
//! So far: the 2021 WebSocket protocol on `/ws` ([`protocol_2021`]), the v2 protocol on `/ws/v2`
//! ([`protocol_v2`]), the state snapshot on `/api/state`, Prometheus [`metrics`] on `/metrics`, and the 2021
//! sensor ingest on `/registerPosition` ([`server`]). Operator actions ([`operator`]) and visitor
//! [`limits`] guard it; the [`journal`] keeps desired states and the command history across restarts. The
//! control page, gRPC and the load tool are to come (issue 4).

pub mod grpc;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod operator;
pub mod protocol_2021;
pub mod protocol_v2;
pub mod server;
