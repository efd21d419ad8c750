//! `plarail-twin load`: many WebSocket clients against a running gateway, the twin's or any server that speaks
//! the 2021 protocol on `/ws`. Commanders send switch commands at a steady rate, one commander connection per
//! switch (as visitors each have their own phone: a session carries out its client's commands one at a time,
//! in order), over v2 where the server has `/ws/v2` (each command answered by id), else over the 2021 protocol
//! (where an error frame is then the answer to that switch's command). Every client watches the feed at the given URL (`/ws` for the
//! 2021 protocol, `/ws/v2` for v2). Reported: latency from a command to its broadcast being seen by every
//! client, messages delivered per second, commands the server refused (and whether its rate limits were hit)
//! apart from updates lost, and the server's memory per idle client (from `/metrics`, where it has one).
//!
//! Only switches are commanded: they change only by command, so every change a client sees is one of ours.
//! One command per switch is in flight at a time; the next waits until every client has seen the last.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use gateway::wire::{v2, v2021};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use sim::layout::{DeviceKind, OnOff};
use tokio_tungstenite::tungstenite::Message;

/// Flags of `load` (WebSocket clients), or `load video`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadArgs {
    /// What else to load (without one: WebSocket clients).
    #[command(subcommand)]
    kind: Option<LoadKind>,
    /// WebSocket URL the clients watch: `ws://HOST:PORT/ws` (2021 protocol) or `ws://HOST:PORT/ws/v2`; several
    /// (repeat `--url`, or separate with commas: e.g. the edges of one core) share the clients and the commander
    /// connections in turn.
    #[arg(long, value_delimiter = ',', default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    /// Clients watching the feed.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Commands per second (switch toggles, sent over `/ws/v2` by a few commander connections). The server's
    /// `--rate-per-address` must allow this many from one address.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long commands are sent, e.g. `30s`, `2m` or `45` (seconds).
    #[arg(long, default_value = "30s", value_parser = crate::measure::parse_duration)]
    duration: Duration,
    /// Connections opened at once while connecting the clients.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// The protocol commands are sent in: `v2` (needs `/ws/v2`), `2021` (over `/ws`), or `auto` (v2 where the
    /// server has it).
    #[arg(long, value_enum, default_value_t = CommandProtocol::Auto)]
    commands: CommandProtocol,
    /// The switches to command, comma-separated; default: the layout's switches (v2), or in the 2021 protocol
    /// the devices named like 2021's switches (`chofu_b1`: a `_b` and a number).
    #[arg(long, value_delimiter = ',')]
    switches: Vec<String>,
}

/// Loads other than WebSocket clients.
#[derive(clap::Subcommand)]
enum LoadKind {
    /// Many WHEP viewers of one camera: frames received against sent, delay from capture (p50/p99), the
    /// server's CPU and memory per viewer.
    Video(crate::load_video::VideoLoadArgs),
}

/// The protocol of the commands.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CommandProtocol {
    /// v2 where the server has `/ws/v2`, else 2021.
    Auto,
    /// v2 on `/ws/v2`.
    V2,
    /// The 2021 protocol on `/ws`.
    #[value(name = "2021")]
    V2021,
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
    refused: AtomicU64,
    limited: AtomicU64,
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

    /// The v2 commander's answer to command `id`.
    fn answered(&self, id: u64, refusal: Option<&str>) {
        let Some(idx) = self.ids.lock().expect("ids lock").remove(&id) else { return };
        match refusal {
            None => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                let mut slot = self.slots[idx].lock().expect("slot lock");
                if let Some(f) = slot.flight.as_mut() {
                    f.acked = true;
                }
                self.complete(&mut slot);
            }
            Some(reason) => self.refused(idx, reason),
        }
    }

    /// The server refused the command in flight for switch `idx` (or did not carry it out).
    fn refused(&self, idx: usize, reason: &str) {
        let counter = if reason.contains("too many commands") { &self.limited } else { &self.refused };
        counter.fetch_add(1, Ordering::Relaxed);
        self.slots[idx].lock().expect("slot lock").flight = None;
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

/// A device change in a frame of either protocol, if it is one. A 2021 device frame is read without
/// allocating: a thousand clients read every frame on the cores the server runs on.
fn device_change(text: &str, protocol_v2: bool, f: impl FnOnce(&str, OnOff)) {
    if protocol_v2 {
        if let Ok(v2::ServerFrame::Device(v2::Device { name, state: Some(state), .. })) = v2::ServerFrame::decode(text)
        {
            f(&name, state);
        }
    } else if let Ok(d) = serde_json::from_str::<v2021::DeviceFrame<&str>>(text) {
        f(d.station_name, d.state);
    }
}

/// A switch to command and its state when the load starts.
struct Switch {
    name: String,
    state: Option<OnOff>,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs the load; returns whether no update was lost.
pub fn run(args: LoadArgs) -> anyhow::Result<bool> {
    if let Some(LoadKind::Video(video)) = args.kind {
        return crate::load_video::run(video);
    }
    anyhow::ensure!(args.clients > 0 && args.rate > 0.0, "--clients and --rate must be positive");
    for url in &args.url {
        anyhow::ensure!(url.starts_with("ws://"), "--url {url}: a ws:// URL, e.g. ws://127.0.0.1:8080/ws");
    }
    let v2 = |u: &String| u.trim_end_matches('/').ends_with("/ws/v2");
    anyhow::ensure!(
        args.url.iter().all(v2) || !args.url.iter().any(v2),
        "--url: every URL watches the same protocol (/ws or /ws/v2)"
    );
    tokio::runtime::Runtime::new()?.block_on(load(args))
}

async fn load(args: LoadArgs) -> anyhow::Result<bool> {
    let bases: Vec<String> = args
        .url
        .iter()
        .map(|u| u.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string())
        .collect();
    let v2_urls: Vec<String> = bases.iter().map(|b| format!("ws://{b}/ws/v2")).collect();
    let urls_2021: Vec<String> = bases.iter().map(|b| format!("ws://{b}/ws")).collect();
    let metrics_urls: Vec<String> = bases.iter().map(|b| format!("http://{b}/metrics")).collect();
    let (v2_url, url_2021) = (&v2_urls[0], &urls_2021[0]);
    let watch_v2 = args.url[0].trim_end_matches('/').ends_with("/ws/v2");

    let commands_v2 = match args.commands {
        CommandProtocol::V2 => true,
        CommandProtocol::V2021 => false,
        CommandProtocol::Auto => connect(v2_url).await.is_ok(),
    };
    let switches = if commands_v2 { switches_v2(v2_url).await? } else { switches_2021(url_2021).await? };
    let switches: Vec<Switch> = if args.switches.is_empty() {
        switches
    } else {
        let known: HashMap<String, Option<OnOff>> = switches.into_iter().map(|s| (s.name, s.state)).collect();
        args.switches
            .iter()
            .map(|name| match known.get(name) {
                Some(&state) => Ok(Switch { name: name.clone(), state }),
                None => anyhow::bail!("--switches {name}: the server reports no such device"),
            })
            .collect::<anyhow::Result<_>>()?
    };
    anyhow::ensure!(!switches.is_empty(), "the server reports no switches to command (name some with --switches)");
    let shared = Arc::new(Shared {
        switches: switches.iter().enumerate().map(|(i, d)| (d.name.clone(), i)).collect(),
        names: switches.iter().map(|d| d.name.clone()).collect(),
        slots: switches
            .iter()
            .map(|d| Mutex::new(Slot { state: d.state.map(|s| s == OnOff::On), flight: None }))
            .collect(),
        ids: Mutex::default(),
        clients: args.clients,
        messages: AtomicU64::new(0),
        latencies: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")),
        applied: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        limited: AtomicU64::new(0),
    });

    let before = resident_bytes(&metrics_urls).await;
    let bar = ProgressBar::new(args.clients as u64);
    bar.set_style(
        ProgressStyle::with_template("connecting {pos}/{len} clients [{bar:40}] {elapsed}")?.progress_chars("=> "),
    );
    let mut open = futures_util::stream::iter(0..args.clients)
        .map(|i| {
            let url = &args.url[i % args.url.len()];
            async move { (url, connect(url).await) }
        })
        .buffer_unordered(args.connect_concurrency.max(1));
    let mut watchers = tokio::task::JoinSet::new();
    while let Some((url, ws)) = open.next().await {
        let (ws, _) = ws.with_context(|| format!("cannot open {url}"))?;
        watchers.spawn(watch(ws, shared.clone(), watch_v2));
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(open);
    // Let the first frames settle and the server sample its memory.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = resident_bytes(&metrics_urls).await;

    // One connection per switch: a session carries out its commands one at a time, so a command for a slow board
    // holds up only the next command of its own switch (in 2021, an error frame is then that switch's answer).
    let commanders = switches.len();
    let mut outboxes = Vec::new();
    for k in 0..commanders {
        let url = if commands_v2 { &v2_urls[k % bases.len()] } else { &urls_2021[k % bases.len()] };
        let (ws, _) = connect(url).await.with_context(|| format!("cannot open {url}"))?;
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
                if commands_v2 {
                    match v2::ServerFrame::decode(text.as_str()) {
                        Ok(v2::ServerFrame::Ack { id, .. }) => shared.answered(id, None),
                        Ok(
                            v2::ServerFrame::Rejected { id, reason, .. }
                            | v2::ServerFrame::Failed { id, reason }
                            | v2::ServerFrame::Denied { id, reason }
                            | v2::ServerFrame::Error { id: Some(id), reason },
                        ) => shared.answered(id, Some(&reason)),
                        _ => {}
                    }
                } else if let Ok(v2021::ServerFrame::Error { error }) = v2021::ServerFrame::decode(text.as_str()) {
                    shared.refused(k, &error);
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
            // A 2021 command has no answer but the broadcast itself.
            slot.flight = Some(Flight { id, on, sent: now, seen: 0, last_seen: now, acked: !commands_v2 });
            on
        };
        let state = if on { OnOff::On } else { OnOff::Off };
        let name = shared.names[idx].clone();
        let (outbox, command) = if commands_v2 {
            shared.ids.lock().expect("ids lock").insert(id, idx);
            let command = v2::ClientFrame { id, command: v2::Command::Device { name, state } };
            (&outboxes[idx], command.encode())
        } else {
            shared.applied.fetch_add(1, Ordering::Relaxed);
            let command = v2021::ClientFrame::Device(v2021::DeviceFrame { station_name: name, state });
            (&outboxes[idx], command.encode())
        };
        outbox.send(command).context("a commander connection closed")?;
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
        "clients: {} watching {} (all connected: {}), commands in the {} protocol over {} commander connections",
        args.clients,
        args.url.join(", "),
        closed == args.clients,
        if commands_v2 { "v2" } else { "2021" },
        commanders
    );
    let (refused, limited) = (shared.refused.load(Ordering::Relaxed), shared.limited.load(Ordering::Relaxed));
    println!(
        "commands: {sent} sent in {:.1} s ({:.1}/s), {} carried out, {refused} refused by the server, {limited} refused by its rate limits, {unanswered} unanswered, {busy} ticks with every switch busy",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        shared.applied.load(Ordering::Relaxed) - if commands_v2 { 0 } else { refused + limited },
    );
    if limited > 0 {
        println!(
            "rate limits: the server's limits were hit ({limited} commands refused); raise its --rate-per-address and --rate-per-connection or lower --rate"
        );
    }
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
            "server memory{}: {:.1} MiB before, {:.1} MiB with the clients idle: {:.1} KiB per idle client",
            if bases.len() > 1 { format!(" (the {} servers together)", bases.len()) } else { String::new() },
            b / 1048576.0,
            i / 1048576.0,
            (i - b) / 1024.0 / args.clients as f64
        ),
        _ => println!("server memory: not reported (no plarail_resident_bytes at {})", metrics_urls.join(", ")),
    }
    Ok(lost == 0)
}

/// The switches and their states, from a v2 snapshot taken once no board is being restored (commands to a
/// board being restored fail).
async fn switches_v2(url: &str) -> anyhow::Result<Vec<Switch>> {
    let started = Instant::now();
    loop {
        let (mut probe, _) = connect(url).await.with_context(|| format!("cannot open {url}"))?;
        let first = next_text(&mut probe).await.context("no snapshot from the gateway")?;
        let Ok(v2::ServerFrame::Snapshot(state)) = v2::ServerFrame::decode(&first) else {
            anyhow::bail!("the first v2 frame is not a snapshot: {first}");
        };
        if state.boards.iter().all(|b| !b.restoring) || started.elapsed() > Duration::from_secs(120) {
            return Ok(state
                .devices
                .into_iter()
                .filter(|d| d.kind == Some(DeviceKind::Switch))
                .map(|d| Switch { name: d.name, state: d.state })
                .collect());
        }
        eprintln!("waiting for the gateway to finish restoring its boards");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The devices named like 2021's switches (`chofu_b1`) and their states, learnt from a 2021 feed: the server
/// sends every device's state every 2 seconds.
async fn switches_2021(url: &str) -> anyhow::Result<Vec<Switch>> {
    let (mut ws, _) = connect(url).await.with_context(|| format!("cannot open {url}"))?;
    let mut states: std::collections::BTreeMap<String, OnOff> = Default::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(text) = msg {
            device_change(text.as_str(), false, |name, state| {
                states.insert(name.to_string(), state);
            });
        }
    }
    anyhow::ensure!(!states.is_empty(), "{url} sent no device state within 3 s");
    let switch_2021 = |name: &str| {
        name.rsplit_once("_b").is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    Ok(states
        .into_iter()
        .filter(|(name, _)| switch_2021(name))
        .map(|(name, state)| Switch { name, state: Some(state) })
        .collect())
}

/// One watching client: counts every frame, and reports switch changes.
async fn watch(mut ws: Ws, shared: Arc<Shared>, protocol_v2: bool) {
    let mut known: Vec<Option<bool>> = vec![None; shared.slots.len()];
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        shared.messages.fetch_add(1, Ordering::Relaxed);
        device_change(text.as_str(), protocol_v2, |name, state| {
            let on = state == OnOff::On;
            if let Some(&idx) = shared.switches.get(name)
                && known[idx] != Some(on)
            {
                known[idx] = Some(on);
                shared.seen(idx, on);
            }
        });
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

/// The servers' resident memory together, if every one reports it.
async fn resident_bytes(urls: &[String]) -> Option<f64> {
    let mut total = 0.0;
    for url in urls {
        total += resident_bytes_of(url).await?;
    }
    Some(total)
}

/// The server's `plarail_resident_bytes`, if it reports it.
async fn resident_bytes_of(url: &str) -> Option<f64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    crate::measure::metric(&text, "plarail_resident_bytes")
}
