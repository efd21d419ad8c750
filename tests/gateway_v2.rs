//! The v2 WebSocket protocol: command ids with acks and reasons, snapshots, devices, trains, events.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hil::track::{Setup, Track};
use tokio_tungstenite::tungstenite::Message;

use crate::hil_track::{config, until};
use crate::support::layout_2021;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect() -> (Track, Ws) {
    let track = Track::start(layout_2021(), Setup { config: config(), ..Setup::default() }).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    let app = gateway::server::router(track.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ws = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/v2")).await.expect("connect").0;
    (track, ws)
}

async fn next_of(ws: &mut Ws, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next()).await.expect("a frame in time").expect("open").expect("frame");
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON");
            if want(&v) {
                return v;
            }
        }
    }
}

async fn send(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_acked_or_refused_with_reasons_and_changes_stream_in() {
    let (track, mut ws) = connect().await;
    let snap = next_of(&mut ws, |v| v["type"] == "snapshot").await;
    assert_eq!(snap["devices"].as_array().unwrap().len(), 39);
    assert_eq!(snap["trains"][0]["name"], "TAKAO");
    assert!(snap["trains"][0]["x"].as_f64().unwrap() > 900.0, "schematic coordinates for the page");

    send(&mut ws, serde_json::json!({"id": 1, "cmd": "device", "name": "chofu_b3", "state": "OFF"})).await;
    assert_eq!(next_of(&mut ws, |v| v["id"] == 1).await["type"], "ack");
    let d = next_of(&mut ws, |v| v["type"] == "device").await;
    assert_eq!((d["name"].as_str(), d["state"].as_str()), (Some("chofu_b3"), Some("OFF")));

    send(&mut ws, serde_json::json!({"id": 2, "cmd": "device", "name": "meidaimae_s1", "state": "OFF"})).await;
    let r = next_of(&mut ws, |v| v["id"] == 2).await;
    assert_eq!((r["type"].as_str(), r["rule"].as_str()), (Some("rejected"), Some("route occupied")));
    assert!(r["reason"].as_str().unwrap().contains("OKUTAMA"), "{r}");

    send(&mut ws, serde_json::json!({"id": 3, "cmd": "speed", "train": "TAKAO", "speed_mm_s": 999})).await;
    let f = next_of(&mut ws, |v| v["id"] == 3).await;
    assert_eq!(f["type"], "failed");
    assert!(f["reason"].as_str().unwrap().contains("out of range"), "{f}");

    send(&mut ws, serde_json::json!({"id": 4, "cmd": "jump"})).await;
    assert_eq!(next_of(&mut ws, |v| v["id"] == 4).await["type"], "error");
    send(&mut ws, serde_json::json!({"cmd": "snapshot"})).await;
    let e = next_of(&mut ws, |v| v["type"] == "error").await;
    assert!(e["reason"].as_str().unwrap().contains("needs an id"), "{e}");
    send(&mut ws, serde_json::json!({"id": 5, "cmd": "snapshot"})).await;
    next_of(&mut ws, |v| v["type"] == "snapshot").await;

    // Released, CHICHIBU moves: trains frames and its sensor passes stream in.
    send(&mut ws, serde_json::json!({"id": 6, "cmd": "device", "name": "kudanshita_s6", "state": "OFF"})).await;
    assert_eq!(next_of(&mut ws, |v| v["id"] == 6).await["type"], "ack");
    next_of(&mut ws, |v| v["type"] == "trains" && v["trains"][1]["speed_mm_s"].as_u64().unwrap_or(0) > 0).await;
    track.stop();
}
