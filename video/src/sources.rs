//! What feeds each camera's hub, and only while someone watches: a WHIP publisher when one is connected (it
//! takes over the camera in either mode); otherwise in sim mode the simulated source (a station camera draws
//! its area, encoded here; an onboard camera pulls its virtual camera board's MJPEG), in live mode the camera's
//! MJPEG board if it has one, else nothing ("no signal").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hil::track::Track;
use sim::layout::Layout;
use sim::twin::Mode;

use crate::camera_board::VirtualCameraBoard;
use crate::h264::VideoEncoder;
use crate::hub::Hub;
use crate::render::Painter;
use crate::strip;

/// How a simulated station camera encodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimCamera {
    /// Picture width.
    pub width: usize,
    /// Picture height.
    pub height: usize,
    /// Frames a second.
    pub fps: u32,
    /// Bits a second.
    pub bitrate: u32,
}

impl Default for SimCamera {
    fn default() -> Self {
        SimCamera { width: 640, height: 360, fps: 15, bitrate: 600_000 }
    }
}

/// Where a camera's MJPEG board is in each mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardAddresses {
    /// The virtual board on loopback.
    pub sim: String,
    /// The real board (the layout's address, or where `--board` maps it).
    pub live: String,
}

/// Runs the source of one camera until the track stops.
pub async fn run(hub: Arc<Hub>, track: Track, painter: Arc<Painter>, board: Option<BoardAddresses>, sim: SimCamera) {
    // Whether the camera's board failed last time (said once, not every second it stays down).
    let mut board_down = false;
    loop {
        let wanted = hub.viewers() > 0 && hub.publisher().is_none();
        if !wanted {
            // Woken when viewers or the publisher change; the timeout covers a notification that came between
            // the check and the wait.
            let _ = tokio::time::timeout(Duration::from_millis(500), hub.changed.notified()).await;
            continue;
        }
        if track.try_state().await.is_none() {
            return; // The track is stopped: nothing more to show.
        }
        let mode = track.mode();
        let keep = || hub.viewers() > 0 && hub.publisher().is_none() && track.mode() == mode;
        match (&board, mode) {
            (Some(b), _) => {
                let address = if mode == Mode::Sim { &b.sim } else { &b.live };
                match crate::pull::pull(address, &hub, keep).await {
                    Ok(()) => board_down = false,
                    Err(e) => {
                        if !std::mem::replace(&mut board_down, true) {
                            tracing::warn!(camera = hub.camera.id, "{e}; trying again every second");
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            (None, Mode::Sim) => simulate(&hub, &track, &painter, sim, keep).await,
            (None, Mode::Live) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), hub.changed.notified()).await;
            }
        }
    }
}

/// Draws and encodes a station camera's view of the simulation while `keep` says so.
async fn simulate(hub: &Hub, track: &Track, painter: &Arc<Painter>, sim: SimCamera, keep: impl Fn() -> bool) {
    let mut encoder = match VideoEncoder::new(sim.width, sim.height, sim.fps, sim.bitrate) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("encoder: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    let view = hub.camera.view;
    let mut keyframes = hub.keyframe_requests();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / sim.fps);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while keep() {
        tick.tick().await;
        let Some(state) = track.try_state().await else { return };
        let captured = strip::now_ms();
        if keyframes.due() {
            encoder.want_keyframe();
        }
        // Drawing and encoding are CPU work: off the async threads.
        let painter = painter.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut picture = painter.paint(view, &state, sim.width, sim.height);
            let encoded = encoder.encode(&mut picture, Some(captured));
            (encoder, encoded)
        });
        let Ok((back, encoded)) = work.await else { return };
        encoder = back;
        match encoded {
            Ok(packets) => {
                for packet in packets {
                    hub.push(packet);
                }
            }
            Err(e) => tracing::warn!("encode: {e}"),
        }
    }
}

/// Starts the virtual camera boards of a layout's cameras that have a board, and says where each camera's
/// board is in each mode (`live_boards` maps a board's name or layout address to a reachable one).
pub async fn boards(
    layout: &Layout,
    track: &Track,
    painter: &Arc<Painter>,
    live_boards: &HashMap<String, String>,
) -> std::io::Result<Vec<Option<BoardAddresses>>> {
    let mut out = Vec::new();
    for camera in &layout.cameras {
        let Some(board) = camera.board else {
            out.push(None);
            continue;
        };
        let b = &layout.boards[board];
        let virt = VirtualCameraBoard::start(track.clone(), painter.clone(), camera.view).await?;
        out.push(Some(BoardAddresses { sim: virt.addr.to_string(), live: hil::track::live_address(live_boards, b) }));
    }
    Ok(out)
}
