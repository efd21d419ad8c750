//! Gateway: what visitors, operators and scripts talk to, over one [`hil::track::Track`].
//!
//! The [`core`] is what every door shares: the track, the [`feeds`] of changes encoded once, the [`journal`],
//! the [`metrics`], the visitor [`limits`] and [`operator`] actions. The doors: the HTTP [`server`] (page,
//! state, history, metrics, sensor ingest) with the WebSocket [`session`] driver for the 2021 protocol
//! ([`protocol_2021`]) and v2 ([`protocol_v2`]), whose frames are defined once in [`wire`]; [`grpc`]; and the [`video`] doors (WHEP, WHIP, cameras).

pub mod broker;
pub mod core;
pub mod feeds;
pub mod grpc;
pub mod journal;
pub mod limits;
pub mod link;
pub mod local;
pub mod metrics;
pub mod operator;
pub mod protocol_2021;
pub mod protocol_v2;
pub mod server;
pub mod session;
pub mod state_manager;
pub mod step;
pub mod video;
pub mod wire;
