// Live video in the browser: WHEP viewing and WHIP publishing against the gateway, the capture-time strip
// reader (the same layout as video/src/strip.rs), and the control page's video section (a button per camera, a
// main view and a picture-in-picture, "no signal", automatic reconnect).
"use strict";

const LiveVideo = (() => {
  // Waits until the browser has gathered its candidates (no trickle: the offer carries them all), at most 2 s.
  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000);
    });
  }

  // Offers, POSTs the offer as application/sdp, applies the answer; returns the session's URL.
  async function negotiate(pc, url, headers = {}) {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", ...headers },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`${res.status} ${await res.text()}`);
    const location = new URL(res.headers.get("Location"), new URL(url, window.location.href)).toString();
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (e) {
      fetch(location, { method: "DELETE", headers }).catch(() => {});
      throw e;
    }
    return location;
  }

  // Prefers H.264 constrained baseline (what the SFU forwards) among the browser's codecs.
  function preferH264(transceiver) {
    if (!window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities || !transceiver.setCodecPreferences) return;
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
    const h264 = codecs.filter((c) => c.mimeType === "video/H264" && /profile-level-id=42e0/.test(c.sdpFmtpLine || ""));
    if (h264.length) transceiver.setCodecPreferences(h264);
  }

  // Plays a camera in a <video>, reconnecting when the connection drops; `onState` hears "connecting",
  // "playing", "retrying". Returns { close() }.
  function view(url, video, onState = () => {}) {
    let pc = null;
    let session = null;
    let closed = false;
    let timer = null;
    const retry = () => {
      if (closed || timer) return;
      onState("retrying");
      timer = setTimeout(() => { timer = null; start(); }, 1000);
    };
    const stop = () => {
      if (session) fetch(session, { method: "DELETE" }).catch(() => {});
      session = null;
      if (pc) pc.close();
      pc = null;
    };
    async function start() {
      stop();
      if (closed) return;
      onState("connecting");
      const mine = new RTCPeerConnection();
      pc = mine;
      preferH264(mine.addTransceiver("video", { direction: "recvonly" }));
      mine.ontrack = (e) => {
        // A live camera: show each frame as soon as it is decoded rather than smoothing playout.
        if ("jitterBufferTarget" in e.receiver) e.receiver.jitterBufferTarget = 0;
        e.receiver.playoutDelayHint = 0;
        video.srcObject = e.streams[0] || new MediaStream([e.track]);
        video.play().catch(() => {});
      };
      mine.onconnectionstatechange = () => {
        if (mine !== pc) return;
        video.dataset.connection = mine.connectionState;
        if (mine.connectionState === "connected") onState("playing");
        if (["failed", "disconnected", "closed"].includes(mine.connectionState)) retry();
      };
      try {
        session = await negotiate(mine, url);
      } catch (e) {
        video.dataset.error = e.message;
        retry();
      }
    }
    start();
    return { close() { closed = true; clearTimeout(timer); stop(); video.srcObject = null; } };
  }

  // Publishes a MediaStream's video to a camera with WHIP and the operator token. Returns { pc, session, close() }.
  async function publish(url, stream, token) {
    const pc = new RTCPeerConnection();
    const transceiver = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly" });
    preferH264(transceiver);
    const session = await negotiate(pc, url, { Authorization: `Bearer ${token}` });
    return {
      pc, session,
      close() {
        fetch(session, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
        pc.close();
      },
    };
  }

  // The capture-time strip: two markers, 36 bits of Unix ms (mod 2^36), a parity block.
  const BITS = 36, BLOCKS = BITS + 3, MODULUS = 2 ** BITS;
  const block = (width) => Math.max(8, Math.floor(width / (BLOCKS + 1) / 8) * 8);
  let canvas = null;

  // Reads the capture time from the picture a <video> shows now; null when there is no strip.
  function readStamp(video) {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    const b = block(w);
    canvas = canvas || document.createElement("canvas");
    canvas.width = BLOCKS * b; canvas.height = b;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, BLOCKS * b, b, 0, 0, BLOCKS * b, b);
    const px = ctx.getImageData(0, 0, BLOCKS * b, b).data;
    const mean = (i) => {
      let sum = 0, n = 0;
      for (let y = Math.floor(b / 4); y < Math.floor(b / 4) + b / 2; y++) {
        for (let x = i * b + Math.floor(b / 4); x < i * b + Math.floor(b / 4) + b / 2; x++) {
          const k = (y * BLOCKS * b + x) * 4;
          sum += 0.299 * px[k] + 0.587 * px[k + 1] + 0.114 * px[k + 2]; n++;
        }
      }
      return sum / n;
    };
    const white = mean(0), black = mean(1);
    if (white < black + 64) return null;
    const threshold = (white + black) / 2;
    let t = 0, ones = 0;
    for (let i = 0; i < BITS; i++) {
      const bit = mean(2 + i) > threshold ? 1 : 0;
      t = t * 2 + bit; ones += bit;
    }
    const parity = mean(BLOCKS - 1) > threshold ? 1 : 0;
    return parity === ones % 2 ? t : null;
  }

  // Milliseconds from a capture time read from the strip to now.
  const delayMs = (captured) => ((Date.now() % MODULUS) + MODULUS - captured) % MODULUS;

  // The control page's video section.
  async function section() {
    const box = document.getElementById("video");
    if (!box) return;
    let cameras;
    try {
      const res = await fetch("/api/cameras");
      if (!res.ok) return;
      cameras = await res.json();
    } catch (e) { return; }
    if (!cameras.length) return;
    box.hidden = false;
    const main = document.getElementById("main-video");
    const pip = document.getElementById("pip-video");
    const nosignal = document.getElementById("nosignal");
    const buttons = document.getElementById("camerabuttons");
    const lang = () => (document.documentElement.lang === "en" ? "en" : "ja");
    let selected = null, mainView = null, pipView = null, pipCamera = null;
    const byId = new Map();
    for (const c of cameras) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.camera = c.id;
      b.dataset.ja = c.name_ja; b.dataset.en = c.name_en;
      b.textContent = c[`name_${lang()}`];
      b.addEventListener("click", () => choose(c.id));
      buttons.appendChild(b);
      byId.set(c.id, { camera: c, button: b });
    }
    const onboard = cameras.find((c) => c.shows === "train");
    function choose(id) {
      if (id === selected) return;
      selected = id;
      for (const { camera, button } of byId.values()) button.setAttribute("aria-pressed", String(camera.id === id));
      if (mainView) mainView.close();
      main.dataset.camera = id;
      mainView = view(`/whep/${id}`, main, (s) => { main.dataset.state = s; });
      // The picture-in-picture shows the view ahead from the train, or the first station when that is main.
      const want = onboard && onboard.id !== id ? onboard.id : cameras.find((c) => c.id !== id)?.id;
      if (want !== pipCamera) {
        if (pipView) pipView.close();
        pipCamera = want;
        pip.dataset.camera = want || "";
        pipView = want ? view(`/whep/${want}`, pip, (s) => { pip.dataset.state = s; }) : null;
      }
      refresh();
    }
    pip.addEventListener("click", () => { if (pipCamera) choose(pipCamera); });
    function refresh() {
      const c = byId.get(selected)?.camera;
      nosignal.hidden = !!(c && c.on_air);
    }
    async function poll() {
      try {
        const res = await fetch("/api/cameras");
        if (res.ok) {
          for (const c of await res.json()) {
            const entry = byId.get(c.id);
            if (!entry) continue;
            entry.camera = c;
            entry.button.dataset.onAir = String(c.on_air);
          }
          refresh();
        }
      } catch (e) { /* the next poll tries again */ }
    }
    choose(cameras[0].id);
    setInterval(poll, 2000);
    // With ?measure in the address, every frame's glass-to-glass delay is kept for tests (window.videoDelays).
    if (new URLSearchParams(location.search).has("measure") && main.requestVideoFrameCallback) {
      window.videoDelays = [];
      const each = () => {
        const t = readStamp(main);
        if (t !== null && window.videoDelays.length < 10000) window.videoDelays.push(delayMs(t));
        main.requestVideoFrameCallback(each);
      };
      main.requestVideoFrameCallback(each);
    }
  }

  document.addEventListener("DOMContentLoaded", section);
  return { view, publish, readStamp, delayMs };
})();
