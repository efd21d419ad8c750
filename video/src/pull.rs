//! Pulls an ESP32 camera board's MJPEG stream (the one client the board serves), decodes each JPEG and encodes
//! H.264 into the camera's hub. The board's own capture timestamp strip, if its frames carry one, goes through.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;

use crate::h264::VideoEncoder;
use crate::hub::Hub;
use crate::mjpeg::MjpegParser;
use crate::render::Picture;

/// Bits a second of the H.264 made from a board's frames.
const BITRATE: u32 = 400_000;

/// Why a pull ended.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The board could not be reached or the connection broke.
    #[error("camera board {0}: {1}")]
    Io(String, std::io::Error),
    /// The board's stream was not MJPEG.
    #[error("camera board {0}: {1}")]
    Stream(String, crate::mjpeg::MjpegError),
    /// No frame came for five seconds.
    #[error("camera board {0}: no frame for 5 s")]
    Silent(String),
}

/// Decodes one JPEG into an RGB picture.
pub fn decode_jpeg(jpeg: &[u8]) -> Option<Picture> {
    let mut d = JpegDecoder::new(ZCursor::new(jpeg));
    let rgb = d.decode().ok()?;
    let info = d.info()?;
    let (width, height) = (info.width as usize, info.height as usize);
    (rgb.len() == width * height * 3).then_some(Picture { width, height, rgb })
}

/// Pulls `GET /mjpeg/1` from `address` into the hub while `keep` says so.
pub async fn pull(address: &str, hub: &Hub, keep: impl Fn() -> bool) -> Result<(), PullError> {
    let io = |e| PullError::Io(address.to_string(), e);
    let mut stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(address))
        .await
        .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
        .map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    stream.write_all(format!("GET /mjpeg/1 HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes()).await.map_err(io)?;
    let mut parser = MjpegParser::default();
    let mut encoder: Option<VideoEncoder> = None;
    let mut keyframes = hub.keyframe_requests();
    let mut buf = vec![0u8; 64 * 1024];
    while keep() {
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Err(_) => return Err(PullError::Silent(address.to_string())),
            Ok(r) => r.map_err(io)?,
        };
        if n == 0 {
            return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let frames = parser.feed(&buf[..n]).map_err(|e| PullError::Stream(address.to_string(), e))?;
        // Only the newest frame of a burst is worth encoding: a viewer wants the latest picture.
        let Some(mut picture) = frames.last().and_then(|f| decode_jpeg(f)) else { continue };
        if encoder.as_ref().is_none_or(|e| e.size() != (picture.width, picture.height)) {
            match VideoEncoder::new(picture.width, picture.height, crate::camera_board::FPS, BITRATE) {
                Ok(e) => encoder = Some(e),
                Err(e) => {
                    tracing::warn!("encoder: {e}");
                    return Ok(());
                }
            }
        }
        let Some(enc) = encoder.as_mut() else { continue };
        if keyframes.due() {
            enc.want_keyframe();
        }
        match enc.encode(&mut picture, None) {
            Ok(packets) => {
                for p in packets {
                    hub.push(p);
                }
            }
            Err(e) => tracing::warn!("encode: {e}"),
        }
    }
    Ok(())
}
