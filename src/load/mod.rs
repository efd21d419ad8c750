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

//!
//! Its modules: `switches` (which switches, their states at the start), `clients` (what the clients share,
//! watching, connecting), `report` (what is printed), `video` (`load video`: many WHEP viewers of one camera).

mod clients;
mod report;
mod switches;
mod video;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use sim::layout::OnOff;
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;
use wire::{v2, v2021};

use self::clients::{Flight, Shared, connect, watch};
use self::report::{Report, resident_bytes};

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
    Video(video::VideoLoadArgs),
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

/// Runs the load; returns whether no update was lost.
pub fn run(args: LoadArgs) -> anyhow::Result<bool> {
    if let Some(LoadKind::Video(video)) = args.kind {
        return video::run(video);
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

/// Where the servers are: each one's v2 and 2021 feeds and metrics, from the `--url`s.
struct Servers {
    v2: Vec<String>,
    v2021: Vec<String>,
    metrics: Vec<String>,
}

impl Servers {
    fn of(urls: &[String]) -> Servers {
        let bases: Vec<&str> =
            urls.iter().map(|u| u.trim_start_matches("ws://").split('/').next().unwrap_or_default()).collect();
        Servers {
            v2: bases.iter().map(|b| format!("ws://{b}/ws/v2")).collect(),
            v2021: bases.iter().map(|b| format!("ws://{b}/ws")).collect(),
            metrics: bases.iter().map(|b| format!("http://{b}/metrics")).collect(),
        }
    }
}

/// What sending the commands did.
struct Sent {
    sent: u64,
    busy: u64,
    elapsed: Duration,
    messages: u64,
}

async fn load(args: LoadArgs) -> anyhow::Result<bool> {
    let servers = Servers::of(&args.url);
    let watch_v2 = args.url[0].trim_end_matches('/').ends_with("/ws/v2");
    let commands_v2 = match args.commands {
        CommandProtocol::V2 => true,
        CommandProtocol::V2021 => false,
        CommandProtocol::Auto => connect(&servers.v2[0]).await.is_ok(),
    };
    let switches = switches::chosen(&args.switches, commands_v2, &servers.v2[0], &servers.v2021[0]).await?;
    let shared = Arc::new(Shared::new(&switches, args.clients));

    let before = resident_bytes(&servers.metrics).await;
    let mut watchers = open_watchers(&args, &shared, watch_v2).await?;
    // Let the first frames settle and the server sample its memory.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = resident_bytes(&servers.metrics).await;

    let urls = if commands_v2 { &servers.v2 } else { &servers.v2021 };
    let outboxes = open_commanders(urls, switches.len(), commands_v2, &shared).await?;
    let sent = send_commands(&args, &shared, &outboxes, commands_v2).await?;
    let all_connected = watchers.len() == args.clients;
    watchers.abort_all();

    let report = Report::of(&shared, &args, &sent, commands_v2, all_connected);
    report.print(&args, &servers.metrics, before, idle);
    Ok(report.lost == 0)
}

/// Connects the watching clients, in turn over the `--url`s, with a progress bar.
async fn open_watchers(
    args: &LoadArgs,
    shared: &Arc<Shared>,
    watch_v2: bool,
) -> anyhow::Result<tokio::task::JoinSet<()>> {
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
    Ok(watchers)
}

/// One connection per switch, in turn over `urls`: a session carries out its commands one at a time, so a
/// command for a slow board holds up only the next command of its own switch (in 2021, an error frame is then
/// that switch's answer). Returns each one's outbox.
async fn open_commanders(
    urls: &[String],
    commanders: usize,
    commands_v2: bool,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<UnboundedSender<String>>> {
    let mut outboxes = Vec::new();
    for k in 0..commanders {
        let url = &urls[k % urls.len()];
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
    Ok(outboxes)
}

/// Sends `--rate` commands a second for `--duration`, each to the next switch with none in flight, then waits
/// (up to 10 s) for the last ones to arrive everywhere.
async fn send_commands(
    args: &LoadArgs,
    shared: &Shared,
    outboxes: &[UnboundedSender<String>],
    commands_v2: bool,
) -> anyhow::Result<Sent> {
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
            let echo_counts = std::mem::take(&mut slot.uncertain);
            slot.flight = Some(Flight { id, on, sent: now, seen: 0, last_seen: now, acked: !commands_v2, echo_counts });
            on
        };
        let state = if on { OnOff::On } else { OnOff::Off };
        let name = shared.names[idx].clone();
        let command = if commands_v2 {
            shared.ids.lock().expect("ids lock").insert(id, idx);
            v2::ClientFrame { id, command: v2::Command::Device { name, state } }.encode()
        } else {
            shared.applied.fetch_add(1, Ordering::Relaxed);
            v2021::ClientFrame::Device(v2021::DeviceFrame { station_name: name, state }).encode()
        };
        outboxes[idx].send(command).context("a commander connection closed")?;
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
    Ok(Sent { sent, busy, elapsed, messages })
}
