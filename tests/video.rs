//! Live video end to end on loopback: the gateway's SFU with simulated cameras, WHEP viewers and WHIP
//! publishers in Rust, the virtual MJPEG camera board, the HTTP answers of WHIP/WHEP.

use std::time::{Duration, Instant};

use hil::track::{Setup, Track};
use video::viewer::{Client, Seen};

use crate::hil_track::{config, until};
use crate::support::layout_2021;

/// The operator token of the test gateways.
pub const TOKEN: &str = "video-test-operator-token";

/// A running gateway with video: its track, HTTP base URL and the video part.
pub struct Twin {
    pub track: Track,
    pub base: String,
    pub video: video::Video,
}

/// A gateway with video over the 2021 layout (sim mode), WebRTC on loopback.
pub async fn twin() -> Twin {
    twin_with(Setup { config: config(), ..Setup::default() }).await
}

/// A gateway with video over a track set up as given.
pub async fn twin_with(setup: Setup) -> Twin {
    let track = Track::start(layout_2021(), setup).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    let options = gateway::core::Options { operator_token: Some(TOKEN.into()), ..Default::default() };
    let core = gateway::core::Core::start(track.clone(), options).await.unwrap();
    let config = video::VideoConfig {
        sfu: video::SfuConfig { udp: vec!["127.0.0.1:0".into()], ..Default::default() },
        ..Default::default()
    };
    let video = video::Video::start(track.layout().clone(), track.clone(), config).await.unwrap();
    let app = gateway::server::router(core.clone()).merge(gateway::video::router(core, video.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway::server::serve(listener, app, std::future::pending()));
    Twin { track, base, video }
}

/// A connected viewer of `camera` whose frames arrive on the receiver.
pub async fn watch(base: &str, camera: &str, decode: bool) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let mut client = Client::view(base, camera, "127.0.0.1:0").await.expect("WHEP session");
    client.connected(Duration::from_secs(10)).await.expect("connected");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(client.frames(decode, tx));
    (client, rx)
}

/// A camera's entry in the list.
pub fn camera(video: &video::Video, id: &str) -> video::CameraInfo {
    video.cameras().into_iter().find(|c| c.id == id).expect("camera")
}

/// Frames until `n` decoded ones with a readable timestamp have come (fails after `within`).
pub async fn decoded(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>, n: usize, within: Duration) -> Vec<Seen> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.iter().filter(|s: &&Seen| s.captured.is_some()).count() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(s)) => out.push(s),
            _ => panic!(
                "{} of {n} timestamped frames within {within:?} ({} frames in all)",
                out.iter().filter(|s| s.captured.is_some()).count(),
                out.len()
            ),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_receives_a_simulated_camera_decodes_it_and_reads_its_timestamps() {
    let twin = twin().await;
    let (client, mut rx) = watch(&twin.base, "chofu", true).await;
    let frames = decoded(&mut rx, 45, Duration::from_secs(30)).await;
    let stamped: Vec<&Seen> = frames.iter().filter(|s| s.captured.is_some()).collect();
    assert_eq!(stamped[0].size, Some((640, 360)), "the station camera's picture size");
    // In order: capture times and RTP timestamps only grow.
    for pair in stamped.windows(2) {
        assert!(pair[1].captured > pair[0].captured, "capture times in order: {:?}", pair);
    }
    // None missing beyond 5 %: the capture times are 1/15 s apart, so the span says how many were sent.
    let span = stamped.last().unwrap().captured.unwrap() - stamped[0].captured.unwrap();
    let sent = (span as f64 / (1000.0 / 15.0)).round() as usize + 1;
    assert!(stamped.len() * 100 >= sent * 95, "{} of about {sent} frames decoded with their timestamp", stamped.len());
    let delays: Vec<u64> = stamped.iter().map(|s| video::strip::delay_ms(s.captured.unwrap(), s.arrived_ms)).collect();
    assert!(delays.iter().all(|&d| d < 1000), "delays from capture to arrival, ms: {delays:?}");
    let chofu = camera(&twin.video, "chofu");
    assert_eq!(chofu.viewers, 1);
    assert!(chofu.on_air && chofu.frames > 0);
    assert_eq!(client.close().await, Some(200));
    until("the viewer is gone", Duration::from_secs(5), async || camera(&twin.video, "chofu").viewers == 0).await;
    // Nobody watches: the source stops.
    until("the source stops", Duration::from_secs(5), async || !camera(&twin.video, "chofu").on_air).await;
}
