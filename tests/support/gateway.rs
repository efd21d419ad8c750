//! A gateway over a track on a free loopback port, and a 2021 client of it.

use hil::track::{Setup, Track};

use super::layouts::layout_2021;
use super::net::{Ws, expect};
use super::track::{config, started};

/// A gateway with `options` over a started and restored 2021 track, on a free loopback port.
pub async fn gateway_with(options: gateway::core::Options) -> (Track, std::net::SocketAddr) {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let addr = serve(track.clone(), options).await;
    (track, addr)
}

/// Serves a gateway over `track` on a free loopback port.
pub async fn serve(track: Track, options: gateway::core::Options) -> std::net::SocketAddr {
    let core = gateway::core::Core::start(track.clone(), options).await.unwrap();
    let app = gateway::server::router(core).merge(gateway::server::ingest(&track));
    crate::support::serve_app(app).await
}

/// A 2021 client of the gateway at `addr` (`/ws`).
pub async fn connect(addr: std::net::SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("connect").0
}

/// The next text frame (within 5 s).
pub async fn next(ws: &mut Ws) -> serde_json::Value {
    expect(ws, |_| true).await
}

/// A 2021 device frame.
pub fn frame(name: &str, state: &str) -> serde_json::Value {
    serde_json::json!({ "station_name": name, "state": state })
}
