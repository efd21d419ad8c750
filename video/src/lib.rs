//! Live video of the twin: the layout's cameras, real or simulated, through an SFU in the gateway.
//!
//! - `strip`: the capture timestamp every frame carries (end-to-end latency from the picture alone).
//! - `render`: a camera's view of the simulation drawn on the CPU.
//! - `h264`: H.264 encoding (openh264, constrained baseline), RTP packetization, decoding for Rust viewers.
//! - `mjpeg`: the ESP32 camera board's MJPEG stream as plain functions; `camera_board`: a virtual board;
//!   `pull`: the puller that turns a board's stream into H.264.
//! - `hub`: one camera's stream and its viewers; `sfu`: the WebRTC sessions (WHEP viewers, WHIP publishers).
//! - `sources`: what feeds each camera, and only while someone watches.
//! - `viewer`: a WHEP viewer and WHIP publisher in Rust (tests, the load tool, an edge's upstream).
//! - `cascade`: an edge gateway's cameras, each pulled once from the on-site core while watched.

pub mod camera_board;
pub mod cascade;
pub mod h264;
pub mod hub;
pub mod mjpeg;
pub mod pull;
pub mod render;
pub mod sfu;
pub mod sources;
pub mod strip;
pub mod viewer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use sim::layout::{CameraView, Layout};

pub use sfu::{SessionError, Sfu, SfuConfig};
pub use sources::SimCamera;
/// The RTP packets and their payload bytes, as the hub and the viewers carry them.
pub use {bytes, rtc::rtp};

/// Settings of the video part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoConfig {
    /// The SFU's settings.
    pub sfu: SfuConfig,
    /// How simulated station cameras encode.
    pub sim: SimCamera,
    /// Real addresses of camera boards that differ from the layout's, by board name or layout address.
    pub live_boards: HashMap<String, String>,
}

/// A camera as `/api/cameras` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraInfo {
    /// Id (`/whep/<id>`).
    pub id: String,
    /// Japanese name.
    pub name_ja: String,
    /// English name.
    pub name_en: String,
    /// What it shows: `station` or `train`.
    pub shows: &'static str,
    /// The station's id or the train's name.
    pub of: String,
    /// Its live source: `whip` (a publisher) or `mjpeg` (a camera board).
    pub source: &'static str,
    /// Whether a source is sending now (the page shows "no signal" otherwise).
    pub on_air: bool,
    /// Whether a WHIP publisher is connected.
    pub publisher: bool,
    /// Viewers watching now.
    pub viewers: usize,
    /// Incoming bits a second.
    pub bitrate: f64,
    /// Frames received from the source so far.
    pub frames: u64,
    /// Keyframe requests so far.
    pub keyframe_requests: u64,
    /// NACKs from viewers so far.
    pub nacks: u64,
}

/// The video part: the SFU and the sources of every camera.
#[derive(Debug, Clone)]
pub struct Video {
    /// The SFU.
    pub sfu: Arc<Sfu>,
    layout: Arc<Layout>,
}

impl Video {
    /// Starts the hubs, the virtual camera boards and the camera sources of a layout's cameras over a track.
    pub async fn start(layout: Arc<Layout>, track: hil::track::Track, config: VideoConfig) -> std::io::Result<Video> {
        let painter = Arc::new(render::Painter::new(layout.clone()));
        let hubs: Vec<Arc<hub::Hub>> = layout.cameras.iter().map(|c| Arc::new(hub::Hub::new(c.clone()))).collect();
        let boards = sources::boards(&layout, &track, &painter, &config.live_boards).await?;
        for (hub, board) in hubs.iter().zip(boards) {
            tokio::spawn(sources::run(hub.clone(), track.clone(), painter.clone(), board, config.sim));
        }
        Ok(Video { sfu: Sfu::new(hubs, config.sfu), layout })
    }

    /// An edge gateway's video: the layout's cameras, each pulled from the core at `core` (`http://host:port`)
    /// while anyone watches it here ([`cascade`]); without a core, every camera without signal.
    pub fn cascade(layout: Arc<Layout>, core: Option<String>, config: SfuConfig) -> Video {
        let hubs: Vec<Arc<hub::Hub>> = layout.cameras.iter().map(|c| Arc::new(hub::Hub::new(c.clone()))).collect();
        let udp = config.udp.first().cloned().unwrap_or_else(|| "0.0.0.0:0".into());
        if let Some(core) = &core {
            for hub in &hubs {
                tokio::spawn(cascade::run(hub.clone(), core.clone(), udp.clone()));
            }
        }
        Video { sfu: Sfu::new(hubs, config), layout }
    }

    /// Every camera with its state.
    pub fn cameras(&self) -> Vec<CameraInfo> {
        self.sfu
            .hubs
            .iter()
            .map(|h| {
                let c = &h.camera;
                let (shows, of) = match c.view {
                    CameraView::Station(s) => ("station", self.layout.stations[s].id.clone()),
                    CameraView::Ahead(t) => ("train", self.layout.trains[t].name.clone()),
                };
                CameraInfo {
                    id: c.id.clone(),
                    name_ja: c.name_ja.clone(),
                    name_en: c.name_en.clone(),
                    shows,
                    of,
                    source: if c.board.is_some() { "mjpeg" } else { "whip" },
                    on_air: h.on_air(),
                    publisher: h.publisher().is_some(),
                    viewers: h.viewers(),
                    bitrate: h.bitrate(),
                    frames: h.counters.frames.load(Ordering::Relaxed),
                    keyframe_requests: h.counters.keyframe_requests.load(Ordering::Relaxed),
                    nacks: h.counters.nacks.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}
