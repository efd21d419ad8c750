//! A virtual ESP32 camera board (2022's onboard ESP-EYE, firmware esp32-cam-mjpeg) on loopback, drawing the
//! view ahead of its train from the simulation: sim mode's onboard camera runs the same MJPEG path as live mode.
//! Like the firmware, it serves one client at a time (a second request waits while one streams), QVGA frames.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sim::layout::CameraView;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::mjpeg;
use crate::render::Painter;
use crate::strip;

/// Frame size of the board (QVGA).
pub const WIDTH: usize = 320;
/// Frame size of the board (QVGA).
pub const HEIGHT: usize = 240;
/// Frames a second the virtual camera gives.
pub const FPS: u32 = 15;
/// JPEG quality of the virtual board's frames (0..100).
const QUALITY: u8 = 80;

/// Encodes an RGB picture as a JPEG.
pub fn jpeg(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, QUALITY);
    if let Err(e) = encoder.encode(rgb, width as u16, height as u16, jpeg_encoder::ColorType::Rgb) {
        tracing::warn!("JPEG: {e}");
    }
    out
}

/// A running virtual camera board.
#[derive(Debug, Clone)]
pub struct VirtualCameraBoard {
    /// Where it listens.
    pub addr: SocketAddr,
}

impl VirtualCameraBoard {
    /// Starts a board drawing `view` of `track` on a loopback port.
    pub async fn start(
        track: hil::track::Track,
        painter: Arc<Painter>,
        view: CameraView,
    ) -> std::io::Result<VirtualCameraBoard> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            // One client at a time, as the firmware's single-threaded web server.
            while let Ok((stream, _)) = listener.accept().await {
                let _ = serve(stream, &track, &painter, view).await;
            }
        });
        Ok(VirtualCameraBoard { addr })
    }
}

async fn frame(track: &hil::track::Track, painter: &Painter, view: CameraView) -> Option<Vec<u8>> {
    let state = track.try_state().await?;
    let mut pic = painter.paint(view, &state, WIDTH, HEIGHT);
    strip::stamp_rgb(&mut pic.rgb, WIDTH, strip::now_ms());
    Some(jpeg(&pic.rgb, WIDTH, HEIGHT))
}

async fn serve(
    mut stream: TcpStream,
    track: &hil::track::Track,
    painter: &Painter,
    view: CameraView,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(Duration::from_secs(5), read).await.is_err() {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
    let mut parts = line.split(' ');
    let (method, uri) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    match (method, uri) {
        ("GET", "/mjpeg/1") => {
            stream.write_all(&mjpeg::stream_head()).await?;
            let mut tick = tokio::time::interval(Duration::from_secs(1) / FPS);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(jpeg) = frame(track, painter, view).await else { return Ok(()) };
                stream.write_all(&mjpeg::frame_part(&jpeg)).await?;
            }
        }
        ("GET", "/jpg") => {
            if let Some(jpeg) = frame(track, painter, view).await {
                stream.write_all(&mjpeg::single_jpeg(&jpeg)).await?;
            }
        }
        _ => stream.write_all(&mjpeg::other(method, uri)).await?,
    }
    stream.shutdown().await
}
