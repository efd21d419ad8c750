//! The command line, as a user runs it.

use std::process::Command;

use crate::support::{TwinProcess, device_state, exit_of, repo, twin, twin_async};

#[test]
fn layout_check_summarises_the_2021_layout() {
    let (ok, text) = twin(&["layout", "check", "scenarios/layouts/chofufes2021.toml"]);
    assert!(ok, "{text}");
    assert!(text.contains("servo devices:  39"), "{text}");
    assert!(text.contains("sensors:        28"), "{text}");
    assert!(text.contains("trains:         8"), "{text}");
}

#[test]
fn layout_check_names_the_problem_in_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(repo("scenarios/layouts/chofufes2021.toml")).unwrap();
    std::fs::write(&path, text.replacen("pin = 27", "pin = 2", 1)).unwrap();
    let (ok, text) = twin(&["layout", "check", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(text.contains("motoyawata_s1") && text.contains("not a servo pin"), "{text}");
}

/// An empty or short operator token would make a guesser (or anyone sending `""`) an operator: refused at start.
#[test]
fn serve_refuses_an_empty_or_short_operator_token() {
    for (token, says) in [("", "0 characters"), ("s3cret", "6 characters"), (" 0123456789abcdef ", "spaces")] {
        let (ok, text) =
            twin(&["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--operator-token", token]);
        assert!(!ok, "started with the token {token:?}: {text}");
        assert!(text.contains("--operator-token") && text.contains(says), "{token:?}: {text}");
    }
}

#[test]
fn scenario_run_exits_non_zero_when_an_expectation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let layout = repo("scenarios/layouts/chofufes2021.toml");
    let scenario = format!(
        "name = \"impossible\"\nlayout = {layout:?}\nduration_s = 60\nseed = 1\n[visitors]\ncount = 1\ncommands_per_s = 1\n\
         stop_rail = 1\nswitch = 0\nspeed = 0\nadversarial = 0\n[expect]\nmin_applied = 1000000\n"
    );
    let path = dir.path().join("impossible.toml");
    std::fs::write(&path, scenario).unwrap();
    let (ok, text) = twin(&["scenario", "run", "--quiet", path.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(text.contains("FAILED: expected at least 1000000 commands applied"), "{text}");
    assert!(text.contains("real-time factor"), "{text}");
}

#[test]
fn scenario_run_passes_the_festival_hour() {
    let (ok, text) = twin(&["scenario", "run", "--quiet", "scenarios/festival-hour.toml"]);
    assert!(ok, "{text}");
    assert!(text.contains("collisions:   0") && text.contains("all expectations hold"), "{text}");
}

#[test]
fn run_plays_a_scenario_live_and_prints_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let layout = repo("scenarios/layouts/chofufes2021.toml");
    let scenario = format!(
        "name = \"short\"\nlayout = {layout:?}\nduration_s = 120\nseed = 3\n[visitors]\ncount = 5\ncommands_per_s = 0.2\n\
         stop_rail = 1\nswitch = 0\nspeed = 0\nadversarial = 0.5\n"
    );
    let path = dir.path().join("short.toml");
    std::fs::write(&path, scenario).unwrap();
    let (ok, text) = twin(&["run", "--speed", "1000", "--scenario", path.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("running short on layout chofufes2021 at 1000x"), "{text}");
    assert!(text.contains("passed sensor"), "{text}");
    assert!(text.contains("sim time 120.0 s"), "{text}");
    let (ok, text) = twin(&["run", "--speed", "0"]);
    assert!(!ok && text.contains("--speed must be a positive number"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boards_serves_the_layout_s_boards_and_posts_sensor_reports() {
    use std::io::BufRead;
    // An ingest endpoint to receive the reports.
    let (tx, mut readings) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest = listener.local_addr().unwrap();
    // The boards' sensor reports come from loopback.
    let layout = crate::support::layout_2021();
    let loopback: Vec<String> = layout.boards.iter().map(|_| "127.0.0.1".to_string()).collect();
    let app = hil::boards2021::ingest::router(layout, hil::boards2021::ingest::Senders::new(&loopback), tx)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let port = crate::support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_plarail-twin"))
        .args(["boards", "--speed", "10", "--board", &format!("192.168.100.102:80=127.0.0.1:{port}")])
        .args(["--ingest", &format!("http://{ingest}/registerPosition")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start boards");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut listing = String::new();
    while !listing.contains("sensor reports go to") {
        listing += &lines.next().expect("boards prints its addresses").unwrap();
        listing += "\n";
    }
    assert!(listing.contains(&format!("servo-102    192.168.100.102:80     -> http://127.0.0.1:{port}")), "{listing}");
    assert_eq!(listing.matches("-> http://127.0.0.1:").count(), 4, "{listing}");
    // Lower kudanshita_s6 (board .102, pin 21, OFF angle 0): CHICHIBU runs on past kudanshita_s6_f.
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("http://127.0.0.1:{port}/"))
        .body(r#"{"pin":21,"state":"ANGLE","angle":0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let reading = tokio::time::timeout(std::time::Duration::from_secs(20), readings.recv()).await;
    child.kill().ok();
    exit_of(child).await;
    let reading = reading.expect("a sensor report within 20 s").expect("reading");
    let layout = crate::support::layout_2021();
    assert_eq!(layout.sensors[reading.sensor].name, "kudanshita_s6_f");
    assert_eq!(reading.train_id, 2, "CHICHIBU is train 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_its_flags_from_the_environment_and_stops_gracefully_on_sigterm() {
    let port = crate::support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_plarail-twin"))
        .env("PLARAIL_LISTEN", format!("127.0.0.1:{port}"))
        .env("PLARAIL_GRPC_LISTEN", "127.0.0.1:0")
        .env("PLARAIL_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the twin with no subcommand");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        match http_get(port, "/api/state").await {
            Some(body) => break body,
            _ if std::time::Instant::now() > deadline => {
                child.kill().ok();
                panic!("the twin did not serve /api/state within 20 s");
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    assert!(body.contains(r#""mode":"sim""#) && body.contains("chofu_b1"), "{body}");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = exit_of(child).await;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_a_config_file_under_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("twin.toml");
    let free = crate::support::free_port;
    let file_port = free();
    let text = format!(
        "listen = \"127.0.0.1:{file_port}\"\ngrpc_listen = \"127.0.0.1:0\"\nlog = \"warn\"\ndata_dir = \"journal\"\n\
         rate_per_connection = 5.0\n[boards]\n\"192.168.100.107:80\" = \"127.0.0.1:9\"\n"
    );
    std::fs::write(&config, text).unwrap();
    // The flag's address (the one `TwinProcess` gives) wins over the file's; the file's data_dir (relative to the file)
    // is used.
    let mut twin = TwinProcess::serve(&["--config", config.to_str().unwrap()]).await;
    let history = twin.answers("/api/history", |_| true).await;
    assert!(history["history"].is_array(), "{history}");
    assert!(dir.path().join("journal").is_dir(), "the journal lies beside the config file");
    assert!(http_get(file_port, "/api/state").await.is_none(), "the file's address is overridden by the flag");
    twin.kill();

    // A key the config file does not know is named in the error.
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_port = 8080\n").unwrap();
    let (ok, out) = twin_async(&["serve", "--config", config.to_str().unwrap()]).await;
    assert!(!ok && out.contains("listen_port"), "{out}");
    // A board address that is not HOST:PORT is refused.
    std::fs::write(&config, "[boards]\nservo1 = \"nowhere\"\n").unwrap();
    let (ok, out) = twin_async(&["serve", "--config", config.to_str().unwrap()]).await;
    assert!(!ok && out.contains("nowhere"), "{out}");
}

/// `GET` on loopback; the body, if the server answered 200.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let answer = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.ok()?;
    if answer.status() != reqwest::StatusCode::OK {
        return None;
    }
    answer.text().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_twin_comes_back_with_its_device_states_and_history() {
    use futures_util::{SinkExt, StreamExt};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = TwinProcess::serve(&["--data-dir", data.to_str().unwrap()]).await;
    let port = child.port;
    child.answers("/api/state", |v| v["boards"].as_array().unwrap().iter().all(|b| b["restoring"] == false)).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await.unwrap();
    let command = r#"{"station_name":"chofu_b3","state":"OFF"}"#;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(command.into())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        let frame: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if frame == serde_json::json!({"station_name": "chofu_b3", "state": "OFF"}) {
            break;
        }
    }
    child.answers("/api/history?limit=5", |v| v["history"].as_array().is_some_and(|h| !h.is_empty())).await;
    child.kill(); // SIGKILL: no shutdown, no flush

    let mut again = TwinProcess::serve(&["--data-dir", data.to_str().unwrap()]).await;
    let state = again.answers("/api/state", |v| device_state(v, "chofu_b3").as_deref() == Some("OFF")).await;
    assert_eq!(device_state(&state, "chofu_b1").as_deref(), Some("ON"));
    let history = again.answers("/api/history", |_| true).await;
    let first =
        &history["history"].as_array().unwrap().iter().find(|e| e["target"] == "chofu_b3").expect("in history").clone();
    assert_eq!((first["value"].as_str(), first["result"].as_str()), (Some("OFF"), Some("applied")), "{first}");
    again.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_latency_throughput_and_no_lost_updates() {
    let mut child = TwinProcess::serve(&["--rate-per-address", "1000"]).await;
    let port = child.port;
    // Watching either feed, and commanding in v2 or (as against the 2021 Go stack) in the 2021 protocol.
    for (protocol, commands) in [("ws", "auto"), ("ws/v2", "v2"), ("ws", "2021")] {
        let url = format!("ws://127.0.0.1:{port}/{protocol}");
        let (ok, out) = twin_async(&[
            "load",
            "--url",
            &url,
            "--clients",
            "20",
            "--rate",
            "20",
            "--duration",
            "2s",
            "--commands",
            commands,
        ])
        .await;
        assert!(ok, "{out}");
        assert!(out.contains("updates lost: 0"), "{out}");
        let samples: u64 = out
            .split("every client (")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a latency line: {out}"));
        assert!(samples > 0 && out.contains("p99"), "{out}");
        assert!(out.contains("KiB per idle client"), "{out}");
        let protocol_used = if commands == "2021" { "in the 2021 protocol" } else { "in the v2 protocol" };
        assert!(out.contains(protocol_used), "{out}");
    }
    // Over a server's limits: the refusals are counted apart from lost updates, and named.
    let mut limited = TwinProcess::serve(&["--rate-per-address", "5"]).await;
    let port = limited.port;
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (ok, out) = twin_async(&[
        "load",
        "--url",
        &url,
        "--clients",
        "5",
        "--rate",
        "30",
        "--duration",
        "2s",
        "--commands",
        "2021",
    ])
    .await;
    assert!(ok && out.contains("updates lost: 0"), "{out}");
    assert!(out.contains("rate limits: the server's limits were hit"), "{out}");
    limited.kill();
    let (ok, out) = twin_async(&["load", "--url", "http://127.0.0.1:1/ws", "--duration", "2s"]).await;
    assert!(!ok && out.contains("ws://"), "{out}");
    child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_acknowledged_just_before_kill_9_is_there_after_the_restart() {
    use futures_util::{SinkExt, StreamExt};
    use wire::v2;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    // Each round: the command's ack, then SIGKILL at once, then the state it acknowledged after the restart.
    for (round, state) in ["OFF", "ON", "OFF"].into_iter().enumerate() {
        let mut child = TwinProcess::serve(&["--data-dir", data_dir]).await;
        let port = child.port;
        child.answers("/api/state", |v| v["boards"].as_array().unwrap().iter().all(|b| b["restoring"] == false)).await;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/v2")).await.unwrap();
        let id = 100 + round as u64;
        let command = format!(r#"{{"id":{id},"cmd":"device","name":"kudanshita_s5","state":"{state}"}}"#);
        ws.send(tokio_tungstenite::tungstenite::Message::Text(command.into())).await.unwrap();
        loop {
            let msg =
                tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
            match v2::ServerFrame::decode(msg.to_text().unwrap()).unwrap() {
                v2::ServerFrame::Ack { id: acked, .. } if acked == id => break,
                v2::ServerFrame::Failed { reason, .. } | v2::ServerFrame::Rejected { reason, .. } => panic!("{reason}"),
                _ => {}
            }
        }
        child.kill(); // SIGKILL right after the ack: no shutdown, no flush
        let mut again = TwinProcess::serve(&["--data-dir", data_dir]).await;
        again.answers("/api/state", |v| device_state(v, "kudanshita_s5").as_deref() == Some(state)).await;
        let history = again.answers("/api/history?limit=100", |_| true).await;
        // The newest command (the restart's session and boards come after it).
        let last = history["history"].as_array().unwrap().iter().find(|e| e.get("target").is_some()).unwrap();
        assert_eq!((last["target"].as_str(), last["value"].as_str()), (Some("kudanshita_s5"), Some(state)), "{last}");
        again.kill();
    }
}

/// A journal file that cannot be read (here: empty) does not stop the twin, and is not silently reset: `serve`
/// starts, warns naming the file it kept aside, and the file is there.
#[test]
fn serve_keeps_a_damaged_journal_aside_and_says_so() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("journal.redb"), b"").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_plarail-twin"))
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log", "warn"])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let warning = lines.next().expect("a warning").unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(warning.contains("WARN") && warning.contains("damaged (the file is empty)"), "{warning}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal.redb.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(warning.contains(&aside[0]), "{warning}");
}

/// Several clients command while the twin is killed (`kill -9`) at random moments, round after round on the
/// same data directory: after every restart each device is in the state of its client's last acknowledged
/// command (or of the one in flight at the kill, which may or may not have been carried out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_command_is_lost_across_random_kill_9s() {
    use futures_util::{SinkExt, StreamExt};
    use rand::{Rng, SeedableRng};
    use wire::v2;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    let flags = ["--data-dir", data_dir, "--rate-per-connection", "1000", "--rate-per-address", "5000"];
    // Switches: only commands move them (no automatic protection), so their state is the commands' to decide.
    let switches = ["chofu_b3", "chofu_b1", "kitano_b2"];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2021);
    // Per switch: the states it may be in after a restart.
    let mut allowed: Vec<Vec<String>> = vec![Vec::new(); switches.len()];
    let mut total_acks = 0;
    for round in 0..5 {
        let mut child = TwinProcess::serve(&flags).await;
        let port = child.port;
        let ready = child
            .answers("/api/state", |v| v["boards"].as_array().unwrap().iter().all(|b| b["restoring"] == false))
            .await;
        for (i, name) in switches.iter().enumerate() {
            let now = device_state(&ready, name).expect("a device");
            assert!(
                allowed[i].is_empty() || allowed[i].contains(&now),
                "round {round}: {name} is {now}, not {:?}",
                allowed[i]
            );
        }
        let mut clients = Vec::new();
        for (i, name) in switches.iter().enumerate() {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/v2")).await.unwrap();
            let name = name.to_string();
            let start = if device_state(&ready, &name).as_deref() == Some("ON") { 1 } else { 0 };
            clients.push(tokio::spawn(async move {
                // (last acknowledged state, state in flight), and how many were acknowledged
                let mut last: (Option<String>, Option<String>) = (None, None);
                let mut acks = 0;
                for n in start.. {
                    let state = if n % 2 == 0 { "ON" } else { "OFF" };
                    let id = 1000 * i as u64 + n as u64;
                    let frame = format!(r#"{{"id":{id},"cmd":"device","name":"{name}","state":"{state}"}}"#);
                    last.1 = Some(state.to_string());
                    if ws.send(tokio_tungstenite::tungstenite::Message::Text(frame.into())).await.is_err() {
                        return (last, acks);
                    }
                    loop {
                        let Some(Ok(msg)) = ws.next().await else { return (last, acks) };
                        let Ok(text) = msg.to_text() else { return (last, acks) };
                        match v2::ServerFrame::decode(text) {
                            Ok(v2::ServerFrame::Ack { id: acked, .. }) if acked == id => {
                                last = (last.1.take(), None);
                                acks += 1;
                                break;
                            }
                            Ok(v2::ServerFrame::Rejected { id: r, .. } | v2::ServerFrame::Failed { id: r, .. })
                                if r == id =>
                            {
                                last.1 = None;
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                (last, acks)
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(100..700))).await;
        child.kill(); // SIGKILL at a random moment, commands in flight
        for (i, client) in clients.into_iter().enumerate() {
            let ((acked, in_flight), acks) = client.await.unwrap();
            total_acks += acks;
            if acked.is_some() {
                allowed[i] = acked.into_iter().collect();
            }
            allowed[i].extend(in_flight);
        }
    }
    assert!(total_acks >= 20, "only {total_acks} commands acknowledged: the kills came too early to test much");
    let mut last = TwinProcess::serve(&flags).await;
    let state =
        last.answers("/api/state", |v| v["boards"].as_array().unwrap().iter().all(|b| b["restoring"] == false)).await;
    for (i, name) in switches.iter().enumerate() {
        assert!(allowed[i].contains(&device_state(&state, name).expect("a device")), "{name}: {:?}", allowed[i]);
    }
    last.kill();
}

/// The broker flags are checked before anything starts: an edge needs a broker, a URL must be MQTT's, a CA
/// file is for TLS and must exist.
#[test]
fn the_broker_flags_are_refused_with_what_is_wrong() {
    for (args, says) in [
        (&["edge", "--listen", "127.0.0.1:0"][..], "an edge needs --broker"),
        (&["edge", "--broker", "http://127.0.0.1:1883"][..], "not a broker URL"),
        (&["edge", "--broker", "mqtt://127.0.0.1:1883", "--broker-ca", "ca.pem"][..], "--broker-ca is for an mqtts://"),
        (&["edge", "--broker", "mqtts://127.0.0.1:8883", "--broker-ca", "/nonexistent.pem"][..], "no such file"),
        (&["edge", "--broker", "mqtt://127.0.0.1:1883", "--broker-password", "x"][..], "needs --broker-user"),
        (&["edge", "--broker", "mqtt://127.0.0.1:1883", "--topics", "plarail/#"][..], "--topics"),
        (
            &["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--broker", "mqtt://:1883"][..],
            "names no host",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--broker-user", "core"][..],
            "need --broker",
        ),
    ] {
        let (ok, text) = twin(args);
        assert!(!ok, "{args:?} started: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

/// `edge` reads the same config file as `serve` under its flags, with `serve`'s defaults; a setting only the
/// other role has is refused by name.
#[test]
fn edge_reads_the_config_file_and_each_role_refuses_the_other_s_settings() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().to_string()
    };
    // The file's broker and rate limit are read (the broker's is taken, the limit refused as the flag's is).
    let limits = write("limits.toml", "broker = \"mqtt://127.0.0.1:1883\"\nrate_per_address = -1.0\n");
    let serve_only = write("serve.toml", "broker = \"mqtt://127.0.0.1:1883\"\nboards = { \"a\" = \"127.0.0.1:1\" }\n");
    let edge_only = write("edge.toml", "core_url = \"http://127.0.0.1:8080\"\n");
    for (args, says) in [
        (vec!["edge", "--config", &limits], "the rate limits must be positive numbers"),
        (vec!["edge", "--config", &serve_only], "boards only for `serve`"),
        (vec!["serve", "--config", &edge_only, "--listen", "127.0.0.1:0"], "core_url only for `edge`"),
    ] {
        let (ok, text) = twin(&args);
        assert!(!ok, "{args:?} started: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

#[test]
fn a_missing_file_is_named_with_its_cause_said_once() {
    let (ok, out) = twin(&["scenario", "run", "no-such-scenario.toml"]);
    assert!(!ok, "{out}");
    assert!(out.contains("no-such-scenario.toml"), "{out}");
    assert_eq!(out.matches("No such file or directory").count(), 1, "{out}");
}
