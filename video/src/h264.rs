//! H.264 in and out: the encoder that turns pictures into constrained-baseline access units (every phone
//! decodes it, so the SFU forwards one stream to every viewer untouched), the RTP packetizer and depacketizer
//! (RFC 6184, packetization mode 1), and a decoder for the Rust viewers (tests, the load tool).

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode, UsageType,
};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};
use rtc::rtp;
use rtc::rtp::codec::h264::{H264Packet, H264Payloader};
use rtc::rtp::packetizer::{Depacketizer, Packetizer};
use std::time::{Duration, Instant};

use crate::render::Picture;
use crate::strip;

/// The H.264 format line both ends agree on: constrained baseline, level 3.1, packetization mode 1.
pub const FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// RTP clock of video.
pub const CLOCK_RATE: u32 = 90_000;
/// Largest RTP payload sent (fits a 1280-byte path MTU with SRTP and headers).
pub const MTU: usize = 1200;

/// Why a picture could not be encoded or a packet decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// openh264 refused.
    #[error("H.264: {0}")]
    H264(#[from] openh264::Error),
    /// The RTP payload was malformed.
    #[error("RTP: {0}")]
    Rtp(String),
}

/// Encodes pictures to H.264 and packetizes them as RTP.
pub struct VideoEncoder {
    encoder: Encoder,
    packetizer: Box<dyn Packetizer>,
    yuv: YUVBuffer,
    frame: Duration,
    keyframe_wanted: bool,
}

impl std::fmt::Debug for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoEncoder").field("frame", &self.frame).finish_non_exhaustive()
    }
}

impl VideoEncoder {
    /// An encoder for pictures of `width` x `height` at `fps`, about `bitrate` bits a second, with a keyframe at
    /// least every two seconds.
    pub fn new(width: usize, height: usize, fps: u32, bitrate: u32) -> Result<VideoEncoder, CodecError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Bitrate)
            // Without frame skipping openh264 cannot hold a bitrate (and says so on every start).
            .skip_frames(true)
            .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 2));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        let packetizer = Box::new(rtp::packetizer::new_packetizer(
            Instant::now(),
            MTU,
            0,
            rand::random(),
            Box::new(H264Payloader::default()),
            Box::new(rtp::sequence::new_random_sequencer()),
            CLOCK_RATE,
        ));
        Ok(VideoEncoder {
            encoder,
            packetizer,
            yuv: YUVBuffer::new(width, height),
            frame: Duration::from_secs(1) / fps,
            keyframe_wanted: true,
        })
    }

    /// Makes the next picture a keyframe (a viewer joined or lost packets).
    pub fn want_keyframe(&mut self) {
        self.keyframe_wanted = true;
    }

    /// The picture size it encodes.
    pub fn size(&self) -> (usize, usize) {
        self.yuv.dimensions()
    }

    /// Encodes one picture into RTP packets (the last one has the marker bit), first stamping it with its
    /// capture time if given (a picture from a camera board carries the board's own).
    pub fn encode(
        &mut self,
        picture: &mut Picture,
        captured_unix_ms: Option<u64>,
    ) -> Result<Vec<rtp::Packet>, CodecError> {
        if let Some(t) = captured_unix_ms {
            strip::stamp_rgb(&mut picture.rgb, picture.width, t);
        }
        self.yuv.read_rgb8(RgbSliceU8::new(&picture.rgb, (picture.width, picture.height)));
        if std::mem::take(&mut self.keyframe_wanted) {
            self.encoder.force_intra_frame();
        }
        let unit = Bytes::from(self.encoder.encode(&self.yuv)?.to_vec());
        let samples = (self.frame.as_secs_f64() * CLOCK_RATE as f64) as u32;
        self.packetizer.packetize(Instant::now(), &unit, samples).map_err(|e| CodecError::Rtp(e.to_string()))
    }
}

/// Whether an H.264 RTP payload begins a keyframe: an IDR slice or a sequence parameter set, alone, aggregated
/// (STAP-A) or the first fragment (FU-A) of one.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    match payload.first().map(|b| b & 0x1f) {
        Some(24) => {
            // STAP-A: [header][size:2][nal]...
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if size == 0 || rest.len() < 2 + size {
                    return false;
                }
                if is_key(rest[2] & 0x1f) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        Some(28) => payload.len() > 1 && payload[1] & 0x80 != 0 && is_key(payload[1] & 0x1f),
        Some(t) => is_key(t),
        None => false,
    }
}

/// What a viewer got out of one complete frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    /// Picture width.
    pub width: usize,
    /// Picture height.
    pub height: usize,
    /// The capture time read from the strip (Unix ms modulo 2^36), if it read.
    pub captured: Option<u64>,
}

/// Reassembles RTP packets into frames and decodes them (a viewer's side).
pub struct VideoDecoder {
    depacketizer: H264Packet,
    decoder: Decoder,
    unit: Vec<u8>,
    last_seq: Option<u16>,
    broken: bool,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDecoder").field("broken", &self.broken).finish_non_exhaustive()
    }
}

impl VideoDecoder {
    /// A decoder waiting for its first keyframe.
    pub fn new() -> Result<VideoDecoder, CodecError> {
        Ok(VideoDecoder {
            depacketizer: H264Packet::default(),
            decoder: Decoder::with_api_config(OpenH264API::from_source(), Default::default())?,
            unit: Vec::new(),
            last_seq: None,
            broken: false,
        })
    }

    /// Takes one RTP packet; at the end of a frame (marker bit) decodes it. A gap in sequence numbers drops the
    /// frame it hits (the caller asks for a keyframe if it likes).
    pub fn push(&mut self, packet: &rtp::Packet) -> Result<Option<Decoded>, CodecError> {
        let seq = packet.header.sequence_number;
        if self.last_seq.is_some_and(|last| seq != last.wrapping_add(1)) {
            self.broken = true;
        }
        self.last_seq = Some(seq);
        match self.depacketizer.depacketize(&packet.payload) {
            Ok(nal) => self.unit.extend_from_slice(&nal),
            Err(e) => {
                self.broken = true;
                tracing::debug!("depacketize: {e}");
            }
        }
        if !packet.header.marker {
            return Ok(None);
        }
        let unit = std::mem::take(&mut self.unit);
        if std::mem::take(&mut self.broken) {
            return Ok(None);
        }
        let Some(yuv) = self.decoder.decode(&unit)? else { return Ok(None) };
        let (width, height) = yuv.dimensions();
        let captured = strip::read_luma(yuv.y(), width, height, yuv.strides().0);
        Ok(Some(Decoded { width, height, captured }))
    }
}
