//! The 2023 layout, its blocks and pass detectors: the layout holds 2023's objects on 2023's pins, a detector
//! is pressed while a train is over it, a block is occupied from its entry detector until the train's last car
//! has left its exit detector, and the interlocking keeps trains out of an occupied block.

use sim::interlocking::{Interlocking, RejectKind, Request};
use sim::layout::{BoardKind, DetectorTarget, DeviceKind, Layout, OnOff};
use sim::twin::{EventKind, SimCommand, SimEvent, Simulation};

use crate::support::layout_2023;

/// The stop rails of the 2023 festival: id, board, GPIO, the block a train departs into
/// (`config/chofufes/*.json` and `map/chofufes-2023.json` at 7beb801; Hashimoto's board as the twin names it).
const STOPS: [(&str, &str, u32, &str); 14] = [
    ("shinjyuku_down_s1", "shinjyuku", 16, "shinjyuku_down_b1"),
    ("shinjyuku_up_s1", "shinjyuku", 17, "shinjyuku_up_b1"),
    ("sakurajosui_down_s1", "sakurajosui", 19, "sakurajosui_down_b1"),
    ("sakurajosui_down_s2", "sakurajosui", 21, "sakurajosui_down_b1"),
    ("sakurajosui_up_s1", "sakurajosui", 17, "sakurajosui_up_b1"),
    ("sakurajosui_up_s2", "sakurajosui", 18, "sakurajosui_up_b1"),
    ("chofu_down_s1", "chofu", 14, "chofu_down_b1"),
    ("chofu_down_s2", "chofu", 15, "chofu_down_b2"),
    ("chofu_up_s1", "chofu", 16, "chofu_up_b1"),
    ("chofu_up_s2", "chofu", 17, "chofu_up_b1"),
    ("hachioji_down_s1", "hachioji", 14, "hachioji_down_b1"),
    ("hachioji_up_s1", "hachioji", 13, "hachioji_up_b1"),
    ("hashimoto_down_s1", "hashimoto", 17, "hashimoto_down_b1"),
    ("hashimoto_up_s1", "hashimoto", 16, "hashimoto_up_b1"),
];

/// The wired detectors of the 2023 festival: block, payload, board, GPIO.
const DETECTORS: [(&str, &str, &str, u32); 18] = [
    ("shinjyuku_down_b1", "CLOSE", "shinjyuku", 12),
    ("shinjyuku_up_b1", "CLOSE", "shinjyuku", 22),
    ("shinjyuku_up_b1", "OPEN", "shinjyuku", 23),
    ("sakurajosui_up_b1", "OPEN", "shinjyuku", 25),
    ("shinjyuku_down_b1", "OPEN", "sakurajosui", 12),
    ("sakurajosui_up_b1", "CLOSE", "sakurajosui", 22),
    ("chofu_up_b1", "OPEN", "sakurajosui", 23),
    ("sakurajosui_down_b1", "CLOSE", "sakurajosui", 25),
    ("sakurajosui_down_b1", "OPEN", "chofu", 12),
    ("chofu_up_b1", "CLOSE", "chofu", 22),
    ("chofu_down_b1", "CLOSE", "chofu", 23),
    ("chofu_down_b2", "CLOSE", "chofu", 25),
    ("hashimoto_up_b1", "OPEN", "chofu", 26),
    ("hachioji_up_b1", "OPEN", "chofu", 32),
    ("chofu_down_b1", "OPEN", "hachioji", 12),
    ("hachioji_up_b1", "CLOSE", "hachioji", 22),
    ("hachioji_down_b1", "CLOSE", "hachioji", 23),
    ("hachioji_down_b1", "OPEN", "hachioji", 25),
];

fn word(t: DetectorTarget) -> &'static str {
    match t {
        DetectorTarget::Close => "CLOSE",
        DetectorTarget::Open => "OPEN",
    }
}

#[test]
fn the_2023_layout_holds_2023_s_objects_on_2023_s_pins() {
    let layout = layout_2023();
    for (stop, board, pin, block) in STOPS {
        let d = &layout.devices[layout.device_id(stop).unwrap_or_else(|| panic!("{stop}"))];
        assert_eq!((d.kind, layout.boards[d.board].name.as_str(), d.pin), (DeviceKind::StopRail, board, pin), "{stop}");
        assert_eq!((d.on_angle, d.off_angle), (180, 0), "{stop}: the festival build's STOP and GO angles");
        let b = &layout.blocks[layout.block_id(block).unwrap()];
        assert!(b.stops.contains(&layout.device_id(stop).unwrap()), "{stop} departs into {block}");
    }
    for (point, board, pin) in [("sakurajosui_down_p1", "sakurajosui", 16), ("chofu_down_p1", "chofu", 13)] {
        let d = &layout.devices[layout.device_id(point).unwrap()];
        assert_eq!((d.kind, layout.boards[d.board].name.as_str(), d.pin), (DeviceKind::Switch, board, pin));
        assert_eq!((d.on_angle, d.off_angle), (179, 159), "{point}: REVERSE and NORMAL angles");
    }
    assert!(layout.device_id("sakurajosui_up_p1").is_some(), "on the 2023 dashboard");
    let stops = layout.devices.iter().filter(|d| d.kind == DeviceKind::StopRail).count();
    assert_eq!((stops, layout.devices.len() - stops, layout.blocks.len()), (14, 3, 11));
    let wired: Vec<(&str, &str, &str, u32)> = layout
        .detectors
        .iter()
        .filter_map(|d| {
            let (board, pin) = d.wiring?;
            Some((layout.blocks[d.block].id.as_str(), word(d.target), layout.boards[board].name.as_str(), pin))
        })
        .collect();
    let mut want = DETECTORS.to_vec();
    let mut got = wired.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(layout.boards.iter().all(|b| b.kind == BoardKind::Mqtt), "every 2023 board is on the broker");
    assert!(layout.summary().to_string().contains("blocks:         11"), "{}", layout.summary());
}

fn run_until(sim: &mut Simulation, limit_ms: u64, mut done: impl FnMut(&[SimEvent]) -> bool) -> Vec<SimEvent> {
    let mut events = Vec::new();
    let end = sim.time_ms() + limit_ms;
    while sim.time_ms() < end {
        sim.step(&mut events);
        if done(&events) {
            return events;
        }
    }
    panic!("not within {limit_ms} ms: {events:?}");
}

fn detector(layout: &Layout, block: &str, target: DetectorTarget) -> usize {
    let b = layout.block_id(block).unwrap();
    layout.detectors.iter().position(|d| d.block == b && d.target == target).unwrap()
}

#[test]
fn a_train_closes_its_block_at_the_entry_detector_and_opens_it_when_its_last_car_leaves_the_exit() {
    let layout = layout_2023();
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let block = layout.block_id("shinjyuku_down_b1").unwrap();
    assert!(!sim.state().blocks[block], "free at the start");
    let entry = detector(&layout, "shinjyuku_down_b1", DetectorTarget::Close);
    let exit = detector(&layout, "shinjyuku_down_b1", DetectorTarget::Open);
    let s1 = layout.device_id("shinjyuku_down_s1").unwrap();
    sim.apply(SimCommand::SetDevice { device: s1, state: OnOff::Off }, &mut Vec::new()).unwrap();
    let block_free = |e: &[SimEvent]| e.iter().any(|e| e.kind == EventKind::BlockChanged { block, occupied: false });
    let events = run_until(&mut sim, 30_000, block_free);
    let of_block: Vec<(u64, EventKind)> = events
        .iter()
        .filter(|e| match e.kind {
            EventKind::DetectorChanged { detector, .. } => detector == entry || detector == exit,
            EventKind::BlockChanged { block: b, .. } => b == block,
            _ => false,
        })
        .map(|e| (e.time_ms, e.kind))
        .collect();
    let kinds: Vec<EventKind> = of_block.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::DetectorChanged { detector: entry, closed: true },
            EventKind::BlockChanged { block, occupied: true },
            EventKind::DetectorChanged { detector: entry, closed: false },
            EventKind::DetectorChanged { detector: exit, closed: true },
            EventKind::DetectorChanged { detector: exit, closed: false },
            EventKind::BlockChanged { block, occupied: false },
        ]
    );
    // Real timing: a 450 mm train at 200 mm/s holds each detector down for 2.25 s; the block closes with the
    // entry's press and opens with the exit's release.
    let t = |i: usize| of_block[i].0;
    assert_eq!(t(0), t(1));
    assert_eq!(t(4), t(5));
    for (press, release) in [(0, 2), (3, 4)] {
        let held = t(release) - t(press);
        assert!((2240..=2270).contains(&held), "held {held} ms");
    }
    // From the entry at 100 mm to the exit at 950 mm of the block: 850 mm at 200 mm/s.
    assert!((4240..=4270).contains(&(t(3) - t(0))), "{of_block:?}");
}

#[test]
fn a_stop_rail_is_not_lowered_into_an_occupied_block() {
    let layout = layout_2023();
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let s1 = layout.device_id("shinjyuku_down_s1").unwrap();
    let block = layout.block_id("shinjyuku_down_b1").unwrap();
    let lower = Request::Device { device: s1, state: OnOff::Off };
    il.check(&lower, &sim.state()).expect("the block ahead is free");
    sim.apply(lower.command(&layout), &mut Vec::new()).unwrap();
    run_until(&mut sim, 30_000, |e| e.iter().any(|e| e.kind == EventKind::BlockChanged { block, occupied: true }));
    let raise = Request::Device { device: s1, state: OnOff::On };
    il.check(&raise, &sim.state()).expect("raising is always allowed");
    sim.apply(raise.command(&layout), &mut Vec::new()).unwrap();
    let r = il.check(&lower, &sim.state()).expect_err("the block is occupied");
    assert_eq!(r.kind, RejectKind::BlockOccupied);
    assert!(r.message.contains("shinjyuku_down_s1") && r.message.contains("shinjyuku_down_b1"), "{}", r.message);
    run_until(&mut sim, 30_000, |e| e.iter().any(|e| e.kind == EventKind::BlockChanged { block, occupied: false }));
    assert!(!sim.state().blocks[block]);
}

#[test]
fn a_layout_whose_block_lacks_a_detector_is_refused_naming_it() {
    let text = std::fs::read_to_string(crate::support::repo("scenarios/layouts/chofufes2023.toml")).unwrap();
    let cut = text.replacen(
        "target = \"OPEN\"\nsegment = \"chofu_down_b2\"",
        "target = \"CLOSE\"\nsegment = \"chofu_down_b2\"",
        1,
    );
    assert_ne!(cut, text);
    let e = Layout::from_toml(&cut).unwrap_err().to_string();
    assert!(e.contains("chofu_down_b2") && e.contains("OPEN"), "{e}");
    let mut spec: sim::layout::spec::LayoutSpec = toml::from_str(&text).unwrap();
    spec.detectors[0].board = Some("nowhere".into());
    let e = Layout::from_spec(&spec).unwrap_err().to_string();
    assert!(e.contains("nowhere"), "{e}");
}

/// The twin serving the 2023 layout (at 4x real time): `/api/layout` draws the blocks, `/api/state` and the v2
/// snapshot hold them, a `block` frame tells each change, and a stop rail into an occupied block is refused
/// with the rule and the block's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_shows_blocks_and_refuses_a_departure_into_an_occupied_one() {
    use futures_util::SinkExt;
    use hil::track::{Setup, Track, TrackConfig};
    use tokio_tungstenite::tungstenite::Message;

    use crate::support::expect;
    use crate::support::serve;

    let config = TrackConfig { pace: 4.0, ..crate::support::config() };
    let track = Track::start(layout_2023(), Setup { config, ..Setup::default() }).await.unwrap();
    let addr = serve(track.clone(), gateway::core::Options::default()).await;
    let http = reqwest::Client::new();
    let get = async |path: &str| -> serde_json::Value {
        let body = http.get(format!("http://{addr}{path}")).send().await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    let drawing = get("/api/layout").await;
    assert_eq!(drawing["blocks"].as_array().unwrap().len(), 11);
    assert_eq!(drawing["detectors"].as_array().unwrap().len(), 22);
    let state = get("/api/state").await;
    let blocks = state["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 11);
    assert!(blocks.iter().any(|b| b["id"] == "shinjyuku_down_b1" && b["occupied"] == false), "{state}");

    let mut ws = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/v2")).await.unwrap().0;
    let snap = expect(&mut ws, |v| v["type"] == "snapshot").await;
    assert_eq!(snap["blocks"].as_array().unwrap().len(), 11);
    let send = |v: serde_json::Value| Message::Text(v.to_string().into());
    ws.send(send(serde_json::json!({"id": 1, "cmd": "device", "name": "shinjyuku_down_s1", "state": "OFF"})))
        .await
        .unwrap();
    assert_eq!(expect(&mut ws, |v| v["id"] == 1).await["type"], "ack");
    expect(&mut ws, |v| v["type"] == "block" && v["id"] == "shinjyuku_down_b1" && v["occupied"] == true).await;
    ws.send(send(serde_json::json!({"id": 2, "cmd": "device", "name": "shinjyuku_down_s1", "state": "ON"})))
        .await
        .unwrap();
    assert_eq!(expect(&mut ws, |v| v["id"] == 2).await["type"], "ack");
    ws.send(send(serde_json::json!({"id": 3, "cmd": "device", "name": "shinjyuku_down_s1", "state": "OFF"})))
        .await
        .unwrap();
    let r = expect(&mut ws, |v| v["id"] == 3).await;
    assert_eq!((r["type"].as_str(), r["rule"].as_str()), (Some("rejected"), Some("block occupied")), "{r}");
    assert!(r["reason"].as_str().unwrap().contains("shinjyuku_down_b1"), "{r}");
    expect(&mut ws, |v| v["type"] == "block" && v["id"] == "shinjyuku_down_b1" && v["occupied"] == false).await;
    track.stop();
}
