//! The SFU: WebRTC sessions of viewers (WHEP) and publishers (WHIP) on the `webrtc` crate, one hub per camera.
//! HTTP-agnostic: the gateway maps `view`, `publish` and `end` to `/whep/{camera}`, `/whip/{camera}` and their
//! session URLs.
//!
//! A viewer's connection gets its own track; a task forwards the hub's packets into it with the viewer's own
//! SSRC, payload type and sequence numbers, starting at a keyframe (a keyframe is asked for when it joins, when
//! it falls behind, and when its browser reports loss with a PLI). A publisher's track feeds the hub; the hub's
//! keyframe requests go to it as PLIs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MediaEngine};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::broadcast::error::RecvError;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};
use webrtc::runtime::Runtime;

use crate::h264::{self, CLOCK_RATE, FMTP};
use crate::hub::Hub;

/// How long an offer's answer may take (ICE gathering on the server's side).
const GATHERING: Duration = Duration::from_secs(5);
/// How long a new connection has to connect before it is dropped.
const CONNECTING: Duration = Duration::from_secs(20);
/// The playout-delay RTP header extension: with 0 ms at most, a browser shows each frame as soon as it is
/// decoded instead of smoothing playout with a jitter buffer (a live camera wants the latest picture).
pub const PLAYOUT_DELAY: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
/// How long writing one packet to a viewer's connection may take before it counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a viewer's sender statistics are read (PLIs and NACKs from its browser).
const STATS_EVERY: Duration = Duration::from_millis(500);

/// Why a session could not be made or ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No camera has that id.
    #[error("no camera `{0}`")]
    UnknownCamera(String),
    /// No session has that id.
    #[error("no session `{0}`")]
    UnknownSession(String),
    /// The offer was not a usable SDP offer.
    #[error("bad offer: {0}")]
    BadOffer(String),
    /// As many sessions as allowed are open.
    #[error("full: {0} sessions are open")]
    Full(usize),
    /// The client's address has as many sessions open as one address may.
    #[error("{0} sessions are open from this address, as many as one address may have")]
    TooManyFromAddress(usize),
    /// WebRTC failed on the server's side.
    #[error("WebRTC: {0}")]
    WebRtc(String),
}

/// Settings of the SFU.
#[derive(Debug, Clone, PartialEq)]
pub struct SfuConfig {
    /// Local UDP addresses a connection binds (port 0: a fresh port each). `0.0.0.0:0`: every interface but
    /// loopback.
    pub udp: Vec<String>,
    /// Most sessions (viewers and publishers) open at once.
    pub max_sessions: usize,
    /// Most sessions open at once from one client address (a phone page uses two).
    pub per_address: usize,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig { udp: vec!["0.0.0.0:0".into()], max_sessions: 2000, per_address: 16 }
    }
}

struct Session {
    camera: usize,
    from: IpAddr,
    publisher: bool,
    pc: Arc<dyn PeerConnection>,
    /// Tells the session's task to stop (it may be waiting on the connection, which a close does not wake).
    stop: tokio::sync::watch::Sender<bool>,
}

/// The SFU: a hub per camera and the open sessions.
pub struct Sfu {
    /// Hubs in the layout's camera order.
    pub hubs: Vec<Arc<Hub>>,
    sessions: Mutex<HashMap<String, Session>>,
    runtime: Arc<dyn Runtime>,
    config: SfuConfig,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The H.264 codec every connection negotiates.
pub fn h264_codec() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback { typ: typ.into(), parameter: parameter.into() };
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: FMTP.to_owned(),
        rtcp_feedback: vec![feedback("nack", ""), feedback("nack", "pli"), feedback("ccm", "fir")],
    }
}

/// A peer connection that speaks H.264 only, with the default interceptors (NACK responder, reports).
pub async fn connection(
    runtime: Arc<dyn Runtime>,
    udp: Vec<String>,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, SessionError> {
    let web = |e: webrtc::error::Error| SessionError::WebRtc(e.to_string());
    let mut media = MediaEngine::default();
    media
        .register_codec(RTCRtpCodecParameters { rtp_codec: h264_codec(), payload_type: 102 }, RtpCodecKind::Video)
        .map_err(web)?;
    media
        .register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: PLAYOUT_DELAY.to_owned() },
            RtpCodecKind::Video,
            None,
        )
        .map_err(web)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(web)?;
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_runtime(runtime)
        .with_udp_addrs(udp)
        .build()
        .await
        .map_err(web)?;
    Ok(Arc::new(pc))
}

/// Events of one connection, for the task that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Gathered,
    Connected,
    Gone,
}

struct Handler {
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    tracks: tokio::sync::mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(Event::Gathered);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let event = match state {
            RTCPeerConnectionState::Connected => Event::Connected,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed | RTCPeerConnectionState::Disconnected => {
                Event::Gone
            }
            _ => return,
        };
        let _ = self.events.send(event);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

impl Sfu {
    /// An SFU with a hub per camera.
    pub fn new(hubs: Vec<Arc<Hub>>, config: SfuConfig) -> Arc<Sfu> {
        let runtime = webrtc::runtime::default_runtime().expect("the tokio runtime is compiled in");
        Arc::new(Sfu { hubs, sessions: Mutex::new(HashMap::new()), runtime, config })
    }

    /// The hub of a camera by id.
    pub fn hub(&self, camera: &str) -> Option<(usize, &Arc<Hub>)> {
        self.hubs.iter().enumerate().find(|(_, h)| h.camera.id == camera)
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().expect("sessions").len()
    }

    /// A viewer's WHEP offer for a camera, from a client address: the answer (all candidates in it) and the
    /// session id.
    pub async fn view(
        self: &Arc<Self>,
        camera: &str,
        offer: String,
        from: IpAddr,
    ) -> Result<(String, String), SessionError> {
        self.open(camera, offer, false, from).await
    }

    /// A publisher's WHIP offer for a camera: the answer and the session id. It replaces the camera's source
    /// (and a publisher before it).
    pub async fn publish(
        self: &Arc<Self>,
        camera: &str,
        offer: String,
        from: IpAddr,
    ) -> Result<(String, String), SessionError> {
        self.open(camera, offer, true, from).await
    }

    /// Ends a session (WHEP/WHIP `DELETE`).
    pub async fn end(&self, session: &str) -> Result<(), SessionError> {
        let s = self.remove(session).ok_or_else(|| SessionError::UnknownSession(session.to_string()))?;
        let _ = s.pc.close().await;
        Ok(())
    }

    fn remove(&self, session: &str) -> Option<Session> {
        let s = self.sessions.lock().expect("sessions").remove(session)?;
        let _ = s.stop.send(true);
        let hub = &self.hubs[s.camera];
        if s.publisher {
            hub.set_publisher(None, Some(session));
        } else {
            hub.viewer(false);
        }
        Some(s)
    }

    async fn open(
        self: &Arc<Self>,
        camera: &str,
        offer: String,
        publisher: bool,
        from: IpAddr,
    ) -> Result<(String, String), SessionError> {
        let (index, hub) = self.hub(camera).ok_or_else(|| SessionError::UnknownCamera(camera.to_string()))?;
        let hub = hub.clone();
        check_offer(&offer, publisher)?;
        let offer = RTCSessionDescription::offer(offer).map_err(|e| SessionError::BadOffer(e.to_string()))?;
        {
            let sessions = self.sessions.lock().expect("sessions");
            if sessions.len() >= self.config.max_sessions {
                return Err(SessionError::Full(sessions.len()));
            }
            let mine = sessions.values().filter(|s| s.from == from).count();
            if mine >= self.config.per_address {
                return Err(SessionError::TooManyFromAddress(mine));
            }
        }
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let (tracks_tx, tracks) = tokio::sync::mpsc::unbounded_channel();
        let handler = Arc::new(Handler { events: events_tx, tracks: tracks_tx });
        let pc = connection(self.runtime.clone(), self.config.udp.clone(), handler).await?;
        let web = |e: webrtc::error::Error| SessionError::WebRtc(e.to_string());
        let bad = |e: webrtc::error::Error| SessionError::BadOffer(e.to_string());
        let ssrc = rand_ssrc();
        // Everything after the connection is made closes it on failure (a dropped connection is not stopped).
        let answered = async {
            let local = if publisher {
                let init =
                    RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
                pc.add_transceiver_from_kind(RtpCodecKind::Video, Some(init)).await.map_err(web)?;
                None
            } else {
                let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                    format!("plarail-{camera}"),
                    format!("{camera}-{ssrc}"),
                    camera.to_string(),
                    RtpCodecKind::Video,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                        codec: h264_codec(),
                        ..Default::default()
                    }],
                )));
                let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.map_err(web)?;
                Some((track, sender))
            };
            pc.set_remote_description(offer).await.map_err(bad)?;
            let answer = pc.create_answer(None).await.map_err(bad)?;
            pc.set_local_description(answer).await.map_err(web)?;
            let gathered = async {
                while let Some(e) = events.recv().await {
                    if e == Event::Gathered {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(GATHERING, gathered).await;
            let answer =
                pc.local_description().await.map(|d| d.sdp).ok_or_else(|| SessionError::WebRtc("no answer".into()))?;
            Ok((answer, local))
        }
        .await;
        let (answer, local) = match answered {
            Ok(a) => a,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let id = session_id();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let session = Session { camera: index, from, publisher, pc: pc.clone(), stop };
        self.sessions.lock().expect("sessions").insert(id.clone(), session);
        if publisher {
            if let Some(old) = hub.set_publisher(Some(id.clone()), None) {
                tracing::info!(camera, "publisher {id} replaces {old}");
                let _ = self.end(&old).await;
            }
        } else {
            hub.viewer(true);
        }
        let sfu = self.clone();
        let session = id.clone();
        tokio::spawn(async move {
            let run = async {
                match tokio::time::timeout(CONNECTING, wait_for(&mut events, Event::Connected)).await {
                    Ok(true) => {}
                    _ => return,
                }
                match local {
                    Some((track, sender)) => forward(&hub, &track, &sender, ssrc, &mut events).await,
                    None => receive(&hub, tracks, &mut events).await,
                }
            };
            tokio::select! {
                _ = run => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
            if let Some(s) = sfu.remove(&session) {
                let _ = s.pc.close().await;
            }
        });
        Ok((id, answer))
    }
}

async fn wait_for(events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>, want: Event) -> bool {
    while let Some(e) = events.recv().await {
        if e == want {
            return true;
        }
        if e == Event::Gone {
            return false;
        }
    }
    false
}

/// A viewer's forwarding loop: the hub's packets into its track from a keyframe on, until it goes.
async fn forward(
    hub: &Hub,
    track: &TrackLocalStaticRTP,
    sender: &Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    ssrc: u32,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
) {
    let (payload_type, playout_delay) = match sender.get_parameters().await {
        Ok(p) => (
            p.rtp_parameters.codecs.first().map_or(102, |c| c.payload_type),
            p.rtp_parameters.header_extensions.iter().find(|e| e.uri == PLAYOUT_DELAY).map(|e| e.id as u8),
        ),
        Err(_) => return,
    };
    let mut packets = hub.subscribe();
    hub.request_keyframe();
    let mut waiting_for_keyframe = true;
    let mut seq: u16 = rand_ssrc() as u16;
    let (mut plis, mut nacks) = (0u32, 0u32);
    let mut stats = tokio::time::interval(STATS_EVERY);
    loop {
        tokio::select! {
            p = packets.recv() => match p {
                Ok(p) => {
                    if waiting_for_keyframe {
                        if !h264::starts_keyframe(&p.payload) {
                            continue;
                        }
                        waiting_for_keyframe = false;
                    }
                    let mut out = (*p).clone();
                    out.header.ssrc = ssrc;
                    out.header.payload_type = payload_type;
                    out.header.sequence_number = seq;
                    seq = seq.wrapping_add(1);
                    if let Some(id) = playout_delay {
                        // min 0, max 0 (12 bits each, in 10 ms).
                        let _ = out.header.set_extension(id, bytes::Bytes::from_static(&[0, 0, 0]));
                    }
                    // A connection that takes no packet for a while is gone (a closed one may not say so).
                    match tokio::time::timeout(WRITE_TIMEOUT, track.write_rtp(out)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    waiting_for_keyframe = true;
                    hub.request_keyframe();
                }
                Err(RecvError::Closed) => return,
            },
            e = events.recv() => if matches!(e, None | Some(Event::Gone)) { return },
            _ = stats.tick() => {
                let Ok(report) = sender.get_stats(Instant::now()).await else { return };
                for s in report.outbound_rtp_streams() {
                    if s.pli_count > plis {
                        hub.request_keyframe();
                    }
                    hub.counters.nacks.fetch_add(u64::from(s.nack_count.saturating_sub(nacks)), Ordering::Relaxed);
                    (plis, nacks) = (s.pli_count.max(plis), s.nack_count.max(nacks));
                }
            }
        }
    }
}

/// A publisher's loop: its video track's packets into the hub, the hub's keyframe requests to it as PLIs.
async fn receive(
    hub: &Hub,
    mut tracks: tokio::sync::mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
) {
    let track = tokio::select! {
        t = tracks.recv() => match t { Some(t) => t, None => return },
        _ = wait_for(events, Event::Gone) => return,
    };
    let media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mut keyframes = hub.keyframe_requests();
    let pli =
        |ssrc| vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc }) as Box<dyn rtc::rtcp::Packet>];
    let _ = track.write_rtcp(pli(media_ssrc)).await;
    // Keyframe requests are looked at as packets come (a publisher sends tens a second), and once a second.
    let mut idle = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            e = track.poll() => match e {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                    hub.push(p);
                }
                Some(TrackRemoteEvent::OnEnded) | None => return,
                Some(_) => continue,
            },
            _ = idle.tick() => {}
            e = events.recv() => if matches!(e, None | Some(Event::Gone)) { return },
        }
        if keyframes.due() && track.write_rtcp(pli(media_ssrc)).await.is_err() {
            return;
        }
    }
}

/// Checks that an offer is an SDP offer with a video section a session of this kind can use.
pub fn check_offer(sdp: &str, publisher: bool) -> Result<(), SessionError> {
    if !sdp.starts_with("v=0") {
        return Err(SessionError::BadOffer("an SDP offer starts with `v=0`".into()));
    }
    let video = sdp.lines().any(|l| l.starts_with("m=video"));
    if !video {
        return Err(SessionError::BadOffer("the offer has no video section".into()));
    }
    if !sdp.to_ascii_lowercase().contains("h264/90000") {
        return Err(SessionError::BadOffer("the offer does not offer H.264".into()));
    }
    let wrong = if publisher { "a=recvonly" } else { "a=sendonly" };
    if sdp.lines().any(|l| l.trim() == wrong) {
        return Err(SessionError::BadOffer(format!(
            "a {} offers {wrong}",
            if publisher { "publisher" } else { "viewer" }
        )));
    }
    Ok(())
}

fn rand_ssrc() -> u32 {
    rand::random()
}

fn session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
