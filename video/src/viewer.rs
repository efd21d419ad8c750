//! A WHEP viewer and a WHIP publisher in Rust, on the same `webrtc` stack as the SFU: the tests and
//! `plarail-twin load video` watch and send cameras with them, exactly as a browser does over HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};

use crate::h264::VideoDecoder;
use crate::sfu::{SessionError, connection};

/// What a viewer saw of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    /// When its last packet arrived.
    pub at: Instant,
    /// The same, as the strip's wall clock (Unix milliseconds).
    pub arrived_ms: u64,
    /// The RTP timestamp of the frame.
    pub rtp_timestamp: u32,
    /// The capture time read from the decoded picture (only when the viewer decodes).
    pub captured: Option<u64>,
    /// The decoded picture's size (only when the viewer decodes).
    pub size: Option<(usize, usize)>,
    /// Packets missing before this frame (sequence gaps).
    pub gap: u16,
}

/// Why a viewer or publisher could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP exchange failed or was refused.
    #[error("HTTP: {0}")]
    Http(String),
    /// WebRTC failed.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// It did not connect in time.
    #[error("not connected within {0:?}")]
    Timeout(Duration),
}

struct Handler {
    gathered: tokio::sync::mpsc::UnboundedSender<()>,
    connected: tokio::sync::watch::Sender<Option<bool>>,
    tracks: tokio::sync::mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => {
                let _ = self.connected.send(Some(true));
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed | RTCPeerConnectionState::Disconnected => {
                let _ = self.connected.send(Some(false));
            }
            _ => {}
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

/// An open WHEP or WHIP session.
pub struct Client {
    pc: Arc<dyn PeerConnection>,
    /// The session's URL (its `Location`).
    pub session: String,
    http: reqwest::Client,
    token: Option<String>,
    connected: tokio::sync::watch::Receiver<Option<bool>>,
    tracks: Option<tokio::sync::mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>>,
    local: Option<(Arc<TrackLocalStaticRTP>, u32)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("session", &self.session).finish_non_exhaustive()
    }
}

impl Client {
    /// Opens a WHEP viewer of `camera` on the gateway at `base` (`http://host:port`), binding `udp`.
    pub async fn view(base: &str, camera: &str, udp: &str) -> Result<Client, ClientError> {
        Client::open(&format!("{base}/whep/{camera}"), udp, None).await
    }

    /// Opens a WHIP publisher of `camera` with the operator token.
    pub async fn publish(base: &str, camera: &str, udp: &str, token: &str) -> Result<Client, ClientError> {
        Client::open(&format!("{base}/whip/{camera}"), udp, Some(token.to_string())).await
    }

    async fn open(url: &str, udp: &str, token: Option<String>) -> Result<Client, ClientError> {
        let (gathered_tx, mut gathered) = tokio::sync::mpsc::unbounded_channel();
        let (connected_tx, connected) = tokio::sync::watch::channel(None);
        let (tracks_tx, tracks) = tokio::sync::mpsc::unbounded_channel();
        let handler = Arc::new(Handler { gathered: gathered_tx, connected: connected_tx, tracks: tracks_tx });
        let runtime = webrtc::runtime::default_runtime().expect("tokio runtime");
        let pc = connection(runtime, vec![udp.to_string()], handler).await?;
        let web = |e: webrtc::error::Error| ClientError::Session(SessionError::WebRtc(e.to_string()));
        let http = reqwest::Client::new();
        // Everything after the connection is made closes it on failure (a dropped connection is not stopped).
        let opened = async {
            let local = if token.is_some() {
                let ssrc: u32 = rand::random();
                let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                    "publisher".into(),
                    format!("publisher-{ssrc}"),
                    "publisher".into(),
                    RtpCodecKind::Video,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                        codec: crate::sfu::h264_codec(),
                        ..Default::default()
                    }],
                )));
                pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.map_err(web)?;
                Some((track, ssrc))
            } else {
                let init =
                    RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
                pc.add_transceiver_from_kind(RtpCodecKind::Video, Some(init)).await.map_err(web)?;
                None
            };
            let offer = pc.create_offer(None).await.map_err(web)?;
            pc.set_local_description(offer).await.map_err(web)?;
            let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
            let sdp = pc.local_description().await.map(|d| d.sdp).unwrap_or_default();
            let mut request = http.post(url).header("Content-Type", "application/sdp").body(sdp);
            if let Some(t) = &token {
                request = request.bearer_auth(t);
            }
            let res = request.send().await.map_err(|e| ClientError::Http(e.to_string()))?;
            let status = res.status();
            let location = res.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = res.text().await.map_err(|e| ClientError::Http(e.to_string()))?;
            if status.as_u16() != 201 {
                return Err(ClientError::Http(format!("{status}: {body}")));
            }
            let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
            let session = format!("{origin}{}", location.unwrap_or_default());
            let answer = RTCSessionDescription::answer(body).map_err(web)?;
            pc.set_remote_description(answer).await.map_err(web)?;
            Ok((session, local))
        }
        .await;
        match opened {
            Ok((session, local)) => Ok(Client { pc, session, http, token, connected, tracks: Some(tracks), local }),
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// Waits until the connection is up.
    pub async fn connected(&mut self, within: Duration) -> Result<(), ClientError> {
        let up = tokio::time::timeout(within, self.connected.wait_for(|c| c.is_some())).await;
        match up {
            Ok(Ok(c)) if *c == Some(true) => Ok(()),
            _ => Err(ClientError::Timeout(within)),
        }
    }

    /// The loop that receives the camera's frames into `seen` until the connection ends, decoding them when
    /// `decode` is set (reading each picture's capture time); spawn it. Only the first call gets the frames.
    pub fn frames(
        &mut self,
        decode: bool,
        seen: tokio::sync::mpsc::UnboundedSender<Seen>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tracks = self.tracks.take();
        async move {
            let Some(mut tracks) = tracks else { return };
            let Some(track) = tracks.recv().await else { return };
            receive(track, decode, seen).await;
        }
    }

    /// The loop that hands the camera's RTP packets, as they come, to `out` until the connection ends or `out`
    /// is dropped (an edge's upstream); spawn it. Only the first call (of this or [`Client::frames`]) gets them.
    pub fn packets(
        &mut self,
        out: tokio::sync::mpsc::UnboundedSender<rtp::Packet>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tracks = self.tracks.take();
        async move {
            let Some(mut tracks) = tracks else { return };
            let Some(track) = tracks.recv().await else { return };
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event
                    && out.send(packet).is_err()
                {
                    return;
                }
            }
        }
    }

    /// Sends one RTP packet (a publisher), with its own SSRC and the payload type it negotiated.
    pub async fn send(&self, mut packet: rtp::Packet) -> Result<(), ClientError> {
        let Some((track, ssrc)) = &self.local else {
            return Err(ClientError::Http("a viewer does not send".into()));
        };
        packet.header.ssrc = *ssrc;
        packet.header.payload_type = 102;
        track.write_rtp(packet).await.map_err(|e| ClientError::Session(SessionError::WebRtc(e.to_string())))
    }

    /// Ends the session (`DELETE` on its URL) and closes the connection; returns the `DELETE`'s status.
    pub async fn close(self) -> Option<u16> {
        let mut request = self.http.delete(&self.session);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let status = request.send().await.ok().map(|r| r.status().as_u16());
        let _ = self.pc.close().await;
        status
    }
}

async fn receive(track: Arc<dyn TrackRemote>, decode: bool, seen: tokio::sync::mpsc::UnboundedSender<Seen>) {
    let mut decoder = if decode { VideoDecoder::new().ok() } else { None };
    let mut last_seq: Option<u16> = None;
    let mut gap = 0u16;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
        let seq = packet.header.sequence_number;
        if let Some(last) = last_seq {
            let d = seq.wrapping_sub(last);
            if d == 0 || d > 0x8000 {
                continue; // a duplicate or a late retransmission
            }
            gap = gap.saturating_add(d - 1);
        }
        last_seq = Some(seq);
        let decoded = match decoder.as_mut() {
            Some(d) => d.push(&packet).ok().flatten(),
            None => None,
        };
        if packet.header.marker {
            let s = Seen {
                at: Instant::now(),
                arrived_ms: crate::strip::now_ms(),
                rtp_timestamp: packet.header.timestamp,
                captured: decoded.and_then(|d| d.captured),
                size: decoded.map(|d| (d.width, d.height)),
                gap: std::mem::take(&mut gap),
            };
            if seen.send(s).is_err() {
                return;
            }
        }
    }
}
