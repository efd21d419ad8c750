//! The one test harness, a module per kind of helper; every test imports from here.
//!
//! - `layouts`: paths in the repository and layouts (the 2021 and 2023 festivals', small hand-made ones);
//! - `net`: free ports, an HTTP app on loopback, WebSocket frames sent and awaited, devices read from a state;
//! - `track`: track settings, a started and restored track, waiting on a condition, a rig's live boards;
//! - `gateway`: a gateway over a track on loopback and a 2021 client of it;
//! - `mosquitto`: mosquitto on a free loopback port (stock, telling its clients, the festival's TLS set-up, the
//!   venue's bridged to a cloud one);
//! - `haproxy`: HAProxy with the shipped configuration in front of some edges;
//! - `relay`: a TCP relay standing for the venue's uplink, cut, black-holed and restored at will;
//! - `broker`: the on-site core and public edges over a broker, in this process;
//! - `binary`: the `plarail-twin` binary run to its end, or serving until the test kills it.

mod binary;
mod broker;
mod gateway;
mod haproxy;
mod layouts;
mod mosquitto;
mod net;
mod relay;
mod track;

pub use binary::*;
pub use broker::*;
pub use gateway::*;
pub use haproxy::*;
pub use layouts::*;
pub use mosquitto::*;
pub use net::*;
pub use relay::*;
pub use track::*;

/// Held by the tests that use a lot of CPU (a browser, a software-rendered window, video encoding and WebRTC
/// handshakes) and by the timing-sensitive mirror test, so that they never run at the same time.
pub static CPU_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
