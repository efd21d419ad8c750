//! One camera's hub: where its one incoming H.264 stream (a WHIP publisher, a simulated source, an MJPEG board
//! through the encoder) meets its viewers. The hub puts every source's packets into one continuous stream (its
//! own sequence numbers and timestamps, so a viewer never sees a source change as loss) and fans them out;
//! keyframe requests go the other way, to whichever source is on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rtc::rtp;
use sim::layout::Camera;
use tokio::sync::{Notify, broadcast, watch};

/// Packets a viewer may fall behind by before it skips to the next keyframe.
pub const BACKLOG: usize = 1024;
/// Keyframe requests closer together than this are served by one keyframe.
const KEYFRAME_SPACING: Duration = Duration::from_millis(300);

/// A source's view of the keyframe requests: due when one came since the last keyframe, but at most one every
/// 300 ms (many viewers joining at once get one keyframe; a request too soon waits, it is not dropped).
#[derive(Debug)]
pub struct KeyframeGate {
    requests: watch::Receiver<u64>,
    last: Option<Instant>,
}

impl KeyframeGate {
    /// Whether the source should make (or, a publisher, be asked for) a keyframe now.
    pub fn due(&mut self) -> bool {
        if !self.requests.has_changed().unwrap_or(false) || self.last.is_some_and(|t| t.elapsed() < KEYFRAME_SPACING) {
            return false;
        }
        self.requests.mark_unchanged();
        self.last = Some(Instant::now());
        true
    }
}

/// Counters of one camera, for `/api/cameras` and the metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames that came in from the source.
    pub frames: AtomicU64,
    /// Bytes of RTP payload that came in.
    pub bytes: AtomicU64,
    /// Keyframe requests (viewers joining, lagging or losing packets; loss from the publisher).
    pub keyframe_requests: AtomicU64,
    /// NACKs viewers sent.
    pub nacks: AtomicU64,
}

#[derive(Debug)]
struct Continuity {
    /// The hub's next sequence number and the timestamp offset for the current source.
    seq: u16,
    ts_offset: u32,
    last_ts: u32,
    /// The source's SSRC and its last sequence number (to notice a source change and loss).
    source: Option<(u32, u16)>,
}

/// One camera's hub.
#[derive(Debug)]
pub struct Hub {
    /// The camera.
    pub camera: Camera,
    packets: broadcast::Sender<std::sync::Arc<rtp::Packet>>,
    viewers: AtomicUsize,
    publisher: Mutex<Option<String>>,
    keyframes: watch::Sender<u64>,
    continuity: Mutex<Continuity>,
    /// Told when viewers or the publisher come or go.
    pub changed: Notify,
    /// Counters.
    pub counters: Counters,
    bitrate: Mutex<(Instant, u64, f64)>,
    producing: Mutex<Option<Instant>>,
}

impl Hub {
    /// A hub for a camera, with no source and no viewers.
    pub fn new(camera: Camera) -> Hub {
        Hub {
            camera,
            packets: broadcast::channel(BACKLOG).0,
            viewers: AtomicUsize::new(0),
            publisher: Mutex::new(None),
            keyframes: watch::channel(0).0,
            continuity: Mutex::new(Continuity { seq: 1, ts_offset: 0, last_ts: 0, source: None }),
            changed: Notify::new(),
            counters: Counters::default(),
            bitrate: Mutex::new((Instant::now(), 0, 0.0)),
            producing: Mutex::new(None),
        }
    }

    /// Takes one packet from the current source and sends it to every viewer. Padding-only packets are dropped
    /// and header extensions removed (each viewer's connection negotiated its own). Returns whether the source
    /// lost packets before this one.
    pub fn push(&self, mut packet: rtp::Packet) -> bool {
        if packet.payload.is_empty() {
            return false;
        }
        let mut lost = false;
        {
            let mut c = self.continuity.lock().expect("continuity");
            let (ssrc, seq, ts) = (packet.header.ssrc, packet.header.sequence_number, packet.header.timestamp);
            match c.source {
                Some((s, last)) if s == ssrc => lost = seq != last.wrapping_add(1),
                _ => {
                    // A new source: continue the hub's timestamps one frame on from the last.
                    c.ts_offset = c.last_ts.wrapping_add(3000).wrapping_sub(ts);
                }
            }
            c.source = Some((ssrc, seq));
            packet.header.sequence_number = c.seq;
            c.seq = c.seq.wrapping_add(1);
            packet.header.timestamp = ts.wrapping_add(c.ts_offset);
            c.last_ts = packet.header.timestamp;
        }
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        packet.header.padding = false;
        let n = packet.payload.len() as u64;
        self.counters.bytes.fetch_add(n, Ordering::Relaxed);
        if packet.header.marker {
            self.counters.frames.fetch_add(1, Ordering::Relaxed);
        }
        {
            let now = Instant::now();
            *self.producing.lock().expect("producing") = Some(now);
            let mut b = self.bitrate.lock().expect("bitrate");
            b.1 += n;
            let dt = now.duration_since(b.0).as_secs_f64();
            if dt >= 1.0 {
                *b = (now, 0, b.1 as f64 * 8.0 / dt);
            }
        }
        let _ = self.packets.send(std::sync::Arc::new(packet));
        if lost {
            self.request_keyframe();
        }
        lost
    }

    /// A receiver of the hub's packets, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<std::sync::Arc<rtp::Packet>> {
        self.packets.subscribe()
    }

    /// Asks the current source for a keyframe.
    pub fn request_keyframe(&self) {
        self.counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        self.keyframes.send_modify(|n| *n += 1);
    }

    /// What a source asks whether a keyframe is due.
    pub fn keyframe_requests(&self) -> KeyframeGate {
        KeyframeGate { requests: self.keyframes.subscribe(), last: None }
    }

    /// Viewers watching now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::SeqCst)
    }

    /// A viewer joined (`true`) or left.
    pub fn viewer(&self, joined: bool) {
        if joined {
            self.viewers.fetch_add(1, Ordering::SeqCst);
        } else {
            self.viewers.fetch_sub(1, Ordering::SeqCst);
        }
        self.changed.notify_waiters();
    }

    /// The WHIP session publishing now, if any.
    pub fn publisher(&self) -> Option<String> {
        self.publisher.lock().expect("publisher").clone()
    }

    /// Sets (or, with `None`, clears) the WHIP session publishing; returns the one it replaces. Clearing only
    /// clears when `session` is the one publishing.
    pub fn set_publisher(&self, session: Option<String>, ending: Option<&str>) -> Option<String> {
        let mut p = self.publisher.lock().expect("publisher");
        let old = match (session, ending) {
            (Some(s), _) => p.replace(s),
            (None, Some(e)) if p.as_deref() == Some(e) => p.take(),
            _ => None,
        };
        drop(p);
        self.changed.notify_waiters();
        old
    }

    /// Whether a source sent a packet within the last second (the page shows "no signal" otherwise).
    pub fn on_air(&self) -> bool {
        self.producing.lock().expect("producing").is_some_and(|t| t.elapsed() < Duration::from_secs(1))
    }

    /// Bits a second coming in, over the last second or so.
    pub fn bitrate(&self) -> f64 {
        let b = self.bitrate.lock().expect("bitrate");
        if b.0.elapsed() > Duration::from_secs(2) { 0.0 } else { b.2 }
    }
}
