//! The `cargo test` suite: layout validation, simulation behaviour, the interlocking, every scenario, and
//! the command line. One test binary, a module per area.

mod automatic;
mod blocks;
mod broker;
mod cli;
mod docs;
mod drawing;
mod fuzz;
mod gateway_2021;
mod gateway_grpc;
mod gateway_v2;
mod hil_2023;
mod hil_boards;
mod hil_live;
mod hil_track;
mod interlocking;
mod journal;
mod layout_errors;
mod live_2023;
pub mod page;
mod partition;
mod properties;
mod replay;
mod scenarios;
mod simulation;
mod soak;
mod speed;
mod state_manager;
mod support;
mod video;
mod video_parts;
mod view;
#[cfg(feature = "window")]
mod window;
