// The phone control page: draws the layout from /api/layout and operates it over the v2 WebSocket protocol.
"use strict";

const WORDS = {
  ja: {
    title: "プラレール遠隔操作", fit: "全体", legend_on: "止める", legend_off: "通過", legend_switch: "ポイント (線が進路)", legend_free: "閉塞 開", legend_occupied: "閉塞 閉 (列車あり)",
    trains: "列車", devices: "ストップレール・ポイント", events: "できごと", operator: "運営者",
    timeline: "記録", no_record: "ここには記録がありません (--data-dir で起動したゲートウェイが記録します)", recorded: "件の記録",
    token: "運営者トークン", emergency_stop: "非常停止", reset: "初期状態に戻す", live: "本番 (LIVE) へ",
    live_force: "強制的に LIVE へ", sim: "シミュレーション (SIM) へ", boards: "ボード",
    connecting: "接続中…", connected: "接続", reconnecting: "再接続中…",
    stop_on: "止める", stop_off: "通過", switch_on: "分岐", switch_off: "直進", between: "動作中",
    stop_train: "停止", speed: "速度", sent: "送信しました", controller: "実機の速度制御あり",
    simulated: "速度はシミュレーションのみ (制御装置なし)", applied: "実行しました",
    rejected: "できません", failed: "失敗しました", denied: "トークンが違います", error: "エラー",
    confirm_live: "実機 (LIVE) に切り替えますか?", confirm_force: "応答しないボードがあっても LIVE に切り替えますか?",
    running: "走行中", crashed: "衝突", derailed: "脱線", removed: "撤去", alive: "応答あり", down: "応答なし", unknown: "不明",
    manual: "手動運転", mixed: "自動 (来場者優先)", auto: "全自動", op_manual: "手動", op_mixed: "自動+来場者", op_auto: "全自動",
    automatic: "自動", by_hand: "手動", next_stop: "次", calls: "停車", restoring: "復旧中", track_offline: "線路オフライン（操作できません）", track_online: "線路オンライン", need_token: "トークンを入力してください", no_answer: "接続が切れ、結果は不明です",
  },
  en: {
    title: "Plarail remote control", fit: "Fit", legend_on: "stop", legend_off: "go", legend_switch: "switch (the line shows the way set)", legend_free: "block free", legend_occupied: "block occupied",
    trains: "Trains", devices: "Stop rails and switches", events: "Events", operator: "Operator",
    timeline: "Record", no_record: "nothing recorded here (a gateway started with --data-dir records its session)", recorded: "entries recorded",
    token: "Operator token", emergency_stop: "Emergency stop", reset: "Reset to initial state", live: "Go LIVE",
    live_force: "Force LIVE", sim: "Back to SIM", boards: "Boards",
    connecting: "connecting…", connected: "connected", reconnecting: "reconnecting…",
    stop_on: "stop", stop_off: "go", switch_on: "diverging", switch_off: "straight", between: "moving",
    stop_train: "Stop", speed: "speed", sent: "sent", controller: "real speed controller",
    simulated: "speed simulated only (no onboard controller)", applied: "done",
    rejected: "not allowed", failed: "failed", denied: "wrong token", error: "error",
    confirm_live: "Switch to the real track (LIVE)?", confirm_force: "Switch to LIVE even with boards not answering?",
    running: "running", crashed: "crashed", derailed: "derailed", removed: "removed", alive: "answers", down: "DOWN", unknown: "not heard from yet (the broker does not tell)",
    manual: "Manual operation", mixed: "Automatic, visitors first", auto: "Fully automatic", op_manual: "MANUAL", op_mixed: "MIXED", op_auto: "AUTO",
    automatic: "auto", by_hand: "by hand", next_stop: "next", calls: "calls", restoring: "restoring", track_offline: "track offline (commands refused)", track_online: "track online", need_token: "enter the operator token", no_answer: "connection lost before the answer",
  },
};
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

let lang = localStorage.getItem("lang") || (navigator.language.startsWith("ja") ? "ja" : "en");
let drawing = null;
// Block id -> its track polylines.
const blocks = new Map();
let socket = null;
let retryMs = 500;
let nextId = 1;
let zoom = 1;
let connState = "connecting";
const pending = new Map();
const devices = new Map(); // name -> {mark, map element, button, state}
const trains = new Map(); // name -> {label, map element, list item, ...}
const boards = new Map();

const t = (key) => WORDS[lang][key] ?? key;

function el(ns, tag, attrs = {}, parent = null) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function trainColour(i) {
  return `hsl(${(i * 360) / Math.max(drawing.trains.length, 1)}, 75%, 50%)`;
}

function stateWord(kind, state) {
  if (state !== "ON" && state !== "OFF") return t("between");
  return t(`${kind === "switch" ? "switch" : "stop"}_${state === "ON" ? "on" : "off"}`);
}

// ---- drawing the map and the lists ----

function build() {
  const map = $("map");
  view = { x: 0, y: 0, width: drawing.width, height: drawing.height };
  map.setAttribute("viewBox", `0 0 ${drawing.width} ${drawing.height}`);
  const lines = drawing.tracks.map((track) =>
    el(SVG, "polyline", { class: "track", points: track.points.map((p) => p.join(",")).join(" ") }, map));
  // Blocks (2023 layouts): their tracks drawn free or occupied, with a title naming the block.
  (drawing.blocks || []).forEach((b) => {
    const tracks = b.tracks.map((i) => lines[i]);
    tracks.forEach((l) => { l.classList.add("block"); l.dataset.block = b.id; el(SVG, "title", {}, l).textContent = b.id; });
    blocks.set(b.id, tracks);
  });
  document.querySelector(".blocklegend").hidden = blocks.size === 0;
  (drawing.detectors || []).forEach((d) => {
    el(SVG, "rect", { class: `detector ${d.target}`, x: d.at[0] - 3, y: d.at[1] - 3, width: 6, height: 6 }, map);
  });
  drawing.sensors.forEach((s) => {
    el(SVG, "circle", { class: "sensor", r: 3.5, cx: s.at[0], cy: s.at[1], "data-sensor": s.name }, map);
  });
  // Station names where the layout's drawing placed them, clear of each other (the window draws them there too).
  drawing.stations.forEach((s) => {
    const label = el(SVG, "text", { class: "station", x: s.label[0], y: s.label[1] }, map);
    label.dataset.ja = s.name_ja;
    label.dataset.en = s.name_en;
  });
  const byStation = new Map();
  drawing.devices.forEach((d) => {
    const g = el(SVG, "g", { class: `dev ${d.kind}`, "data-device": d.name, "data-state": "", tabindex: 0, role: "button" }, map);
    el(SVG, "title", {}, g).textContent = d.name;
    if (d.kind === "switch") {
      el(SVG, "line", { class: "blade", x1: d.at[0], y1: d.at[1], x2: d.off[0], y2: d.off[1] }, g);
      el(SVG, "circle", { class: "mark", r: 5, cx: d.at[0], cy: d.at[1] }, g);
    } else {
      el(SVG, "rect", { class: "mark", x: d.at[0] - 6, y: d.at[1] - 6, width: 12, height: 12, rx: 2 }, g);
    }
    el(SVG, "circle", { class: "hit", r: 14, cx: d.at[0], cy: d.at[1] }, g);
    g.addEventListener("click", () => toggle(d.name));
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") toggle(d.name); });
    const button = el(null, "button", { type: "button", class: `devbtn ${d.kind}`, "data-device": d.name, "data-state": "" });
    button.addEventListener("click", () => toggle(d.name));
    if (!byStation.has(d.station)) byStation.set(d.station, []);
    byStation.get(d.station).push(button);
    devices.set(d.name, { mark: d, g, button, state: null });
  });
  const list = $("devicelist");
  for (const [station, buttons] of byStation) {
    const set = el(null, "fieldset", {}, list);
    const legend = el(null, "legend", {}, set);
    legend.dataset.ja = drawing.stations[station].name_ja;
    legend.dataset.en = drawing.stations[station].name_en;
    buttons.forEach((b) => set.appendChild(b));
  }
  const trainLayer = el(SVG, "g", { id: "trainlayer" }, map);
  drawing.trains.forEach((tr, i) => {
    const g = el(SVG, "g", { class: "train", "data-train": tr.name, "data-status": "running" }, trainLayer);
    el(SVG, "circle", { r: 9, fill: trainColour(i) }, g);
    const label = el(SVG, "text", { y: -12 }, g);
    label.textContent = tr.name;
    const li = el(null, "li", { "data-train": tr.name, "data-controller": tr.controller }, $("trainlist"));
    const name = el(null, "span", { class: "name" }, li);
    el(null, "span", { class: "dot", style: `background:${trainColour(i)}` }, name);
    el(null, "span", {}, name).textContent = tr.name;
    const stop = el(null, "button", { type: "button", class: "stop" }, li);
    stop.addEventListener("click", () => setSpeed(tr.name, 0));
    const kind = el(null, "span", { class: "kind" }, li);
    // The 2021 page's speed: 0..100 in steps of 5, and a meter. No reverse: the blocks protect forward running
    // only (and the 2021 controller ignored negative speeds).
    const meter = el(null, "meter", { min: 0, max: 100, value: 0, "aria-label": `${tr.name} ${t("speed")}` }, li);
    const info = el(null, "span", { class: "info" }, li);
    const plan = el(null, "span", { class: "plan", hidden: "" }, li);
    const slider = el(null, "input", { type: "range", min: 0, max: 100, step: 5, value: 0, "aria-label": tr.name }, li);
    slider.addEventListener("change", () => setSpeed(tr.name, Number(slider.value)));
    trains.set(tr.name, { g, label, li, kind, meter, info, plan, slider, stop, controller: tr.controller, status: "running", speed: 0, set: 0 });
  });
  fit();
  window.addEventListener("resize", fit);
  $("zoom-in").addEventListener("click", () => setZoom(zoom * 1.4));
  $("zoom-out").addEventListener("click", () => setZoom(zoom / 1.4));
  $("zoom-fit").addEventListener("click", fit);
  $("lang").addEventListener("click", () => { lang = lang === "ja" ? "en" : "ja"; localStorage.setItem("lang", lang); words(); });
  $("token").value = sessionStorage.getItem("token") || "";
  for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => operator(b.dataset.action));
  // The recorded session's timeline, read-only: read when the operator panel opens, and every 10 s while open.
  $("operator").addEventListener("toggle", () => { if ($("operator").open) timeline(); });
  setInterval(() => { if ($("operator").open) timeline(); }, 10000);
  words();
}

// What the timeline marks of a recorded entry (see wire/src/record.rs): [kind, words], or null.
function markOf(e) {
  if (e.session) return ["session", `session: ${e.session.layout}, ${e.session.mode}, ${e.session.operation}`];
  if (e.target !== undefined && e.result === "rejected") return ["rejected", `${e.target} ${e.value} (${e.by}): ${e.reason}`];
  if (e.target !== undefined && e.result === "failed") return ["failed", `${e.target} ${e.value} (${e.by}): ${e.reason}`];
  if (e.accident) return ["accident", e.accident];
  if (e.mode) return ["switch", `mode ${e.mode}`];
  if (e.operation) return ["switch", `operation ${e.operation}`];
  if (e.board !== undefined && !e.reachable) return ["failed", `board ${e.board} not answering`];
  return null;
}

// The newest recorded entries on a line, oldest left: every command a faint tick, refusals, failures,
// accidents, switches and session starts marked (their words on hover), and listed below, newest first.
async function timeline() {
  let answer;
  try { answer = await fetch("/api/history?limit=500"); } catch (_) { return; }
  if (!answer.ok) { $("timeline-note").textContent = t("no_record"); $("timeline").hidden = true; return; }
  const entries = (await answer.json()).history.reverse();
  const svg = $("timeline");
  svg.replaceChildren();
  $("timeline-list").replaceChildren();
  svg.hidden = entries.length === 0;
  $("timeline-note").textContent = `${entries.length} ${t("recorded")}`;
  if (!entries.length) return;
  const from = entries[0].unix_ms, span = Math.max(entries[entries.length - 1].unix_ms - from, 1);
  const clock = (ms) => new Date(ms).toLocaleTimeString();
  const marked = [];
  for (const e of entries) {
    const x = ((e.unix_ms - from) / span) * 996;
    const mark = markOf(e);
    if (!mark && e.target === undefined) continue;
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", x.toFixed(1));
    r.setAttribute("y", mark ? 0 : 8);
    r.setAttribute("width", mark ? 4 : 1);
    r.setAttribute("height", mark ? 24 : 8);
    r.setAttribute("class", mark ? `mark ${mark[0]}` : "mark command");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${clock(e.unix_ms)} ${mark ? mark[1] : `${e.target} ${e.value}`}`;
    r.append(title);
    svg.append(r);
    if (mark) marked.push([e, mark]);
  }
  for (const [e, [kind, words]] of marked.reverse().slice(0, 30)) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = `${clock(e.unix_ms)} ${words}`;
    $("timeline-list").append(li);
  }
}

function setZoom(z) {
  zoom = Math.min(Math.max(z, 0.2), 4);
  $("map").setAttribute("width", Math.round(view.width * zoom));
  $("map").setAttribute("height", Math.round(view.height * zoom));
}

function fit() {
  setZoom(($("mapscroll").clientWidth || view.width) / view.width);
}

// Every text in the current language.
function words() {
  document.documentElement.lang = lang;
  $("lang").textContent = lang === "ja" ? "EN" : "日本語";
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll("[data-ja]")) e.textContent = e.dataset[lang];
  document.title = t("title");
  placeStations(); // the station names changed size: the view grows to hold them
  for (const name of devices.keys()) showDevice(name);
  for (const name of trains.keys()) showTrain(name);
  showConn(connState);
  showBoards();
}

function showDevice(name) {
  const d = devices.get(name);
  const state = d.state ?? "";
  d.g.dataset.state = state;
  d.button.dataset.state = state;
  d.button.textContent = "";
  el(null, "span", {}, d.button).textContent = name;
  el(null, "span", {}, d.button).textContent = stateWord(d.mark.kind, d.state);
  if (d.mark.kind === "switch") {
    const to = d.state === "ON" ? d.mark.on : d.mark.off;
    const blade = d.g.querySelector(".blade");
    blade.setAttribute("x2", to[0]);
    blade.setAttribute("y2", to[1]);
  }
}

function showTrain(name) {
  const tr = trains.get(name);
  tr.g.dataset.status = tr.status;
  tr.stop.textContent = t("stop_train");
  tr.kind.textContent = t(tr.controller ? "controller" : "simulated");
  tr.meter.value = tr.set;
  tr.info.textContent = `${t("speed")} ${tr.set} · ${t(tr.status)} ${Math.round(tr.speed)} mm/s`;
  const plan = plans.get(name);
  tr.plan.hidden = !plan;
  if (plan) {
    const parts = [t(plan.automatic ? "automatic" : "by_hand")];
    if (plan.next_stop) parts.push(`${t("next_stop")} ${plan.next_stop}`);
    if (plan.calls) parts.push(`${plan.calls} ${t("calls")}`);
    if (plan.waiting) parts.push(plan.waiting);
    tr.plan.textContent = parts.join(" · ");
  }
}

// The drawing's area on the map: the layout's canvas grown to hold every label.
let view = { x: 0, y: 0, width: 0, height: 0 };

/** The map's view grown to hold every station name (a name at the canvas's edge is not cut). */
function placeStations() {
  const all = $("map").getBBox();
  const margin = 6;
  const x = Math.min(0, all.x - margin), y = Math.min(0, all.y - margin);
  const right = Math.max(drawing.width, all.x + all.width + margin);
  const bottom = Math.max(drawing.height, all.y + all.height + margin);
  view = { x, y, width: right - x, height: bottom - y };
  $("map").setAttribute("viewBox", `${view.x} ${view.y} ${view.width} ${view.height}`);
  fit();
}

function showConn(state) {
  connState = state;
  $("conn").dataset.state = state;
  $("conn").textContent = t(state);
}

// On an edge gateway the track's core can be offline (its broker link); one process is always online.
function showOnline(online) {
  $("offline").hidden = online;
  $("offline").textContent = t("track_offline");
}

let operation = "manual";
const plans = new Map(); // train name -> automatic operation's plan

/** Shows how the layout is run (hidden in manual operation) and each train's plan. */
function showOperation(op, list) {
  operation = op;
  plans.clear();
  (list || []).forEach((p) => plans.set(p.train, p));
  $("operation").hidden = op === "manual";
  $("operation").dataset.operation = op;
  $("operation").textContent = t(`op_${op}`);
  for (const name of trains.keys()) showTrain(name);
}

function showMode(mode) {
  $("mode").dataset.mode = mode;
  $("mode").textContent = mode.toUpperCase();
}

function showBoards() {
  const list = $("boardlist");
  list.textContent = "";
  for (const b of boards.values()) {
    const li = el(null, "li", { class: b.alive || b.unknown ? "" : "down" }, list);
    const word = b.unknown ? "unknown" : b.alive ? (b.restoring ? "restoring" : "alive") : "down";
    li.textContent = `${b.name} (${b.address}): ${t(word)}`;
  }
}

function notice(kind, text) {
  const n = $("notice");
  n.hidden = false;
  n.dataset.kind = kind;
  n.textContent = text;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, kind === "applied" || kind === "sent" ? 2500 : 8000);
}

function logEvent(text) {
  const log = $("eventlog");
  el(null, "li", {}, log).textContent = `${new Date().toLocaleTimeString()} ${text}`;
  while (log.children.length > 30) log.removeChild(log.firstChild);
  log.scrollTop = log.scrollHeight;
}

// ---- commands ----

function send(command, what, isOperator = false) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    notice("error", t("reconnecting"));
    return;
  }
  const id = nextId++;
  pending.set(id, { what, isOperator });
  socket.send(JSON.stringify({ id, ...command }));
  notice("sent", `${what}: ${t("sent")}`);
}

function toggle(name) {
  const d = devices.get(name);
  const state = d.state === "ON" ? "OFF" : "ON";
  send({ cmd: "device", name, state }, `${name} → ${stateWord(d.mark.kind, state)}`);
}

function setSpeed(name, speed) {
  trains.get(name).slider.value = speed;
  send({ cmd: "speed", train: name, speed }, `${name} → ${t("speed")} ${speed}`);
}

function operator(action) {
  const token = $("token").value;
  if (!token) { notice("error", t("need_token")); return; }
  if (action === "live" && !confirm(t("confirm_live"))) return;
  if (action === "live_force" && !confirm(t("confirm_force"))) return;
  sessionStorage.setItem("token", token);
  $("operator-result").textContent = "…";
  send({ cmd: "operator", token, action }, t(action), true);
}

/** Draws a block occupied (a train is in it: CLOSE) or free (OPEN), dashed while a detector of it is not well
 * (stuck, chattering, out of service: its title says which). */
function showBlock(b) {
  (blocks.get(b.id) || []).forEach((l) => {
    l.classList.toggle("occupied", b.occupied);
    l.classList.toggle("faulty", !!b.detectors);
    const title = l.querySelector("title");
    if (title) title.textContent = b.detectors ? `${b.id}: detector ${b.detectors}` : b.id;
  });
}

// ---- the connection ----

function onFrame(f) {
  switch (f.type) {
    case "snapshot":
      showMode(f.mode);
      showOperation(f.operation || "manual", f.plans);
      showOnline(f.online !== false);
      f.devices.forEach((d) => { if (devices.has(d.name)) { devices.get(d.name).state = d.state; showDevice(d.name); } });
      moveTrains(f.trains);
      boards.clear();
      f.boards.forEach((b) => boards.set(b.name, b));
      showBoards();
      (f.blocks || []).forEach(showBlock);
      break;
    case "block": showBlock(f); break;
    case "device":
      if (devices.has(f.name)) { devices.get(f.name).state = f.state; showDevice(f.name); }
      break;
    case "trains": moveTrains(f.trains); break;
    case "speed":
      if (trains.has(f.train)) {
        const tr = trains.get(f.train);
        tr.set = f.speed;
        tr.slider.value = f.speed;
        showTrain(f.train);
      }
      break;
    case "board": boards.set(f.name, f); showBoards(); break;
    case "mode": showMode(f.mode); logEvent(`mode ${f.mode.toUpperCase()}`); break;
    case "operation": showOperation(f.operation, f.operation === "manual" ? [] : [...plans.values()]); logEvent(t(f.operation)); break;
    case "plans": showOperation(operation, operation === "manual" ? [] : f.plans); break;
    case "online": showOnline(f.online); logEvent(t(f.online ? "track_online" : "track_offline")); break;
    case "event":
      logEvent(f.text);
      if (f.sensor) flash(f.sensor);
      break;
    default: answer(f);
  }
}

function answer(f) {
  const { what, isOperator } = pending.get(f.id) ?? { what: "", isOperator: false };
  pending.delete(f.id);
  const reason = f.reason ?? f.detail ?? "";
  const text = `${what ? what + ": " : ""}${t(f.type === "ack" ? "applied" : f.type)}${reason ? " — " + reason : ""}`;
  notice(f.type === "ack" ? "applied" : f.type, text);
  if (f.type !== "ack") logEvent(text);
  if (isOperator) $("operator-result").textContent = text;
}

function moveTrains(list) {
  for (const p of list) {
    const tr = trains.get(p.name);
    if (!tr) continue;
    tr.g.setAttribute("transform", `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`);
    tr.g.dataset.x = p.x;
    tr.g.dataset.y = p.y;
    // Its name where the layout's drawing placed it (the gateway sends the place), clear of the station names
    // and of the other trains' names, as the window draws it.
    if (p.label) {
      tr.label.setAttribute("x", (p.label[0] - p.x).toFixed(1));
      tr.label.setAttribute("y", (p.label[1] - p.y).toFixed(1));
    }
    tr.status = p.status;
    tr.speed = p.speed_mm_s;
    if (p.speed !== undefined) { tr.set = p.speed; tr.slider.value = p.speed; }
    showTrain(p.name);
  }
}

function flash(name) {
  const s = document.querySelector(`[data-sensor="${CSS.escape(name)}"]`);
  if (!s) return;
  s.classList.add("flash");
  setTimeout(() => s.classList.remove("flash"), 600);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(`${scheme}${location.host}/ws/v2`);
  socket.onopen = () => { retryMs = 500; showConn("connected"); };
  socket.onmessage = (e) => onFrame(JSON.parse(e.data));
  socket.onclose = () => {
    showConn("reconnecting");
    for (const { what } of pending.values()) logEvent(`${what}: ${t("no_answer")}`);
    pending.clear();
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 8000);
  };
}

async function start() {
  showConn("connecting");
  for (;;) {
    try {
      drawing = await (await fetch("/api/layout")).json();
      break;
    } catch (_) {
      showConn("reconnecting");
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  build();
  connect();
}

start();
