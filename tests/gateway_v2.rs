//! The v2 WebSocket protocol: command ids with acks and reasons, snapshots, devices, trains, events.

use std::time::Duration;

use hil::track::{Setup, Track};

use crate::support::{Ws, config, expect, gateway_with, layout_2021, send, serve, started, until};

async fn connect() -> (Track, Ws) {
    connect_with(gateway::core::Options::default()).await
}

async fn connect_with(options: gateway::core::Options) -> (Track, Ws) {
    let (track, addr) = gateway_with(options).await;
    (track, v2(addr).await)
}

async fn v2(addr: std::net::SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws/v2")).await.expect("connect").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_acked_or_refused_with_reasons_and_changes_stream_in() {
    let (track, mut ws) = connect().await;
    let snap = expect(&mut ws, |v| v["type"] == "snapshot").await;
    assert_eq!(snap["devices"].as_array().unwrap().len(), 39);
    assert_eq!(snap["trains"][0]["name"], "TAKAO");
    assert!(snap["trains"][0]["x"].as_f64().unwrap() > 900.0, "schematic coordinates for the page");

    send(&mut ws, serde_json::json!({"id": 1, "cmd": "device", "name": "chofu_b3", "state": "OFF"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 1).await["type"], "ack");
    let d = expect(&mut ws, |v| v["type"] == "device").await;
    assert_eq!((d["name"].as_str(), d["state"].as_str()), (Some("chofu_b3"), Some("OFF")));

    send(&mut ws, serde_json::json!({"id": 2, "cmd": "device", "name": "meidaimae_s1", "state": "OFF"})).await;
    let r = expect(&mut ws, |v| v["id"] == 2).await;
    assert_eq!((r["type"].as_str(), r["rule"].as_str()), (Some("rejected"), Some("route occupied")));
    assert!(r["reason"].as_str().unwrap().contains("OKUTAMA"), "{r}");

    send(&mut ws, serde_json::json!({"id": 3, "cmd": "speed", "train": "TAKAO", "speed": 999})).await;
    let f = expect(&mut ws, |v| v["id"] == 3).await;
    assert_eq!((f["type"].as_str(), f["rule"].as_str()), (Some("rejected"), Some("out of range")));
    assert!(f["reason"].as_str().unwrap().contains("out of range"), "{f}");
    send(&mut ws, serde_json::json!({"id": 31, "cmd": "speed", "train": "NIKKO", "speed": 40})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 31).await["type"], "ack");
    let s = expect(&mut ws, |v| v["type"] == "speed").await;
    assert_eq!((s["train"].as_str(), s["speed"].as_i64()), (Some("NIKKO"), Some(40)));

    send(&mut ws, serde_json::json!({"id": 4, "cmd": "jump"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 4).await["type"], "error");
    send(&mut ws, serde_json::json!({"cmd": "snapshot"})).await;
    let e = expect(&mut ws, |v| v["type"] == "error").await;
    assert!(e["reason"].as_str().unwrap().contains("needs an id"), "{e}");
    send(&mut ws, serde_json::json!({"id": 5, "cmd": "snapshot"})).await;
    expect(&mut ws, |v| v["type"] == "snapshot").await;

    // Released, CHICHIBU moves: trains frames and its sensor passes stream in.
    send(&mut ws, serde_json::json!({"id": 6, "cmd": "device", "name": "kudanshita_s6", "state": "OFF"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 6).await["type"], "ack");
    expect(&mut ws, |v| v["type"] == "trains" && v["trains"][1]["speed_mm_s"].as_u64().unwrap_or(0) > 0).await;
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_need_the_token() {
    let options = gateway::core::Options { operator_token: Some("s3cret".into()), ..Default::default() };
    let (track, mut ws) = connect_with(options).await;
    expect(&mut ws, |v| v["type"] == "snapshot").await;
    send(&mut ws, serde_json::json!({"id": 1, "cmd": "operator", "token": "guess", "action": "emergency_stop"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 1).await["type"], "denied");
    send(&mut ws, serde_json::json!({"id": 2, "cmd": "operator", "token": "s3cret", "action": "fly"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 2).await["type"], "error");
    // Emergency stop: every stop rail raised, every train at speed 0.
    send(&mut ws, serde_json::json!({"id": 3, "cmd": "device", "name": "kitano_s5", "state": "OFF"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 3).await["type"], "ack");
    send(&mut ws, serde_json::json!({"id": 4, "cmd": "operator", "token": "s3cret", "action": "emergency_stop"})).await;
    let done = expect(&mut ws, |v| v["id"] == 4).await;
    assert_eq!(done["type"], "ack", "{done}");
    let state = track.state().await;
    let layout = track.layout();
    for (d, p) in layout.devices.iter().zip(&state.devices) {
        if d.kind == sim::layout::DeviceKind::StopRail {
            assert_eq!(*p, sim::track::DevicePosition::On, "{} raised", d.name);
        }
    }
    let layout = track.layout().clone();
    assert!((0..layout.trains.len()).all(|t| track.speed(t) == 0));
    // TAKAO's speed goes through its controller: 0 there too.
    until("TAKAO stopped", Duration::from_secs(5), async || track.state().await.trains[0].set_speed == 0).await;
    assert!(state.trains.iter().skip(1).all(|t| t.set_speed == 0));
    // Reset: back to the initial speeds (and devices, as far as the interlocking allows).
    send(&mut ws, serde_json::json!({"id": 5, "cmd": "operator", "token": "s3cret", "action": "reset"})).await;
    let reset = expect(&mut ws, |v| v["id"] == 5).await;
    assert!(reset["type"] == "ack" || reset["type"] == "failed", "{reset}");
    let initial = |t: usize| sim::interlocking::on_scale(&layout, t, layout.trains[t].speed);
    assert!((0..layout.trains.len()).all(|t| track.speed(t) == initial(t)));
    let state = track.state().await;
    assert!(state.trains.iter().skip(1).all(|t| t.set_speed == sim::interlocking::mm_s(&layout, t.id, initial(t.id))));
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_no_operator_action_is_allowed() {
    let (track, mut ws) = connect().await;
    expect(&mut ws, |v| v["type"] == "snapshot").await;
    send(&mut ws, serde_json::json!({"id": 1, "cmd": "operator", "token": "", "action": "sim"})).await;
    assert_eq!(expect(&mut ws, |v| v["id"] == 1).await["type"], "denied");
    assert!(!gateway::operator::authorised(None, ""));
    assert!(gateway::operator::authorised(Some("abc"), "abc"));
    assert!(!gateway::operator::authorised(Some("abc"), "abd"));
    assert!(!gateway::operator::authorised(Some("abc"), "abcd"));
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_festival_live_toggle_from_the_operator_shows_what_it_checked() {
    let real =
        hil::virtual_devices::rig::Rig::start(layout_2021(), &std::collections::HashMap::new(), 1.0).await.unwrap();
    let live_boards = real.layout.boards.iter().zip(real.addresses()).map(|(b, a)| (b.name.clone(), a)).collect();
    let track = started(layout_2021(), Setup { live_boards, config: config(), ..Setup::default() }).await;
    let options = gateway::core::Options { operator_token: Some("tok".into()), ..Default::default() };
    let mut ws = v2(serve(track.clone(), options).await).await;
    expect(&mut ws, |v| v["type"] == "snapshot").await;
    send(&mut ws, serde_json::json!({"id": 1, "cmd": "operator", "token": "tok", "action": "live"})).await;
    let done = expect(&mut ws, |v| v["id"] == 1).await;
    assert_eq!(done["type"], "ack", "{done}");
    let detail = done["detail"].as_str().unwrap();
    assert!(detail.starts_with("mode Live") && detail.matches("answers").count() == 5, "{detail}");
    assert_eq!(expect(&mut ws, |v| v["type"] == "mode").await["mode"], "live");
    assert_eq!(track.mode(), sim::twin::Mode::Live);
    track.stop();
    real.sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_layout_picture_are_served_from_the_gateway() {
    let (track, addr) = gateway_with(gateway::core::Options::default()).await;
    let get = async |path: &str| {
        let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        (r.status().as_u16(), kind, r.text().await.unwrap())
    };
    let (status, kind, page) = get("/").await;
    assert_eq!((status, kind.starts_with("text/html")), (200, true));
    // Everything the page loads comes from the gateway itself: no CDN.
    assert!(page.contains("/page.js") && page.contains("/page.css") && !page.contains("https://"), "{page}");
    assert!(get("/page.js").await.1.starts_with("text/javascript"));
    assert!(get("/page.css").await.1.starts_with("text/css"));
    let (status, _, layout) = get("/api/layout").await;
    let layout: serde_json::Value = serde_json::from_str(&layout).unwrap();
    assert_eq!(status, 200);
    assert_eq!(layout["devices"].as_array().unwrap().len(), 39);
    let chofu_b3 = layout["devices"].as_array().unwrap().iter().find(|d| d["name"] == "chofu_b3").unwrap();
    assert_eq!(chofu_b3["kind"], "switch");
    assert!(chofu_b3["on"].is_array() && chofu_b3["off"].is_array(), "{chofu_b3}");
    assert_eq!(layout["stations"][0]["name_ja"], "本八幡");
    track.stop();
}
