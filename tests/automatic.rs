//! Automatic operation on a running twin: the operation on every door (`/api/state`, v2 snapshots and frames),
//! the operator's switch between manual, auto and mixed, visitors refused under `auto` and holding their station
//! under `mixed`, and the trains running by themselves through the same track path as a visitor's commands.

use std::time::Duration;

use hil::track::{Outcome, Setup, Track, TrackConfig, TrackEvent};
use sim::auto::{AutoEvent, Operation};
use sim::interlocking::{RejectKind, Request};
use sim::layout::OnOff;

use crate::support::{api_state, config, expect, expect_within, layout_2021, send, serve};

const TOKEN: &str = "operator-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_turns_automatic_operation_on_and_the_trains_run_by_themselves() {
    // Four times real time, so that dwells (10 s) pass in a few seconds.
    let setup = Setup { config: TrackConfig { pace: 4.0, ..config() }, operation: Operation::Auto, ..Setup::default() };
    let track = Track::start(layout_2021(), setup).await.unwrap();
    let mut events = track.subscribe();
    let dir = tempfile::tempdir().unwrap();
    let journal = std::sync::Arc::new(gateway::journal::Journal::open(dir.path()).unwrap().0);
    let options =
        gateway::core::Options { operator_token: Some(TOKEN.into()), journal: Some(journal), ..Default::default() };
    let addr = serve(track.clone(), options).await;

    // Started in auto: on /api/state and in the snapshot, with each train's plan.
    let state = api_state(addr).await;
    assert_eq!(state["operation"], "auto", "{state}");
    let mut ws = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/v2")).await.unwrap().0;
    let snapshot = expect(&mut ws, |v| v["type"] == "snapshot").await;
    assert_eq!(snapshot["operation"], "auto");

    // A visitor is refused, saying why.
    let chofu_s1 = track.layout().device_id("chofu_s1").unwrap();
    let lower = Request::Device { device: chofu_s1, state: OnOff::Off };
    assert!(matches!(track.apply(lower).await, Outcome::Rejected(r) if r.kind == RejectKind::Automatic));
    send(&mut ws, serde_json::json!({"id": 1, "cmd": "device", "name": "chofu_s1", "state": "OFF"})).await;
    let refused = expect(&mut ws, |v| v["id"] == 1).await;
    assert_eq!((refused["type"].as_str(), refused["rule"].as_str()), (Some("rejected"), Some("automatic operation")));

    // The trains run by themselves: a train departs after its dwell, and the plans say why trains stand.
    let departed = async {
        loop {
            if let Ok(TrackEvent::Auto(AutoEvent::Departed { stood_ms, .. })) = events.recv().await
                && stood_ms >= 10_000
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), departed).await.expect("a train departs after its dwell");
    let plans = expect_within(&mut ws, Duration::from_secs(10), |v| {
        v["type"] == "plans" && v["plans"].as_array().unwrap().iter().any(|p| p["waiting"].is_string())
    })
    .await;
    let plans = plans["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 8);
    assert!(plans.iter().all(|p| p["automatic"] == true), "{plans:?}");
    assert!(plans.iter().any(|p| p["next_stop"].is_string()), "{plans:?}");
    assert!(plans.iter().any(|p| p["calls"].as_u64().is_some_and(|c| c >= 1)), "calls counted: {plans:?}");

    // The history has automatic operation's requests (who made them, their result) and what it did, beside the
    // visitor's refused command.
    let departed = |e: &serde_json::Value| e["automatic"].as_str().is_some_and(|t| t.contains(" departs from "));
    let lowered = |e: &&serde_json::Value| e["by"] == "automatic" && e["value"] == "OFF";
    let history = async {
        loop {
            let url = format!("http://{addr}/api/history?limit=500");
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let entries = v["history"].as_array().unwrap().clone();
            if entries.iter().any(departed) && entries.iter().any(|e| lowered(&e)) {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let history = tokio::time::timeout(Duration::from_secs(10), history).await.expect("departures in the history");
    let lowered = history.iter().find(lowered).expect("a stop rail lowered");
    assert_eq!(lowered["result"], "applied", "{lowered}");
    assert!(lowered["target"].as_str().unwrap().contains("_s"), "{lowered}");
    let refused = history.iter().find(|e| e["by"] == "visitor").expect("the visitor's command");
    assert_eq!((refused["target"].as_str(), refused["result"].as_str()), (Some("chofu_s1"), Some("rejected")));

    // The operator switches to mixed (the token is needed): a visitor's command is carried out again.
    send(&mut ws, serde_json::json!({"id": 2, "cmd": "operator", "token": "wrong", "action": "mixed"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 2).await["type"], "denied");
    send(&mut ws, serde_json::json!({"id": 3, "cmd": "operator", "token": TOKEN, "action": "mixed"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 3).await["type"], "ack");
    assert_eq!(expect(&mut ws, |v| v["type"] == "operation").await["operation"], "mixed");
    let stop = track.layout().device_id("motoyawata_s1").unwrap();
    assert_eq!(track.apply(Request::Device { device: stop, state: OnOff::On }).await, Outcome::Applied);

    // An emergency stop hands the layout back to the operator: manual operation, every train stopped.
    send(&mut ws, serde_json::json!({"id": 4, "cmd": "operator", "token": TOKEN, "action": "emergency_stop"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 4).await["type"], "ack");
    assert_eq!(track.automatic().0, Operation::Manual);
    let state = api_state(addr).await;
    assert_eq!(state["operation"], "manual");
    assert!(state.get("plans").is_none(), "no plans in manual operation: {state}");
    track.stop();
}

/// In live mode automatic operation works the real track: its requests go through the same path as a visitor's,
/// to the real boards (here a "real" layout: a simulation behind virtual boards), and its plans follow the
/// mirror. A train's dwell ends, its stop rail is lowered on the real board, and the real train departs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_live_mode_automatic_operation_drives_the_real_boards() {
    use hil::virtual_devices::rig::Rig;
    use sim::twin::Mode;
    use sim::twin::thread::Request as SimRequest;

    let real = Rig::start(layout_2021(), &std::collections::HashMap::new(), 1.0).await.unwrap();
    let live_boards = real.layout.boards.iter().zip(real.addresses()).map(|(b, a)| (b.name.clone(), a)).collect();
    let setup =
        Setup { live_boards, config: config(), mode: Mode::Live, operation: Operation::Auto, ..Setup::default() };
    let track = Track::start(layout_2021(), setup).await.unwrap();
    let mut events = track.subscribe();
    // Every servo's moves on the real boards so far (the start-up restore), by device.
    let moves = |real: &Rig| -> Vec<u64> {
        real.layout
            .devices
            .iter()
            .map(|d| real.board(&real.layout.boards[d.board].name).map_or(0, |b| b.moves(d.pin)))
            .collect()
    };
    crate::support::until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    let before = moves(&real);
    let departed = async {
        loop {
            if let Ok(TrackEvent::Auto(AutoEvent::Departed { train, device, .. })) = events.recv().await {
                return (train, device);
            }
        }
    };
    let (train, device) =
        tokio::time::timeout(Duration::from_secs(30), departed).await.expect("a train departs after its dwell");
    // The real board lowered the stop rail (the real simulation's device moved), and the real train runs past it.
    let real_state = || {
        let (tx, rx) = crossbeam_channel::bounded(1);
        real.sim.requests.send(SimRequest::Snapshot(tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    };
    let held = real_state().trains[train].held_at;
    crate::support::until("the real train left the stop rail", Duration::from_secs(10), async || {
        real_state().trains[train].held_at != Some(device)
    })
    .await;
    assert!(held.is_none() || held == Some(device));
    assert!(moves(&real)[device] > before[device], "the real board moved the stop rail's servo");
    let (operation, plans) = track.automatic();
    assert_eq!((operation, plans.len()), (Operation::Auto, 8));
    track.stop();
    real.sim.stop();
}

/// Automatic operation runs the real layout in live mode for minutes on end, as in sim mode: a "real" layout (a
/// simulation behind virtual boards on HTTP, its sensor boards posting 2021 reports to the live track's ingest
/// endpoint) driven through the boards' HTTP path only, the plan following the mirror. The real trains keep
/// departing and no real train collides or derails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_live_mode_automatic_operation_runs_the_real_layout_without_an_accident() {
    use std::sync::{Arc, Mutex};

    use hil::virtual_devices::rig::{Rig, post_sensor_reports};
    use sim::twin::EventKind;
    use sim::twin::Mode;
    use sim::twin::thread::Request as SimRequest;

    let _alone = crate::support::CPU_HEAVY.lock().await;
    let layout = layout_2021();
    // Four times real time: five simulated minutes in 75 s (`PLARAIL_LIVE_MINUTES` runs longer, e.g. the hour,
    // `PLARAIL_LIVE_PACE` at another pace).
    let pace: f64 = std::env::var("PLARAIL_LIVE_PACE").ok().and_then(|p| p.parse().ok()).unwrap_or(4.0);
    let minutes: u64 = std::env::var("PLARAIL_LIVE_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(5);
    let real = Rig::start(layout.clone(), &std::collections::HashMap::new(), pace).await.unwrap();
    let live_boards = real.layout.boards.iter().zip(real.addresses()).map(|(b, a)| (b.name.clone(), a)).collect();
    let config = TrackConfig { pace, overdue_ms: 10_000, ..config() };
    let setup = Setup { live_boards, config, mode: Mode::Live, operation: Operation::Auto, ..Setup::default() };
    let track = Track::start(layout.clone(), setup).await.unwrap();
    let mut events = track.subscribe();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest = listener.local_addr().unwrap();
    let app = hil::boards2021::ingest::router(layout.clone(), track.senders(), track.readings())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let accidents = Arc::new(Mutex::new(Vec::new()));
    let seen = accidents.clone();
    let real_layout = layout.clone();
    let reports = post_sensor_reports(
        layout.clone(),
        real.sim.outputs.clone(),
        Some(format!("http://{ingest}/registerPosition")),
        move |e| {
            if matches!(e.kind, EventKind::Collision { .. } | EventKind::Derailment { .. }) {
                seen.lock().unwrap().push(e.describe(&real_layout));
            }
        },
    );
    crate::support::until("start-up restore", Duration::from_secs(10), async || track.ready()).await;

    let real_state = || {
        let (tx, rx) = crossbeam_channel::bounded(1);
        real.sim.requests.send(SimRequest::Snapshot(tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    };
    let (mut departures, mut divergences) = (vec![0; layout.trains.len()], Vec::new());
    let wall = Duration::from_secs_f64(minutes as f64 * 60.0 / pace * 2.0);
    let run = async {
        while real_state().time_ms < minutes * 60_000 {
            match events.recv().await {
                Ok(TrackEvent::Auto(AutoEvent::Departed { train, .. })) => departures[train] += 1,
                Ok(TrackEvent::Divergence(d)) => divergences.push(d.describe(&layout)),
                _ => {}
            }
        }
    };
    tokio::time::timeout(wall, run).await.expect("the real layout's clock runs");
    let accidents = accidents.lock().unwrap().clone();
    let accepted = reports.accepted.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "live automatic operation, {minutes} min at {pace}x: departures by train {departures:?}, {accepted} sensor \
         reports, {} divergences {divergences:?}, accidents {accidents:?}",
        divergences.len()
    );
    assert!(accidents.is_empty(), "{accidents:?}");
    assert!(departures.iter().all(|&d| d >= 2), "every train departs again and again: {departures:?}");
    assert!(real_state().trains.iter().all(|t| t.status == sim::twin::TrainStatus::Running));
    track.stop();
    real.sim.stop();
}
