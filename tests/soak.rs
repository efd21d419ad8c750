//! The soak: `serve` with a journal, clients of both WebSocket protocols coming and going and commanding for
//! minutes; the server's resident memory is sampled, and after a warm-up it must stay flat (the slope of a
//! least-squares line through the samples is printed and bounded). Ignored by plain `cargo test` (it takes
//! minutes); `.ci/run` runs it. `SOAK_SECONDS` sets its length (90 s by default).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::TwinProcess;

/// The most the resident memory may grow after the warm-up, in KiB per minute.
const MAX_SLOPE_KIB_PER_MIN: f64 = 1024.0;

/// The resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of KiB")
}

/// The least-squares slope of `points` (x, y).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

/// One visitor: connects, commands a few times, reads what comes, leaves.
async fn visitor(port: u16, n: u64) {
    let v2 = n.is_multiple_of(2);
    let path = if v2 { "ws/v2" } else { "ws" };
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/{path}")).await else {
        return;
    };
    for k in 0..3 {
        let state = if (n + k).is_multiple_of(2) { "ON" } else { "OFF" };
        let frame = if v2 {
            format!(r#"{{"id":{k},"cmd":"device","name":"chofu_b3","state":"{state}"}}"#)
        } else {
            format!(r#"{{"station_name":"chofu_b3","state":"{state}"}}"#)
        };
        if ws.send(Message::Text(frame.into())).await.is_err() {
            return;
        }
        // Read until the answer or the echo (or a second passes).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(m)) = ws.next().await {
                if m.to_text().is_ok_and(|t| t.contains("chofu_b3") || t.contains(r#""id""#)) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = ws.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of minutes: run by .ci/run"]
async fn memory_stays_flat_while_clients_come_and_go() {
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(90);
    let dir = tempfile::tempdir().unwrap();
    let mut served = TwinProcess::serve(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--history-keep",
        "2000",
        "--rate-per-connection",
        "1000",
        "--rate-per-address",
        "100000",
    ])
    .await;
    let (port, pid) = (served.port, served.child.id());
    // Visitors arrive at 20 a second, eight at a time at most, for the whole soak.
    let run = Duration::from_secs(seconds);
    let arrivals = tokio::spawn(async move {
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
        let begun = Instant::now();
        let mut n = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while begun.elapsed() < run {
            tick.tick().await;
            let permit = limit.clone().acquire_owned().await.unwrap();
            tokio::spawn(async move {
                visitor(port, n).await;
                drop(permit);
            });
            n += 1;
        }
        n
    });
    let mut samples = Vec::new();
    let begun = Instant::now();
    while begun.elapsed() < run {
        tokio::time::sleep(Duration::from_secs(2)).await;
        samples.push((begun.elapsed().as_secs_f64() / 60.0, rss_kib(pid)));
    }
    let visitors = arrivals.await.unwrap();
    served.kill();
    // The first third is warm-up (caches, the journal's pages, the allocator's arenas).
    let settled = &samples[samples.len() / 3..];
    let kib_per_min = slope(settled);
    let (first, last) = (settled[0].1, settled[settled.len() - 1].1);
    println!(
        "soak: {seconds} s, {visitors} visitors; resident memory {first:.0} -> {last:.0} KiB after warm-up, slope \
         {kib_per_min:.0} KiB/min"
    );
    assert!(visitors as f64 >= seconds as f64 * 10.0, "the visitors came: {visitors}");
    assert!(kib_per_min < MAX_SLOPE_KIB_PER_MIN, "memory grows {kib_per_min:.0} KiB/min after warm-up: {samples:?}");
}
