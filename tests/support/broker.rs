//! The on-site core and public edges over a broker, in this process.

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::broker::connect::Broker;
use gateway::broker::edge::Edge;
use gateway::broker::wire::Topics;
use hil::track::{Setup, Track};

use super::layouts::{layout_2021, layout_2021_text};
use super::net::serve_app;
use super::track::{config, started};

/// A core in this process publishing to `broker`: its track and HTTP address.
pub async fn core(broker: &Broker, options: gateway::core::Options) -> (Track, gateway::core::Core, SocketAddr) {
    core_with_video_on(broker, options, "127.0.0.1:0").await
}

/// [`core`] with its cameras' WebRTC media on the local UDP address `udp`.
pub async fn core_with_video_on(
    broker: &Broker,
    options: gateway::core::Options,
    udp: &str,
) -> (Track, gateway::core::Core, SocketAddr) {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let core = gateway::core::Core::start(track.clone(), options).await.unwrap();
    gateway::broker::on_site::start(core.clone(), broker, topics(), layout_2021_text()).unwrap();
    let config = video::VideoConfig {
        sfu: video::SfuConfig { udp: vec![udp.into()], ..Default::default() },
        ..Default::default()
    };
    let video = video::Video::start(track.layout().clone(), track.clone(), config).await.unwrap();
    let app = gateway::server::router(core.clone()).merge(gateway::video::router(core.clone(), video));
    let addr = serve_app(app).await;
    (track, core, addr)
}

/// An edge in this process: its HTTP address.
pub async fn edge(broker: &Broker) -> SocketAddr {
    edge_with_video(broker, None).await.0
}

/// An edge in this process whose cameras come from the core at `core` (`http://host:port`).
pub async fn edge_with_video(broker: &Broker, core: Option<String>) -> (SocketAddr, video::Video) {
    let core_ = edge_core(broker).await;
    let sfu = video::SfuConfig { udp: vec!["127.0.0.1:0".into()], ..Default::default() };
    let video = video::Video::cascade(core_.layout().clone(), core, sfu);
    let app = gateway::server::router(core_.clone()).merge(gateway::video::router(core_, video.clone()));
    (serve_app(app).await, video)
}

/// An edge's core (its doors' one path) in this process, once it sees the track online (the core's heartbeat
/// comes four times a second).
pub async fn edge_core(broker: &Broker) -> gateway::core::Core {
    let link = Edge::connect(broker, topics()).await.unwrap();
    let core = gateway::core::Core::over(Arc::new(link), Default::default(), Default::default());
    // (Polled here rather than with `until`, whose future is not `Send` for a spawned start.)
    let asked = std::time::Instant::now();
    while !core.link.snapshot().await.is_some_and(|s| s.online) {
        assert!(asked.elapsed() < std::time::Duration::from_secs(20), "the edge never saw the track online");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    core
}

/// A core in a runtime of its own, so that it can die with its connections (`shutdown_background`).
pub fn core_of_its_own(broker: &Broker) -> (Track, tokio::runtime::Runtime) {
    let broker = broker.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let track = runtime.block_on(async { core(&broker, Default::default()).await.0 });
        (track, runtime)
    })
    .join()
    .unwrap()
}

/// The broker topics of the 2021 layout.
pub fn topics() -> Topics {
    Topics::of_layout("chofufes2021")
}
