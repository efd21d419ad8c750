//! Gateway: what visitors, operators and scripts talk to, over one [`hil::track::Track`]. Its modules:
//!
//! - [`core`]: what every door shares: the link to the track, the feeds, the journal, metrics, limits;
//! - [`link`]: the one interface between the doors and a track, here ([`local`]) or over a broker ([`broker`]);
//! - [`local`]: the track in this process: commands journaled before they are acknowledged, events to frames;
//! - [`broker`]: the twin past one machine: an on-site core and public edges tied by an MQTT broker;
//! - [`feeds`]: changes encoded once per protocol, fanned out to every client;
//! - [`journal`]: desired device states and command history, kept across restarts;
//! - [`metrics`]: the Prometheus metrics;
//! - [`limits`]: visitors' rate limits and allowed origins;
//! - [`operator`]: operator actions and their token;
//! - [`server`]: the HTTP doors (page, state, history, metrics, sensor ingest, WebSockets);
//! - [`session`]: the WebSocket session driver, one per client;
//! - [`step`]: what a client frame asks, as the protocols read it and the session carries it out;
//! - [`protocol_2021`], [`protocol_v2`]: the two WebSocket protocols as plain functions;
//! - [`views`]: the track's data read into the v2 frames' types (the frames themselves are the `wire` crate's);
//! - [`grpc`]: the 2021 gRPC services and the v2 state feed;
//! - [`state_manager`]: the 2023 state manager's Connect API (the 2023 dashboard and auto-operation);
//! - [`video`]: the video doors (WHEP, WHIP, cameras).

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
pub mod views;
