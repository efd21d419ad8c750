//! `plarail-twin load`: many WebSocket clients against a running gateway. Commanders send switch commands over
//! the v2 protocol at a steady rate; every client watches the feed at the given URL (`/ws` for the 2021
//! protocol, `/ws/v2` for v2). Reported: latency from a command to its broadcast being seen by every client,
//! messages delivered per second, updates lost, and the server's memory per idle client (from `/metrics`).
//!
//! Only switches are commanded: they change only by command, so every change a client sees is one of ours.
//! One command per switch is in flight at a time; the next waits until every client has seen the last.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

/// Flags of `load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// WebSocket URL the clients watch: `ws://HOST:PORT/ws` (2021 protocol) or `ws://HOST:PORT/ws/v2`.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Clients watching the feed.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Commands per second (switch toggles, sent over `/ws/v2` by a few commander connections). The server's
    /// `--rate-per-address` must allow this many from one address.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long commands are sent, e.g. `30s`, `2m` or `45` (seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Connections opened at once while connecting the clients.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.strip_suffix('m') {
        Some(n) => (n, 60.0),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(Duration::from_secs_f64(n * unit)),
        _ => Err(format!("`{s}` is not a duration like 30s, 2m or 45")),
    }
}

/// A command in flight: sent, waiting for its ack and for every client to see it.
struct Flight {
    id: u64,
    on: bool,
    sent: Instant,
    seen: usize,
    last_seen: Instant,
    acked: bool,
}

/// One switch as the load tool follows it.
#[derive(Default)]
struct Slot {
    state: Option<bool>,
    flight: Option<Flight>,
}

/// What every task shares.
struct Shared {
    switches: HashMap<String, usize>,
    names: Vec<String>,
    slots: Vec<Mutex<Slot>>,
    ids: Mutex<HashMap<u64, usize>>,
    clients: usize,
    messages: AtomicU64,
    latencies: Mutex<Histogram<u64>>,
    applied: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    /// A client saw switch `idx` change to `on`.
    fn seen(&self, idx: usize, on: bool) {
        let mut slot = self.slots[idx].lock().expect("slot lock");
        if let Some(f) = slot.flight.as_mut().filter(|f| f.on == on) {
            f.seen += 1;
            f.last_seen = Instant::now();
        }
        self.complete(&mut slot);
    }

    /// The commander's answer to command `id`.
    fn answered(&self, id: u64, kind: &str) {
        let Some(idx) = self.ids.lock().expect("ids lock").remove(&id) else { return };
        let mut slot = self.slots[idx].lock().expect("slot lock");
        match kind {
            "ack" => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = slot.flight.as_mut() {
                    f.acked = true;
                }
                self.complete(&mut slot);
            }
            _ => {
                let counter = if kind == "rejected" { &self.rejected } else { &self.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                slot.flight = None;
            }
        }
    }

    /// Records the latency and frees the switch once the command is acked and every client has seen it.
    fn complete(&self, slot: &mut Slot) {
        if let Some(f) = slot.flight.as_ref().filter(|f| f.acked && f.seen >= self.clients) {
            let micros = f.last_seen.duration_since(f.sent).as_micros() as u64;
            self.latencies.lock().expect("histogram lock").record(micros.max(1)).expect("latency in range");
            slot.state = Some(f.on);
            slot.flight = None;
        }
    }
}

/// A frame of either protocol, read only as far as device changes go.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    station_name: Option<&'a str>,
    name: Option<&'a str>,
    state: Option<&'a str>,
    id: Option<u64>,
    devices: Option<Vec<DeviceEntry>>,
    boards: Option<Vec<BoardEntry>>,
}

#[derive(Deserialize)]
struct BoardEntry {
    restoring: bool,
}

#[derive(Deserialize)]
struct DeviceEntry {
    name: String,
    kind: String,
    state: Option<String>,
}

impl<'a> Frame<'a> {
    /// The device and its new state, if this frame reports a device change.
    fn device(&self) -> Option<(&'a str, bool)> {
        let name = match self.kind {
            None => self.station_name?,
            Some("device") => self.name?,
            Some(_) => return None,
        };
        Some((name, self.state? == "ON"))
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs the load; returns whether no update was lost.
pub fn run(args: LoadArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.clients > 0 && args.rate > 0.0, "--clients and --rate must be positive");
    anyhow::ensure!(args.url.starts_with("ws://"), "--url must be a ws:// URL, e.g. ws://127.0.0.1:8080/ws");
    tokio::runtime::Runtime::new()?.block_on(load(args))
}

async fn load(args: LoadArgs) -> anyhow::Result<bool> {
    let base = args.url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string();
    let v2_url = format!("ws://{base}/ws/v2");
    let metrics_url = format!("http://{base}/metrics");

    // The switches and their states, from a v2 snapshot taken once no board is being restored (commands to a
    // board being restored fail).
    let started = Instant::now();
    let switches = loop {
        let (mut probe, _) = connect(&v2_url).await.with_context(|| format!("cannot open {v2_url}"))?;
        let snapshot = next_text(&mut probe).await.context("no snapshot from the gateway")?;
        let frame: Frame = serde_json::from_str(&snapshot).context("the first v2 frame is not a snapshot")?;
        if frame.boards.as_deref().unwrap_or_default().iter().all(|b| !b.restoring)
            || started.elapsed() > Duration::from_secs(120)
        {
            break frame.devices.context("no devices in the snapshot")?;
        }
        eprintln!("waiting for the gateway to finish restoring its boards");
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let switches: Vec<DeviceEntry> = switches.into_iter().filter(|d| d.kind == "switch").collect();
    anyhow::ensure!(!switches.is_empty(), "the layout has no switches to command");
    let shared = Arc::new(Shared {
        switches: switches.iter().enumerate().map(|(i, d)| (d.name.clone(), i)).collect(),
        names: switches.iter().map(|d| d.name.clone()).collect(),
        slots: switches
            .iter()
            .map(|d| Mutex::new(Slot { state: d.state.as_deref().map(|s| s == "ON"), flight: None }))
            .collect(),
        ids: Mutex::default(),
        clients: args.clients,
        messages: AtomicU64::new(0),
        latencies: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")),
        applied: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });

    let before = resident_bytes(&metrics_url).await;
    let bar = ProgressBar::new(args.clients as u64);
    bar.set_style(
        ProgressStyle::with_template("connecting {pos}/{len} clients [{bar:40}] {elapsed}")?.progress_chars("=> "),
    );
    let mut open = futures_util::stream::iter(0..args.clients)
        .map(|_| connect(&args.url))
        .buffer_unordered(args.connect_concurrency.max(1));
    let mut watchers = tokio::task::JoinSet::new();
    while let Some(ws) = open.next().await {
        let (ws, _) = ws.with_context(|| format!("cannot open {}", args.url))?;
        watchers.spawn(watch(ws, shared.clone()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(open);
    // Let the first frames settle and the server sample its memory.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = resident_bytes(&metrics_url).await;

    let commanders = (args.rate / 8.0).ceil() as usize;
    let mut outboxes = Vec::new();
    for _ in 0..commanders {
        let (ws, _) = connect(&v2_url).await.with_context(|| format!("cannot open {v2_url}"))?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        });
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                if let Ok(f) = serde_json::from_str::<Frame>(text.as_str())
                    && let (Some(id), Some(kind)) = (f.id, f.kind)
                {
                    shared.answered(id, kind);
                }
            }
        });
        outboxes.push(tx);
    }

    let messages_at_start = shared.messages.load(Ordering::Relaxed);
    let started = Instant::now();
    let bar = ProgressBar::new(args.duration.as_secs());
    bar.set_style(ProgressStyle::with_template("load {pos}/{len} s [{bar:40}] {msg}")?.progress_chars("=> "));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut sent, mut busy, mut next_id, mut cursor) = (0u64, 0u64, 1u64, 0usize);
    while started.elapsed() < args.duration {
        tick.tick().await;
        // The next switch with no command in flight.
        let n = shared.slots.len();
        let free = (0..n).map(|k| (cursor + k) % n).find(|&i| {
            let slot = shared.slots[i].lock().expect("slot lock");
            slot.flight.is_none() && slot.state.is_some()
        });
        let Some(idx) = free else {
            busy += 1;
            continue;
        };
        cursor = idx + 1;
        let id = next_id;
        next_id += 1;
        let on = {
            let mut slot = shared.slots[idx].lock().expect("slot lock");
            let on = !slot.state.expect("known state");
            let now = Instant::now();
            slot.flight = Some(Flight { id, on, sent: now, seen: 0, last_seen: now, acked: false });
            on
        };
        shared.ids.lock().expect("ids lock").insert(id, idx);
        let state = if on { "ON" } else { "OFF" };
        let command = serde_json::json!({ "id": id, "cmd": "device", "name": shared.names[idx], "state": state });
        outboxes[(id as usize) % commanders].send(command.to_string()).context("a commander connection closed")?;
        sent += 1;
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(format!("{sent} sent, {} applied", shared.applied.load(Ordering::Relaxed)));
    }
    let elapsed = started.elapsed();
    let messages = shared.messages.load(Ordering::Relaxed) - messages_at_start;
    // Give the last commands time to arrive everywhere.
    let grace = Instant::now();
    while shared.slots.iter().any(|s| s.lock().expect("slot lock").flight.is_some())
        && grace.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    let (mut lost, mut unanswered) = (0, 0);
    for (i, slot) in shared.slots.iter().enumerate() {
        if let Some(f) = &slot.lock().expect("slot lock").flight {
            if f.acked {
                lost += 1;
                println!(
                    "lost: {} {} (command {}) seen by {} of {} clients",
                    shared.names[i],
                    if f.on { "ON" } else { "OFF" },
                    f.id,
                    f.seen,
                    args.clients
                );
            } else {
                unanswered += 1;
            }
        }
    }
    let closed = watchers.len();
    watchers.abort_all();

    let h = shared.latencies.lock().expect("histogram lock");
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "clients: {} watching {} (all connected: {}), commands over {} commander connections",
        args.clients,
        args.url,
        closed == args.clients,
        commanders
    );
    println!(
        "commands: {sent} sent in {:.1} s ({:.1}/s), {} applied, {} rejected, {} failed, {unanswered} unanswered, {busy} ticks with every switch busy",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        shared.applied.load(Ordering::Relaxed),
        shared.rejected.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed),
    );
    if h.is_empty() {
        println!("latency: no applied command was seen by every client");
    } else {
        println!(
            "latency, command to broadcast seen by every client ({} samples): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.len(),
            ms(0.5),
            ms(0.95),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
    println!("messages delivered: {messages} ({:.0}/s)", messages as f64 / elapsed.as_secs_f64());
    println!("updates lost: {lost}");
    match (before, idle) {
        (Some(b), Some(i)) => println!(
            "server memory: {:.1} MiB before, {:.1} MiB with the clients idle: {:.1} KiB per idle client",
            b / 1048576.0,
            i / 1048576.0,
            (i - b) / 1024.0 / args.clients as f64
        ),
        _ => println!("server memory: not reported (no plarail_resident_bytes at {metrics_url})"),
    }
    Ok(lost == 0)
}

/// One watching client: counts every frame, and reports switch changes.
async fn watch(mut ws: Ws, shared: Arc<Shared>) {
    let mut known: Vec<Option<bool>> = vec![None; shared.slots.len()];
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        shared.messages.fetch_add(1, Ordering::Relaxed);
        let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
        if let Some((name, on)) = frame.device()
            && let Some(&idx) = shared.switches.get(name)
            && known[idx] != Some(on)
        {
            known[idx] = Some(on);
            shared.seen(idx, on);
        }
    }
}

/// Opens a client WebSocket with a small read buffer (the default 128 KiB is zeroed on every read).
async fn connect(
    url: &str,
) -> tokio_tungstenite::tungstenite::Result<(Ws, tokio_tungstenite::tungstenite::handshake::client::Response)> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    tokio_tungstenite::connect_async_with_config(url, Some(config), false).await
}

async fn next_text(ws: &mut Ws) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// The server's `plarail_resident_bytes`, if it reports it.
async fn resident_bytes(url: &str) -> Option<f64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("plarail_resident_bytes ")).and_then(|v| v.trim().parse().ok())
}
