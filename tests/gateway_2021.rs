//! The gateway's 2021 WebSocket protocol, state API and sensor ingest, end to end on loopback.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use hil::track::{Setup, Track};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{config, connect, expect, frame, gateway_with, layout_2021, next, serve, started, until};

async fn gateway() -> (Track, std::net::SocketAddr) {
    gateway_with(gateway::core::Options::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2021_client_operates_devices_and_every_client_sees_the_change() {
    let (track, addr) = gateway().await;
    let mut a = connect(addr).await;
    let mut b = connect(addr).await;
    // On connect every device's state arrives.
    expect(&mut a, |v| *v == frame("chofu_b3", "ON")).await;
    expect(&mut b, |v| *v == frame("chofu_s2", "OFF")).await;
    a.send(Message::Text(frame("chofu_b3", "OFF").to_string().into())).await.unwrap();
    expect(&mut a, |v| *v == frame("chofu_b3", "OFF")).await;
    expect(&mut b, |v| *v == frame("chofu_b3", "OFF")).await;
    // Every 2 s every state is sent again.
    let started = Instant::now();
    expect(&mut b, |v| *v == frame("motoyawata_s1", "ON")).await;
    expect(&mut b, |v| *v == frame("motoyawata_s1", "ON")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // The interlocking's refusal comes back as an error frame with its reason, and (as the 2021 page ignores
    // error frames) the device's state as it is, right behind it; nothing changes.
    a.send(Message::Text(frame("meidaimae_s1", "OFF").to_string().into())).await.unwrap();
    let e = expect(&mut a, |v| v.get("error").is_some()).await;
    assert!(e["error"].as_str().unwrap().contains("OKUTAMA"), "{e}");
    assert_eq!(next(&mut a).await, frame("meidaimae_s1", "ON"), "the refusing client is told the truth");
    // Speed frames on /ws too, on the 2021 scale: percent of the train's top speed.
    a.send(Message::Text(r#"{"train_name": "NIKKO", "speed": 50}"#.into())).await.unwrap();
    until("speed set", Duration::from_secs(5), async || track.state().await.trains[4].set_speed == 150).await;
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_clear_errors_and_the_server_carries_on() {
    let (track, addr) = gateway().await;
    let mut ws = connect(addr).await;
    for (bad, says) in [
        (r#"{"station_name": "iwamotocho_b2", "state": "ON"}"#, "unknown device iwamotocho_b2"),
        (r#"{"station_name": "chofu_b1", "state": "UP"}"#, "unknown state UP"),
        (r#"{"train_name": "TAKAO", "speed": 101}"#, "out of range"),
        (r#"{"train_name": "THOMAS", "speed": 1}"#, "unknown train THOMAS"),
        ("{not json", "not a JSON frame"),
        (r#"{"hello": 1}"#, "a frame needs"),
    ] {
        ws.send(Message::Text(bad.into())).await.unwrap();
        let e = expect(&mut ws, |v| v.get("error").is_some()).await;
        assert!(e["error"].as_str().unwrap().contains(says), "{bad}: {e}");
    }
    // An oversized frame closes that connection only.
    let _ = ws.send(Message::Text("x".repeat(10_000).into())).await;
    let mut other = connect(addr).await;
    other.send(Message::Text(frame("chofu_b3", "OFF").to_string().into())).await.unwrap();
    expect(&mut other, |v| *v == frame("chofu_b3", "OFF")).await;
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_api_and_sensor_ingest_are_served() {
    let (track, addr) = gateway().await;
    let http = reqwest::Client::new();
    let state: serde_json::Value = serde_json::from_slice(
        &http.get(format!("http://{addr}/api/state")).send().await.unwrap().bytes().await.unwrap(),
    )
    .unwrap();
    assert_eq!(state["mode"], "sim");
    assert_eq!(state["devices"].as_array().unwrap().len(), 39);
    assert_eq!(state["trains"].as_array().unwrap().len(), 8);
    assert_eq!(state["trains"][0]["name"], "TAKAO");
    assert_eq!(state["boards"].as_array().unwrap().len(), 5, "four servo boards and TAKAO's controller");
    let ingest = |body: &'static str| http.post(format!("http://{addr}/registerPosition")).body(body).send();
    // The Motoyawata sensor board's address is loopback in the 2021 layout; Kudanshita's is not this sender.
    assert_eq!(ingest(r#"{"mac_address":"127.0.0.1","pin":1,"train_id":1}"#).await.unwrap().status().as_u16(), 200);
    assert_eq!(ingest(r#"{"mac_address":"192.168.1.102","pin":1,"train_id":1}"#).await.unwrap().status().as_u16(), 403);
    assert_eq!(ingest(r#"{"mac_address":"10.0.0.1","pin":1,"train_id":1}"#).await.unwrap().status().as_u16(), 403);
    track.stop();
}

/// The value of the sample `name` (with its labels, as Prometheus prints them) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_this_gateway_s_clients_commands_and_board_health() {
    let (track, addr) = gateway().await;
    let metrics = async || reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    // A new gateway has counted no command yet, whatever other gateways of the process did.
    assert_eq!(sample(&metrics().await, r#"plarail_commands_total{result="applied",target="chofu_b3"}"#), None);
    let mut ws = connect(addr).await;
    ws.send(Message::Text(frame("chofu_b3", "OFF").to_string().into())).await.unwrap();
    expect(&mut ws, |v| *v == frame("chofu_b3", "OFF")).await;
    ws.send(Message::Text(frame("meidaimae_s1", "OFF").to_string().into())).await.unwrap();
    expect(&mut ws, |v| v.get("error").is_some()).await;
    let text = metrics().await;
    for (name, value) in [
        (r#"plarail_commands_total{result="applied",target="chofu_b3"}"#, 1.0),
        (r#"plarail_commands_total{result="rejected",target="meidaimae_s1"}"#, 1.0),
        (r#"plarail_command_seconds_count{result="applied"}"#, 1.0),
        (r#"plarail_clients{protocol="2021"}"#, 1.0),
        (r#"plarail_mode{mode="sim"}"#, 1.0),
        (r#"plarail_board_up{board="servo-107"}"#, 1.0),
    ] {
        assert_eq!(sample(&text, name), Some(value), "{name} in /metrics:\n{text}");
    }
    drop(ws);
    until("the client counted out", Duration::from_secs(5), async || {
        sample(&metrics().await, r#"plarail_clients{protocol="2021"}"#) == Some(0.0)
    })
    .await;
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_charts_only_metrics_a_gateway_exports() {
    let text = std::fs::read_to_string(crate::support::repo("gateway/grafana/plarail-twin.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    // What a gateway that has seen a command of each result, a client and a gRPC request exports.
    let (track, addr) = gateway().await;
    let mut ws = connect(addr).await;
    ws.send(Message::Text(frame("chofu_b3", "OFF").to_string().into())).await.unwrap();
    expect(&mut ws, |v| *v == frame("chofu_b3", "OFF")).await;
    let metrics = async || reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    // The real-time factor is sampled every second.
    until("the first sample", Duration::from_secs(10), async || {
        metrics().await.contains("plarail_sim_real_time_factor")
    })
    .await;
    let exported = metrics().await;
    let names: std::collections::BTreeSet<&str> =
        exported.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        let metric =
            expr.split(|c: char| !(c.is_alphanumeric() || c == '_')).find(|w| w.starts_with("plarail_")).unwrap();
        let base = metric.trim_end_matches("_bucket");
        assert!(names.contains(base), "{expr} charts {base}, which the gateway does not export:\n{exported}");
    }
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_over_the_rate_limit_get_an_error_and_others_carry_on() {
    let limits = gateway::limits::Limits { per_connection: 2.0, per_address: 100.0, origins: Vec::new() };
    let (track, addr) = gateway_with(gateway::core::Options { limits, ..Default::default() }).await;
    let mut flood = connect(addr).await;
    for _ in 0..6 {
        flood.send(Message::Text(frame("kudanshita_s5", "ON").to_string().into())).await.unwrap();
    }
    let e = expect(&mut flood, |v| v.get("error").is_some()).await;
    assert!(e["error"].as_str().unwrap().contains("too many commands"), "{e}");
    let mut calm = connect(addr).await;
    calm.send(Message::Text(frame("chofu_b3", "OFF").to_string().into())).await.unwrap();
    expect(&mut calm, |v| *v == frame("chofu_b3", "OFF")).await;
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_open_a_websocket() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let limits = gateway::limits::Limits { origins: vec!["http://plarail.example".into()], ..Default::default() };
    let (track, addr) = gateway_with(gateway::core::Options { limits, ..Default::default() }).await;
    let request = |origin: &str| {
        let mut r = format!("ws://{addr}/ws").into_client_request().unwrap();
        r.headers_mut().insert("origin", origin.parse().unwrap());
        r
    };
    assert!(tokio_tungstenite::connect_async(request("http://evil.example")).await.is_err());
    assert!(tokio_tungstenite::connect_async(request("http://plarail.example")).await.is_ok());
    track.stop();
}

/// As in 2021, a command for the state a device already has is echoed to every client at once (it moves
/// nothing, so the simulation reports no change): on the 2021 feed itself, not only at the 2-second resend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_for_the_current_state_is_echoed_to_every_client_at_once() {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let core = gateway::core::Core::start(track.clone(), gateway::core::Options::default()).await.unwrap();
    let mut feed = core.feeds().v2021.subscribe();
    let chofu_b3 = track.layout().device_id("chofu_b3").unwrap();
    assert_eq!(track.desired(chofu_b3), sim::layout::OnOff::On);
    let request = sim::interlocking::Request::Device { device: chofu_b3, state: sim::layout::OnOff::On };
    assert_eq!(core.apply(request, wire::record::Caller::default()).await, hil::track::Outcome::Applied);
    let echo = tokio::time::timeout(Duration::from_secs(1), feed.recv()).await.expect("echoed at once").unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(echo.as_str()).unwrap(), frame("chofu_b3", "ON"));
    // And over the socket, to a client other than the one that asked.
    let addr = serve(track.clone(), gateway::core::Options::default()).await;
    let (mut a, mut b) = (connect(addr).await, connect(addr).await);
    expect(&mut b, |v| *v == frame("chofu_b3", "ON")).await;
    a.send(Message::Text(frame("chofu_b3", "ON").to_string().into())).await.unwrap();
    expect(&mut b, |v| *v == frame("chofu_b3", "ON")).await;
    track.stop();
}

/// A client that sends its request's headers slower than the gateway allows is disconnected; one whose report
/// body does not arrive is answered 408. Neither holds a connection for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_let_go() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (track, addr) = gateway().await;
    let started = Instant::now();
    let mut slow_header = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow_header.write_all(b"GET /api/state HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut slow_body = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow_body
        .write_all(b"POST /registerPosition HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{\"mac_address\"")
        .await
        .unwrap();
    let limit = gateway::server::HEADER_TIMEOUT + Duration::from_secs(10);
    let mut answer = String::new();
    tokio::time::timeout(limit, slow_body.read_to_string(&mut answer)).await.expect("answered").ok();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(limit, slow_header.read_to_end(&mut rest)).await.expect("let go");
    assert!(closed.is_ok() || rest.is_empty());
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    track.stop();
}
