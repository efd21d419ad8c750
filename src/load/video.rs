//! `plarail-twin load video`: many WHEP viewers of one camera from one process, against a running gateway.
//! Reported: frames each viewer received against the frames the camera sent (from `/api/cameras`), the
//! end-to-end delay from each picture's capture timestamp to its arrival (read by the viewers that decode;
//! decoding every viewer would measure this tool's CPU, not the server), and the server's CPU and memory per
//! viewer (from `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use video::viewer::{Client, Seen};

/// Flags of `load video`.
#[derive(clap::Args)]
pub struct VideoLoadArgs {
    /// The gateway's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// WHEP viewers to open.
    #[arg(long, default_value_t = 200)]
    viewers: usize,
    /// The camera they watch (an id from `/api/cameras`).
    #[arg(long, default_value = "hachioji")]
    camera: String,
    /// How long frames are counted once every viewer is connected, e.g. `30s`, `2m` or `45` (seconds).
    #[arg(long, default_value = "30s", value_parser = crate::measure::parse_duration)]
    duration: Duration,
    /// Viewers that also decode and read each picture's capture time (the delay figures come from them).
    #[arg(long, default_value_t = 8)]
    decode: usize,
    /// Local UDP address the viewers bind (the gateway's `--webrtc-udp` must be reachable from it).
    #[arg(long, default_value = "127.0.0.1:0")]
    udp: String,
    /// Viewers connecting at once.
    #[arg(long, default_value_t = 16)]
    connect_concurrency: usize,
}

/// What the viewers saw, shared by their tasks.
#[derive(Default)]
struct Tally {
    frames: AtomicU64,
    gaps: AtomicU64,
    delays: std::sync::Mutex<Vec<u64>>,
    counting: std::sync::atomic::AtomicBool,
    refused: std::sync::Mutex<Option<String>>,
}

/// Runs the load; returns whether at least 99 % of the frames reached every viewer.
pub fn run(args: VideoLoadArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.viewers > 0, "--viewers must be positive");
    anyhow::ensure!(args.url.starts_with("http://"), "--url must be an http:// URL, e.g. http://127.0.0.1:8080");
    tokio::runtime::Runtime::new()?.block_on(load(args))
}

/// The camera's frames sent so far, from `/api/cameras`.
async fn frames_sent(base: &str, camera: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{base}/api/cameras")).await?.text().await?;
    let list: serde_json::Value = serde_json::from_str(&text).context("/api/cameras is not JSON")?;
    let entry = list
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == camera))
        .with_context(|| format!("the gateway has no camera `{camera}`"))?;
    Ok(entry["frames"].as_u64().unwrap_or(0))
}

/// The server's memory (bytes) and CPU time (seconds), from `/metrics`.
async fn server_usage(base: &str) -> (Option<f64>, Option<f64>) {
    let Ok(text) = async { reqwest::get(format!("{base}/metrics")).await?.text().await }.await else {
        return (None, None);
    };
    use crate::measure::metric;
    (metric(&text, "plarail_resident_bytes"), metric(&text, "plarail_cpu_seconds_total"))
}

async fn load(args: VideoLoadArgs) -> anyhow::Result<bool> {
    let base = args.url.trim_end_matches('/').to_string();
    frames_sent(&base, &args.camera).await?;
    let (rss_before, _) = server_usage(&base).await;
    let tally = Arc::new(Tally::default());
    let bar = ProgressBar::new(args.viewers as u64).with_style(
        ProgressStyle::with_template("connecting {pos}/{len} viewers {bar:30} {elapsed}").expect("template"),
    );
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let mut connecting = Vec::new();
    for i in 0..args.viewers {
        let (base, camera, udp, gate, tally, bar) =
            (base.clone(), args.camera.clone(), args.udp.clone(), gate.clone(), tally.clone(), bar.clone());
        let decode = i < args.decode;
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            let mut client = match Client::view(&base, &camera, &udp).await {
                Ok(c) => c,
                Err(e) => {
                    tally.refused.lock().expect("refused").get_or_insert(e.to_string());
                    return None;
                }
            };
            client.connected(Duration::from_secs(30)).await.ok()?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
            tokio::spawn(client.frames(decode, tx));
            tokio::spawn(async move {
                while let Some(seen) = rx.recv().await {
                    if !tally.counting.load(Ordering::Relaxed) {
                        continue;
                    }
                    tally.frames.fetch_add(1, Ordering::Relaxed);
                    tally.gaps.fetch_add(u64::from(seen.gap), Ordering::Relaxed);
                    if let Some(t) = seen.captured {
                        tally.delays.lock().expect("delays").push(video::strip::delay_ms(t, seen.arrived_ms));
                    }
                }
            });
            bar.inc(1);
            Some(client)
        }));
    }
    let mut clients = Vec::new();
    for c in connecting {
        if let Some(client) = c.await? {
            clients.push(client);
        }
    }
    bar.finish_and_clear();
    let connected = clients.len();
    anyhow::ensure!(connected > 0, "no viewer connected to {base}/whep/{}", args.camera);
    println!("{connected} of {} viewers connected to `{}`", args.viewers, args.camera);
    if let Some(why) = tally.refused.lock().expect("refused").take() {
        println!("a viewer was refused: {why} (all from one address: raise serve's --video-sessions-per-address)");
    }
    // A moment for every viewer's first keyframe, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_connected, cpu_start) = server_usage(&base).await;
    let sent_start = frames_sent(&base, &args.camera).await?;
    let started = Instant::now();
    tally.counting.store(true, Ordering::Relaxed);
    let run = ProgressBar::new(args.duration.as_secs())
        .with_style(ProgressStyle::with_template("watching {bar:30} {pos}/{len} s").expect("template"));
    while started.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.set_position(started.elapsed().as_secs());
    }
    tally.counting.store(false, Ordering::Relaxed);
    run.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let sent = frames_sent(&base, &args.camera).await? - sent_start;
    let (_, cpu_end) = server_usage(&base).await;
    let received = tally.frames.load(Ordering::Relaxed);
    let expected = sent * connected as u64;
    let share = if expected == 0 { 0.0 } else { received as f64 / expected as f64 };

    println!("frames sent by the camera: {sent} in {wall:.1} s ({:.1} fps)", sent as f64 / wall);
    println!(
        "frames received: {received} of {expected} ({:.2} %), packets missing: {}",
        share * 100.0,
        tally.gaps.load(Ordering::Relaxed)
    );
    let delays = std::mem::take(&mut *tally.delays.lock().expect("delays"));
    if delays.is_empty() {
        println!("delay: no picture carried a readable capture time");
    } else {
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        for d in &delays {
            h.record(*d).ok();
        }
        println!(
            "delay from capture to arrival ({} frames at {} decoding viewers): p50 {} ms, p99 {} ms, max {} ms",
            delays.len(),
            args.decode.min(connected),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max()
        );
    }
    if let (Some(a), Some(b)) = (cpu_start, cpu_end) {
        let cpu = (b - a) / wall;
        println!("server CPU: {:.0} % of one core ({:.2} % per viewer)", cpu * 100.0, cpu * 100.0 / connected as f64);
    }
    if let (Some(a), Some(b)) = (rss_before, rss_connected) {
        println!(
            "server memory: {:.1} MiB with the viewers, {:.0} KiB per viewer",
            b / 1048576.0,
            (b - a) / 1024.0 / connected as f64
        );
    }
    for c in clients {
        c.close().await;
    }
    Ok(share >= 0.99)
}
