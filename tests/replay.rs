//! A recorded session replayed: a twin serving with a data directory takes visitors' commands while its trains
//! run, then `replay` plays the recording back against the simulation (the same outcomes, the same sensor passes,
//! every time the same report), a what-if run shows exactly the commands a setting changes, `journal export`
//! writes the entries as JSON lines, a truncated export replays up to the damage, and an exported scenario passes.

use crate::support::{TwinProcess, expect, send, twin_async, ws};

/// A command as the test sends it over v2: a device and its state, or a train and its speed.
type Sent = (&'static str, &'static str, &'static str);

/// Records a session of `serve ARGS`: visitors' `commands` over v2 (each answered before the next), then waits
/// until the history holds two entries with the key `seen` (sensor passes, block changes), and closes with
/// `last`. Returns the data directory's holder and the directory.
async fn record(args: &[&str], commands: &[Sent], seen: &str, last: Sent) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut twin = TwinProcess::serve(&[args, &["--data-dir", data.to_str().unwrap()]].concat()).await;
    // Every board restored, every device at a position (a 2023 board tells its points' positions as it comes).
    twin.answers("/api/state", |v| {
        v["boards"].as_array().unwrap().iter().all(|b| b["restoring"] == false)
            && v["devices"].as_array().unwrap().iter().all(|d| d["state"].is_string())
    })
    .await;
    let mut v2 = ws(twin.addr(), "/ws/v2").await;
    for (id, (cmd, name, value)) in commands.iter().chain([&last]).enumerate() {
        if id == commands.len() {
            // Trains have moved; the last command closes the recording.
            let history = "/api/history?limit=500";
            let seen = |h: &serde_json::Value| {
                h["history"].as_array().unwrap().iter().filter(|e| e.get(seen).is_some()).count()
            };
            twin.answers(history, |h| seen(h) >= 2).await;
        }
        let frame = match *cmd {
            "device" => serde_json::json!({"id": id, "cmd": "device", "name": name, "state": value}),
            _ => serde_json::json!({"id": id, "cmd": "speed", "train": name, "speed": value.parse::<i32>().unwrap()}),
        };
        send(&mut v2, frame).await;
        expect(&mut v2, |v| v["id"] == id).await;
    }
    let (_, name, value) = last;
    twin.answers("/api/history?limit=100", |h| {
        h["history"].as_array().unwrap().iter().any(|e| e["target"] == name && e["value"] == value)
    })
    .await;
    twin.kill();
    (dir, data)
}

/// A 2021 session: CHICHIBU released, a refused command, switches thrown, a speed set.
pub(crate) async fn record_2021() -> (tempfile::TempDir, std::path::PathBuf) {
    let commands = [
        ("device", "kudanshita_s6", "OFF"), // CHICHIBU is released
        ("device", "meidaimae_s1", "OFF"),  // refused: its route is occupied
        ("device", "chofu_b3", "OFF"),
        ("device", "chofu_b3", "ON"),
        ("speed", "NIKKO", "40"),
        ("device", "kitano_b1", "OFF"),
    ];
    record(&[], &commands, "sensor", ("device", "kitano_b1", "ON")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_to_the_same_outcomes_every_time_and_a_what_if_shows_what_it_changes() {
    let (dir, data) = record_2021().await;
    let data = data.to_str().unwrap();

    // Every entry exported as a JSON line: the session's start, the commands with their outcomes, the passes.
    let (ok, lines) = twin_async(&["journal", "export", data]).await;
    assert!(ok, "{lines}");
    let entries: Vec<serde_json::Value> =
        lines.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(entries[0]["session"]["layout"] == "chofufes2021", "{:?}", entries[0]);
    let visitors: Vec<&serde_json::Value> = entries.iter().filter(|e| e["by"] == "visitor").collect();
    assert_eq!(visitors.len(), 7, "{lines}");
    assert!(
        visitors.iter().all(|e| e["door"] == "v2" && e["client"] == "127.0.0.1" && e["took_ms"].is_u64()),
        "{lines}"
    );
    let applied = visitors.iter().filter(|e| e["result"] == "applied").count();
    assert!(visitors.iter().any(|e| e["target"] == "meidaimae_s1" && e["result"] == "rejected"), "{lines}");
    assert!(entries.iter().any(|e| e["sensor"].is_string() && e["sim_ms"].is_u64()), "{lines}");

    // The same outcomes, the same passes, and the same report twice.
    let (same, report) = twin_async(&["replay", data, "--expect-same", "--quiet"]).await;
    assert!(same, "{report}");
    assert!(report.contains("commands: 7 compared, 7 the same, 0 different"), "{report}");
    assert!(report.contains("; all match, at most"), "{report}");
    let (_, again) = twin_async(&["replay", data, "--quiet"]).await;
    let without_wall = |r: &str| r.lines().filter(|l| !l.contains("wall time")).collect::<Vec<_>>().join("\n");
    assert_eq!(without_wall(&report), without_wall(&again), "a replay is deterministic");

    // What if automatic operation had run everything: exactly the commands applied then are refused now.
    let (differs, what_if) = twin_async(&["replay", data, "--operation", "auto", "--expect-same", "--quiet"]).await;
    assert!(!differs, "expected to differ:\n{what_if}");
    assert!(what_if.contains(&format!("commands whose outcome changed: {applied}")), "{what_if}");
    assert!(what_if.contains("with operation auto: rejected (automatic operation runs everything)"), "{what_if}");

    // What if the interlocking were off: exactly the commands it refused then are carried out now.
    let refused = visitors.len() - applied;
    let (_, unguarded) = twin_async(&["replay", data, "--no-interlocking", "--quiet"]).await;
    assert!(unguarded.contains(&format!("commands whose outcome changed: {refused}")), "{unguarded}");
    assert!(unguarded.contains("meidaimae_s1 OFF by visitor: rejected ("), "{unguarded}");
    assert!(unguarded.contains("; with interlocking off: applied"), "{unguarded}");

    // An exported scenario passes as a scenario.
    let scenario = dir.path().join("recorded.toml");
    let (ok, out) = twin_async(&["replay", data, "--export-scenario", scenario.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    let (ok, out) = twin_async(&["scenario", "run", scenario.to_str().unwrap(), "--quiet"]).await;
    assert!(ok && out.contains("all expectations hold"), "{out}");

    // A truncated export replays up to the damage and says where.
    let cut = dir.path().join("cut.jsonl");
    let kept: Vec<&str> = lines.lines().filter(|l| l.starts_with('{')).collect();
    let last = kept.len() - 1;
    let truncated = kept[..last].join("\n") + "\n" + &kept[last][..kept[last].len() / 2];
    std::fs::write(&cut, truncated).unwrap();
    let (ok, out) = twin_async(&["replay", cut.to_str().unwrap(), "--quiet"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("line {} cannot be read", last + 1)) && out.contains("commands: 6 compared"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_2023_session_over_mqtt_boards_replays_with_the_same_block_changes() {
    // The 2023 layout: its virtual boards over the embedded MQTT broker, a train released into the next block.
    let commands = [("device", "shinjyuku_down_s1", "OFF")];
    let last = ("device", "shinjyuku_down_s1", "ON");
    let (_dir, data) = record(&["--layout", "chofufes2023"], &commands, "block", last).await;
    let (same, report) = twin_async(&["replay", data.to_str().unwrap(), "--expect-same", "--quiet"]).await;
    assert!(same, "{report}");
    assert!(report.contains("commands: 2 compared, 2 the same, 0 different"), "{report}");
    let blocks = report.lines().find(|l| l.starts_with("block changes: ")).unwrap_or_default();
    let recorded: usize = blocks["block changes: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(recorded >= 1 && blocks.contains("; all match, at most"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_says_clearly_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = twin_async(&["replay", dir.path().to_str().unwrap()]).await;
    assert!(!ok && out.contains("no journal in"), "{out}");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (ok, out) = twin_async(&["replay", empty.to_str().unwrap()]).await;
    assert!(!ok && out.contains("nothing recorded"), "{out}");
    let (ok, out) = twin_async(&["journal", "export", dir.path().to_str().unwrap(), "--from", "yesterday"]).await;
    assert!(!ok && out.contains("no journal in"), "{out}");
}
