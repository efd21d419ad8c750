//! What `load` prints: commands sent and carried out, latency, messages, updates lost, the server's memory.

use std::sync::atomic::Ordering;

use super::clients::Shared;
use super::{LoadArgs, Sent};

/// The outcome of a load, read from what the clients shared.
pub struct Report {
    /// Commands acknowledged that not every client saw: one line each.
    lost_lines: Vec<String>,
    /// How many of them.
    pub lost: usize,
    unanswered: usize,
    commands_v2: bool,
    all_connected: bool,
    sent: u64,
    busy: u64,
    elapsed_s: f64,
    messages: u64,
    applied: u64,
    refused: u64,
    limited: u64,
    commanders: usize,
    /// Latency quantiles (p50, p95, p99, max) in ms, and the samples, if any command was seen by every client.
    latency: Option<([f64; 4], u64)>,
}

impl Report {
    /// Reads the outcome once the commands are sent.
    pub fn of(shared: &Shared, args: &LoadArgs, sent: &Sent, commands_v2: bool, all_connected: bool) -> Report {
        let (mut lost_lines, mut unanswered) = (Vec::new(), 0);
        for (i, slot) in shared.slots.iter().enumerate() {
            if let Some(f) = &slot.lock().expect("slot lock").flight {
                if f.acked {
                    lost_lines.push(format!(
                        "lost: {} {} (command {}) seen by {} of {} clients",
                        shared.names[i],
                        if f.on { "ON" } else { "OFF" },
                        f.id,
                        f.seen,
                        args.clients
                    ));
                } else {
                    unanswered += 1;
                }
            }
        }
        let h = shared.latencies.lock().expect("histogram lock");
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let latency = (!h.is_empty()).then(|| ([ms(0.5), ms(0.95), ms(0.99), h.max() as f64 / 1000.0], h.len()));
        Report {
            lost: lost_lines.len(),
            lost_lines,
            unanswered,
            commands_v2,
            all_connected,
            sent: sent.sent,
            busy: sent.busy,
            elapsed_s: sent.elapsed.as_secs_f64(),
            messages: sent.messages,
            applied: shared.applied.load(Ordering::Relaxed),
            refused: shared.refused.load(Ordering::Relaxed),
            limited: shared.limited.load(Ordering::Relaxed),
            commanders: shared.slots.len(),
            latency,
        }
    }

    /// Prints the report, with the servers' memory before the clients (`before`) and with them idle (`idle`).
    pub fn print(&self, args: &LoadArgs, metrics_urls: &[String], before: Option<f64>, idle: Option<f64>) {
        for line in &self.lost_lines {
            println!("{line}");
        }
        let (refused, limited) = (self.refused, self.limited);
        println!(
            "clients: {} watching {} (all connected: {}), commands in the {} protocol over {} commander connections",
            args.clients,
            args.url.join(", "),
            self.all_connected,
            if self.commands_v2 { "v2" } else { "2021" },
            self.commanders
        );
        println!(
            "commands: {} sent in {:.1} s ({:.1}/s), {} carried out, {refused} refused by the server, {limited} refused by its rate limits, {} unanswered, {} ticks with every switch busy",
            self.sent,
            self.elapsed_s,
            self.sent as f64 / self.elapsed_s,
            self.applied - if self.commands_v2 { 0 } else { refused + limited },
            self.unanswered,
            self.busy,
        );
        if limited > 0 {
            println!(
                "rate limits: the server's limits were hit ({limited} commands refused); raise its --rate-per-address and --rate-per-connection or lower --rate"
            );
        }
        match self.latency {
            None => println!("latency: no applied command was seen by every client"),
            Some(([p50, p95, p99, max], samples)) => println!(
                "latency, command to broadcast seen by every client ({samples} samples): p50 {p50:.2} ms, p95 {p95:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
            ),
        }
        println!("messages delivered: {} ({:.0}/s)", self.messages, self.messages as f64 / self.elapsed_s);
        println!("updates lost: {}", self.lost);
        match (before, idle) {
            (Some(b), Some(i)) => println!(
                "server memory{}: {:.1} MiB before, {:.1} MiB with the clients idle: {:.1} KiB per idle client",
                if metrics_urls.len() > 1 {
                    format!(" (the {} servers together)", metrics_urls.len())
                } else {
                    String::new()
                },
                b / 1048576.0,
                i / 1048576.0,
                (i - b) / 1024.0 / args.clients as f64
            ),
            _ => println!("server memory: not reported (no plarail_resident_bytes at {})", metrics_urls.join(", ")),
        }
    }
}

/// The servers' resident memory together, if every one reports it.
pub async fn resident_bytes(urls: &[String]) -> Option<f64> {
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
