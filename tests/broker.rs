//! The on-site core and public edges over a real MQTT broker (mosquitto, started here on a free loopback port):
//! commands through an edge, two edges seeing each other's commands, the core gone and back, a command in flight
//! when the core dies, the broker restarted, a command delivered twice, an edge started before the broker.
//! And the broker wire's plain logic, which needs no broker.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use gateway::broker::connect::Broker;
use gateway::broker::edge::{LOST_REASON, OFFLINE_REASON};
use gateway::broker::on_site::LATE_REASON;
use gateway::broker::wire::{
    Beat, ChangeMessage, CommandMessage, Effect, Follow, Received, Reply, Seen, SnapshotMessage, Topic, Topics,
};
use sim::layout::OnOff;
use sim::twin::Mode;
use tokio_tungstenite::tungstenite::Message;
use wire::v2::{Command as V2Command, Device, ServerFrame, State};

use crate::support::{
    Mosquitto, SecureBroker, TwinProcess, Ws, api_state, core, core_of_its_own, device_state, edge, edge_core,
    edge_with_video, expect, expect_within, frame, free_port, send, topics, until, ws,
};

const MOSQUITTO: &str = "needs mosquitto (Debian package mosquitto)";

/// How long a recovery may take on a busy machine (a process restarted, a reconnect after backoff).
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn two_edges_carry_commands_to_the_core_and_see_each_others_as_from_one_process() {
    let _ = MOSQUITTO;
    let mosquitto = Mosquitto::start();
    let broker = mosquitto.broker();
    let (_track, _core, core_addr) = core(&broker, Default::default()).await;
    let (a, b) = (edge(&broker).await, edge(&broker).await);

    // The edges serve the core's layout and state.
    let layout = |addr: SocketAddr| async move {
        reqwest::get(format!("http://{addr}/api/layout")).await.unwrap().text().await.unwrap()
    };
    assert_eq!(layout(a).await, layout(core_addr).await);
    let mut on_a = ws(a, "/ws/v2").await;
    let snapshot = expect(&mut on_a, |v| v["type"] == "snapshot").await;
    assert_eq!(snapshot["devices"].as_array().unwrap().len(), 39);
    assert_eq!(snapshot["online"], true);
    let mut on_b = ws(b, "/ws/v2").await;
    let mut old_b = ws(b, "/ws").await;
    expect(&mut old_b, |v| *v == frame("chofu_b3", "ON")).await;

    // A command on edge A: acknowledged by the core, seen on edge B by both protocols.
    send(&mut on_a, serde_json::json!({"id": 1, "cmd": "device", "name": "chofu_b3", "state": "OFF"})).await;
    assert_eq!(expect(&mut on_a, |v| v["id"] == 1).await["type"], "ack");
    let d = expect(&mut on_b, |v| v["type"] == "device" && v["name"] == "chofu_b3").await;
    assert_eq!(d["state"], "OFF");
    expect(&mut old_b, |v| *v == frame("chofu_b3", "OFF")).await;
    assert_eq!(device_state(&api_state(b).await, "chofu_b3").as_deref(), Some("OFF"));
    assert_eq!(device_state(&api_state(core_addr).await, "chofu_b3").as_deref(), Some("OFF"));

    // A refusal carries the interlocking's rule and reason, as on one process.
    send(&mut on_b, serde_json::json!({"id": 2, "cmd": "device", "name": "meidaimae_s1", "state": "OFF"})).await;
    let r = expect(&mut on_b, |v| v["id"] == 2).await;
    assert_eq!((r["type"].as_str(), r["rule"].as_str()), (Some("rejected"), Some("route occupied")), "{r}");
    assert!(r["reason"].as_str().unwrap().contains("OKUTAMA"), "{r}");
    // The 2021 page is told the error, then the truth.
    old_b.send(Message::Text(frame("meidaimae_s1", "OFF").to_string().into())).await.unwrap();
    let error = expect(&mut old_b, |v| v.get("error").is_some()).await;
    assert!(error["error"].as_str().unwrap().contains("OKUTAMA"), "{error}");
    expect(&mut old_b, |v| *v == frame("meidaimae_s1", "ON")).await;

    // Speeds go across too, and reach a /speed client of the other edge.
    let mut speed_a = ws(a, "/speed").await;
    send(&mut on_b, serde_json::json!({"id": 3, "cmd": "speed", "train": "NIKKO", "speed": 40})).await;
    assert_eq!(expect(&mut on_b, |v| v["id"] == 3).await["type"], "ack");
    expect(&mut speed_a, |v| v["train_name"] == "NIKKO" && v["speed"] == 40).await;

    // Operator actions carry the token to the core, which alone decides.
    send(&mut on_a, serde_json::json!({"id": 4, "cmd": "operator", "token": "guess", "action": "emergency_stop"}))
        .await;
    assert_eq!(expect(&mut on_a, |v| v["id"] == 4).await["type"], "denied");
    // The trains, as on the core.
    let names = |s: serde_json::Value| -> Vec<String> {
        s["trains"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(api_state(b).await), names(api_state(core_addr).await));
    assert!(!names(api_state(b).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn an_operator_action_through_an_edge_is_done_by_the_core() {
    let mosquitto = Mosquitto::start();
    let broker = mosquitto.broker();
    let token = "0123456789abcdef-operator";
    let options = gateway::core::Options { operator_token: Some(token.into()), ..Default::default() };
    let (track, _core, _) = core(&broker, options).await;
    let mut on_edge = ws(edge(&broker).await, "/ws/v2").await;
    send(&mut on_edge, serde_json::json!({"id": 1, "cmd": "operator", "token": token, "action": "emergency_stop"}))
        .await;
    let done = expect(&mut on_edge, |v| v["id"] == 1).await;
    assert_eq!(done["type"], "ack", "{done}");
    assert!(done["detail"].as_str().unwrap().contains("emergency stop"), "{done}");
    assert!(track.speeds().iter().all(|&s| s == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn a_2021_grpc_client_drives_the_core_through_an_edge() {
    use gateway::grpc::{v2, v2021};
    let mosquitto = Mosquitto::start();
    let broker = mosquitto.broker();
    let (track, _core, _) = core(&broker, Default::default()).await;
    let on_edge = edge_core(&broker).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway::grpc::Grpc::new(on_edge).serve(listener, std::future::pending()));
    let command = |id: v2021::StationId, state: v2021::State| v2021::RequestSync {
        station: Some(v2021::Stations { station_id: id as i32 }),
        state: state as i32,
    };
    let mut control = v2021::control_client::ControlClient::connect(url.clone()).await.unwrap();
    let ok = control.command2_internal(command(v2021::StationId::ChofuB3, v2021::State::Off)).await.unwrap();
    assert_eq!(ok.into_inner().response, v2021::Response::Success as i32);
    let chofu_b3 = track.layout().device_id("chofu_b3").unwrap();
    assert_eq!(track.state().await.devices[chofu_b3].state(), Some(OnOff::Off), "driven on the core's track");
    let refused = control.command2_internal(command(v2021::StationId::MeidaimaeS1, v2021::State::Off)).await.unwrap();
    assert_eq!(refused.into_inner().response, v2021::Response::Failed as i32);
    // The v2 feed on the edge: the core's state.
    let mut twin = v2::twin_client::TwinClient::connect(url).await.unwrap();
    let mut feed = twin.watch_state(v2::WatchRequest {}).await.unwrap().into_inner();
    let first = feed.message().await.unwrap().unwrap();
    assert_eq!((first.devices.len(), first.trains.len()), (39, 8));
    assert_eq!(first.devices.iter().find(|d| d.name == "chofu_b3").unwrap().state, "OFF");
}

/// A core as its own process (`plarail-twin serve --broker`), killed with -9 when dropped.
struct CoreProcess(Child);

impl CoreProcess {
    fn start(broker: &str, data_dir: &std::path::Path) -> CoreProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_plarail-twin"))
            .args(["serve", "--broker", broker, "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"])
            .args(["--log", "warn", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the core");
        CoreProcess(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for CoreProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn a_core_killed_is_shown_offline_at_once_and_comes_back_with_its_journal() {
    let mosquitto = Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let mut core = CoreProcess::start(&mosquitto.url(), data.path());
    let edge_addr = edge(&mosquitto.broker()).await;
    until("the edge sees the core online", Duration::from_secs(20), async || {
        api_state(edge_addr).await["online"] == true
    })
    .await;
    let mut on_edge = ws(edge_addr, "/ws/v2").await;
    expect(&mut on_edge, |v| v["type"] == "snapshot" && v["online"] == true).await;
    // Wait out the start-up restore: until then the boards take no command.
    let mut id = 0;
    let mut last = String::new();
    let mut ack = async |ws: &mut Ws, name: &str, state: &str| {
        for _ in 0..100 {
            id += 1;
            send(ws, serde_json::json!({"id": id, "cmd": "device", "name": name, "state": state})).await;
            let answer = expect(ws, |v| v["id"] == id).await;
            if answer["type"] == "ack" {
                return;
            }
            last = answer.to_string();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name} {state} never acknowledged: {last}");
    };
    ack(&mut on_edge, "chofu_b3", "OFF").await;

    core.kill();
    let killed = std::time::Instant::now();
    expect(&mut on_edge, |v| v["type"] == "online" && v["online"] == false).await;
    assert!(killed.elapsed() < Duration::from_secs(2), "offline shown after {:?}", killed.elapsed());
    assert_eq!(api_state(edge_addr).await["online"], false);
    send(&mut on_edge, serde_json::json!({"id": 1000, "cmd": "device", "name": "chofu_b3", "state": "ON"})).await;
    let refused = expect(&mut on_edge, |v| v["id"] == 1000).await;
    assert_eq!((refused["type"].as_str(), refused["reason"].as_str()), (Some("failed"), Some(OFFLINE_REASON)));

    // Back: online again by itself, and the journal kept chofu_b3 where it was acknowledged.
    let _core = CoreProcess::start(&mosquitto.url(), data.path());
    expect_within(&mut on_edge, RECOVERY, |v| v["type"] == "online" && v["online"] == true).await;
    until("the restarted core's state on the edge", Duration::from_secs(20), async || {
        device_state(&api_state(edge_addr).await, "chofu_b3").as_deref() == Some("OFF")
    })
    .await;
    ack(&mut on_edge, "chofu_b3", "OFF").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn a_command_in_flight_when_the_core_dies_is_unknown_never_done() {
    let mosquitto = Mosquitto::start();
    let broker = mosquitto.broker();
    let (track, runtime) = core_of_its_own(&broker);
    let mut on_edge = ws(edge(&broker).await, "/ws/v2").await;
    expect(&mut on_edge, |v| v["type"] == "snapshot").await;
    // chofu_b3's board answers after 3 s.
    let board = track.layout().devices[track.layout().device_id("chofu_b3").unwrap()].board;
    track.virtual_boards()[board]
        .set_faults(hil::boards2021::virtual_board::Faults { latency_ms: 3000, ..Default::default() });
    send(&mut on_edge, serde_json::json!({"id": 1, "cmd": "device", "name": "chofu_b3", "state": "OFF"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    runtime.shutdown_background();
    let answer = expect(&mut on_edge, |v| v["id"] == 1).await;
    assert_eq!((answer["type"].as_str(), answer["reason"].as_str()), (Some("failed"), Some(LOST_REASON)), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn after_a_broker_restart_under_load_the_clients_keep_their_sockets_and_no_ack_is_lost() {
    let mosquitto = Mosquitto::start();
    let (port, broker) = (mosquitto.port, mosquitto.broker());
    let (track, _core, _) = core(&broker, Default::default()).await;
    let (a, b) = (edge(&broker).await, edge(&broker).await);
    let mut watcher = ws(b, "/ws/v2").await;
    // Four visitors, two on each edge, each toggling its own stop rail every 50 ms through the restart.
    let rails = ["chofu_s1", "chofu_s2", "sasazuka_s1", "kitano_s1"];
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut visitors = Vec::new();
    for (i, rail) in rails.iter().enumerate() {
        let (addr, rail) = (if i % 2 == 0 { a } else { b }, rail.to_string());
        let (running, restarted) = (running.clone(), restarted.clone());
        visitors.push(tokio::spawn(async move {
            let mut socket = ws(addr, "/ws/v2").await;
            // The last state acknowledged, whether a command after it got "unknown", acks after the restart.
            let after = || restarted.load(std::sync::atomic::Ordering::SeqCst);
            let (mut acked, mut unknown_since, mut acks) = (None::<String>, false, 0u32);
            let mut id = 0u64;
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                id += 1;
                let state = if id % 2 == 1 { "ON" } else { "OFF" };
                send(&mut socket, serde_json::json!({"id": id, "cmd": "device", "name": rail, "state": state})).await;
                let answer = expect(&mut socket, |v| v["id"] == id).await;
                match answer["type"].as_str() {
                    Some("ack") => {
                        (acked, unknown_since, acks) = (Some(state.to_string()), false, acks + u32::from(after()))
                    }
                    _ if answer["reason"].as_str().is_some_and(|r| r.contains("may or may not")) => {
                        unknown_since = true
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (rail, acked, unknown_since, acks)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(mosquitto);
    expect(&mut watcher, |v| v["type"] == "online" && v["online"] == false).await;
    let _back = Mosquitto::on(port);
    // Both sides reconnect with backoff; the same sockets carry on.
    expect_within(&mut watcher, RECOVERY, |v| v["type"] == "online" && v["online"] == true).await;
    until("edge A back online", Duration::from_secs(15), async || api_state(a).await["online"] == true).await;
    restarted.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for visitor in visitors {
        let (rail, acked, unknown_since, acks) = visitor.await.unwrap();
        assert!(acks > 0, "{rail}: no command acknowledged after the broker came back");
        let (Some(acked), false) = (acked, unknown_since) else { continue };
        // Every acknowledged state is on the track and on both edges.
        let device = track.layout().device_id(&rail).unwrap();
        let on_track = track.state().await.devices[device].state();
        assert_eq!(on_track.map(|s| if s == OnOff::On { "ON" } else { "OFF" }), Some(acked.as_str()), "{rail}");
        for edge in [a, b] {
            until("the edge shows the last acknowledged state", Duration::from_secs(5), async || {
                device_state(&api_state(edge).await, &rail).as_deref() == Some(acked.as_str())
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn a_command_the_broker_delivers_twice_is_carried_out_once() {
    let mosquitto = Mosquitto::start();
    let broker = mosquitto.broker();
    let (_track, core, _) = core(&broker, Default::default()).await;
    let (client, mut events) = broker.client("test-twice", None).unwrap();
    let reply_to = topics().topic(&Topic::Reply("test-twice".into()));
    client.subscribe(&reply_to, rumqttc::QoS::AtLeastOnce).await.unwrap();
    let publish = async |payload: Vec<u8>| {
        client.publish(topics().topic(&Topic::Command), rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap();
    };
    // The next message on the subscriptions (within 10 s in all: other events, pings among them, do not extend it).
    let next = async |events: &mut rumqttc::EventLoop| {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = events.poll().await.unwrap() {
                    return p;
                }
            }
        })
        .await
        .expect("a message in time")
    };
    let reply = async |events: &mut rumqttc::EventLoop| {
        let p = next(events).await;
        gateway::broker::wire::decode::<gateway::broker::wire::ReplyMessage>(&p.payload).unwrap()
    };
    // The core takes commands once it is online (its subscription comes before its `online`); a command carries
    // the last heartbeat its sender saw.
    client.subscribe(topics().topic(&Topic::Online), rumqttc::QoS::AtLeastOnce).await.unwrap();
    loop {
        let p = next(&mut events).await;
        if p.topic == topics().topic(&Topic::Online) && &p.payload[..] == b"online" {
            break;
        }
    }
    client.unsubscribe(topics().topic(&Topic::Online)).await.unwrap();
    client.subscribe(topics().topic(&Topic::Heartbeat), rumqttc::QoS::AtMostOnce).await.unwrap();
    let beat: Beat = loop {
        let p = next(&mut events).await;
        if p.topic == topics().topic(&Topic::Heartbeat) {
            break gateway::broker::wire::decode(&p.payload).unwrap();
        }
    };
    client.unsubscribe(topics().topic(&Topic::Heartbeat)).await.unwrap();
    let command = CommandMessage {
        id: "test-twice:1".into(),
        reply_to: reply_to.clone(),
        seen: Some(beat),
        command: V2Command::Device { name: "chofu_b3".into(), state: OnOff::Off },
        caller: None,
    };
    let payload = gateway::broker::wire::encode(&command);
    // Delivered twice at once (the second while the first is carried out), then once more after its reply.
    publish(payload.clone()).await;
    publish(payload.clone()).await;
    let first = reply(&mut events).await;
    publish(payload.clone()).await;
    let again = reply(&mut events).await;
    for r in [&first, &again] {
        assert_eq!((r.id.as_str(), &r.reply), ("test-twice:1", &Reply::Applied));
    }
    let metrics = core.metrics.render();
    let carried_out: Vec<&str> = metrics.lines().filter(|l| l.starts_with("plarail_commands_total")).collect();
    assert_eq!(carried_out.len(), 1, "{carried_out:?}");
    assert!(carried_out[0].contains("chofu_b3") && carried_out[0].ends_with(" 1"), "{carried_out:?}");
    // A command that saw no beat of this run of the core (sent before a cut, or to another run) is not carried out.
    for (n, seen) in [(2, None), (3, Some(Beat { epoch: beat.epoch - 1, ..beat }))] {
        let late = CommandMessage { id: format!("test-twice:{n}"), seen, ..command.clone() };
        publish(gateway::broker::wire::encode(&late)).await;
        let r = reply(&mut events).await;
        assert_eq!(r.id, format!("test-twice:{n}"));
        assert_eq!(r.reply, Reply::Failed { reason: LATE_REASON.into() });
    }
    assert!(core.metrics.render().contains("plarail_commands_late_total 2"), "the late commands counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn an_edge_started_before_the_broker_waits_and_starts_once_it_is_there() {
    let port = free_port();
    let broker = Broker::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let waiting = tokio::spawn({
        let broker = broker.clone();
        async move { edge(&broker).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "an edge without its broker cannot serve");
    let _mosquitto = Mosquitto::on(port);
    let _core = core(&broker, Default::default()).await;
    let addr = tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("the edge started").unwrap();
    assert_eq!(api_state(addr).await["online"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn a_watched_camera_crosses_to_an_edge_once_however_many_watch_it_there() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let mosquitto = Mosquitto::start();
    let broker = mosquitto.broker();
    let (_track, _core, core_addr) = core(&broker, Default::default()).await;
    let (edge_addr, edge_video) = edge_with_video(&broker, Some(format!("http://{core_addr}"))).await;
    let cameras = |addr: SocketAddr| async move {
        let text = reqwest::get(format!("http://{addr}/api/cameras")).await.unwrap().text().await.unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let viewers = |list: serde_json::Value| {
        list.as_array().unwrap().iter().find(|c| c["id"] == "chofu").unwrap()["viewers"].clone()
    };
    let base = format!("http://{edge_addr}");
    let (one, mut rx1) = crate::video::watch(&base, "chofu", true).await;
    let (two, mut rx2) = crate::video::watch(&base, "chofu", true).await;
    crate::video::decoded(&mut rx1, 10, Duration::from_secs(30)).await;
    crate::video::decoded(&mut rx2, 10, Duration::from_secs(30)).await;
    // Two viewers here, one upstream session on the core.
    assert_eq!(viewers(cameras(edge_addr).await), 2);
    assert_eq!(viewers(cameras(core_addr).await), 1);
    assert!(crate::video::camera(&edge_video, "chofu").on_air);
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("plarail_video_"), "the edge's video metrics");
    one.close().await;
    two.close().await;
    // No one watches here: the edge stops pulling.
    until("the upstream closed", Duration::from_secs(15), async || viewers(cameras(core_addr).await) == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto) and openssl"]
async fn over_tls_with_logins_only_the_core_writes_what_edges_show() {
    let secure = SecureBroker::start();
    let (_track, _core, _) = core(&secure.broker("core", "core-secret"), Default::default()).await;
    let edge_broker = secure.broker("edge", "edge-secret");
    let edge_addr = edge(&edge_broker).await;
    let mut on_edge = ws(edge_addr, "/ws/v2").await;
    expect(&mut on_edge, |v| v["type"] == "snapshot").await;

    // An edge's login (or anyone's) writing the state topics: the broker drops it, the edges show nothing of it.
    let (intruder, mut events) = edge_broker.client("plarail-edge-intruder", None).unwrap();
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let forged = SnapshotMessage {
        epoch: u64::MAX,
        seq: u64::MAX,
        state: State { online: true, ..snapshot_of(&[("chofu_b3", Some(OnOff::Off))]) },
    };
    let publish = async |topic: Topic, payload: Vec<u8>| {
        intruder.publish(topics().topic(&topic), rumqttc::QoS::AtLeastOnce, true, payload).await.unwrap();
    };
    publish(Topic::Snapshot, gateway::broker::wire::encode(&forged)).await;
    publish(Topic::Change, gateway::broker::wire::encode(&change(u64::MAX, 1, "chofu_b3", OnOff::Off))).await;
    publish(Topic::Online, b"offline".to_vec()).await;
    // A command whose reply would go to a state topic is not carried out.
    let bad = CommandMessage {
        id: "x:1".into(),
        reply_to: topics().topic(&Topic::Change),
        seen: None,
        command: V2Command::Device { name: "chofu_b3".into(), state: OnOff::Off },
        caller: None,
    };
    publish(Topic::Command, gateway::broker::wire::encode(&bad)).await;
    // A real command after them: once the edge shows it, what came before it has come too.
    send(&mut on_edge, serde_json::json!({"id": 1, "cmd": "device", "name": "chofu_s2", "state": "ON"})).await;
    assert_eq!(expect(&mut on_edge, |v| v["id"] == 1).await["type"], "ack");
    let now = api_state(edge_addr).await;
    assert_eq!(device_state(&now, "chofu_s2").as_deref(), Some("ON"));
    assert_eq!(device_state(&now, "chofu_b3").as_deref(), Some("ON"), "the forged state never reached the edge");
    assert_eq!(now["online"], true);

    // A wrong password, or plain MQTT on the TLS port, does not connect.
    for broker in
        [secure.broker("edge", "guess"), Broker::parse(&format!("mqtt://127.0.0.1:{}", secure.mosquitto.port)).unwrap()]
    {
        let (_client, mut events) = broker.client("plarail-edge-refused", None).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), events.poll()).await.expect("an answer");
        assert!(first.is_err(), "{broker:?} connected: {first:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn an_edge_killed_under_load_loses_its_clients_to_another_and_the_others_see_no_gap() {
    let mosquitto = Mosquitto::start();
    let (_track, _core, _) = core(&mosquitto.broker(), Default::default()).await;
    let (doomed, other) = (TwinProcess::edge(&mosquitto.url()).await, TwinProcess::edge(&mosquitto.url()).await);
    let mut on_doomed = ws(doomed.addr(), "/ws/v2").await;
    let mut doomed = Some(doomed);
    let mut on_other = ws(other.addr(), "/ws/v2").await;
    let mut watcher = ws(other.addr(), "/ws/v2").await;
    expect(&mut on_doomed, |v| v["type"] == "snapshot").await;
    expect(&mut watcher, |v| v["type"] == "snapshot").await;
    // Stop rails raised in turn (always allowed; one already raised is confirmed, and its frame sent again), from
    // the surviving edge, while the other one dies.
    let rails = ["chofu_s1", "chofu_s2", "sasazuka_s1", "kitano_s1"];
    let mut sent = Vec::new();
    for (i, rail) in rails.iter().cycle().take(12).enumerate() {
        if i == 4 {
            doomed.take();
        }
        let id = i as u64 + 1;
        send(&mut on_other, serde_json::json!({"id": id, "cmd": "device", "name": rail, "state": "ON"})).await;
        let answer = expect(&mut on_other, |v| v["id"] == id).await;
        assert_eq!(answer["type"], "ack", "{answer}");
        sent.push((rail.to_string(), "ON"));
    }
    // The other edge's watcher saw every acknowledged change, in order. Had its edge resynced meanwhile (an edge
    // that started from the retained snapshot, a second old, does at its first change), the snapshot stands for
    // every change it holds, whose frames are not sent again: a client is never left with a stale state.
    let mut seen = 0;
    while seen < sent.len() {
        let frame = expect(&mut watcher, |v| v["type"] == "device" || v["type"] == "snapshot").await;
        let holds = |(rail, state): &(String, &str)| match frame["type"].as_str() {
            Some("snapshot") => device_state(&frame, rail).as_deref() == Some(*state),
            _ => frame["name"] == rail.as_str() && frame["state"] == *state,
        };
        while seen < sent.len() && holds(&sent[seen]) {
            seen += 1;
            if frame["type"] == "device" {
                break;
            }
        }
    }
    // The dead edge's client lost its socket; reconnecting to the other edge, it starts from the whole state.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt;
        loop {
            match on_doomed.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the killed edge's socket closed");
    let mut moved = ws(other.addr(), "/ws/v2").await;
    let snapshot = expect(&mut moved, |v| v["type"] == "snapshot").await;
    let (last_rail, last_state) = sent.last().unwrap();
    let now = snapshot["devices"].as_array().unwrap().iter().find(|d| d["name"] == last_rail.as_str()).unwrap().clone();
    assert_eq!(now["state"], *last_state);
}

// The wire's plain logic.

fn snapshot_of(devices: &[(&str, Option<OnOff>)]) -> State {
    State {
        mode: Mode::Sim,
        operation: sim::auto::Operation::Manual,
        plans: Vec::new(),
        time_ms: 0,
        devices: devices.iter().map(|(n, s)| Device { name: n.to_string(), kind: None, state: *s }).collect(),
        trains: Vec::new(),
        boards: Vec::new(),
        blocks: Vec::new(),
        online: true,
    }
}

fn change(epoch: u64, seq: u64, name: &str, state: OnOff) -> ChangeMessage {
    ChangeMessage {
        epoch,
        seq,
        frame: ServerFrame::Device(Device { name: name.into(), kind: None, state: Some(state) }),
    }
}

#[test]
fn an_edge_applies_changes_in_order_once_and_resyncs_after_a_gap() {
    let mut f = Follow::default();
    // Before a snapshot, changes wait.
    assert!(f.change(change(7, 3, "a", OnOff::Off)).is_empty());
    let effects = f.snapshot(SnapshotMessage { epoch: 7, seq: 2, state: snapshot_of(&[("a", Some(OnOff::On))]) });
    assert!(matches!(&effects[0], Effect::Reset(s) if s.devices[0].state == Some(OnOff::On)));
    assert!(matches!(&effects[1], Effect::Frame(ServerFrame::Device(d)) if d.state == Some(OnOff::Off)));
    assert_eq!(f.state().unwrap().devices[0].state, Some(OnOff::Off));
    // The same change again (QoS 1 delivers at least once): nothing.
    assert!(f.change(change(7, 3, "a", OnOff::Off)).is_empty());
    assert_eq!(f.change(change(7, 4, "a", OnOff::On)).len(), 1);
    // A gap: nothing applied until a snapshot as new as the gap.
    assert!(f.change(change(7, 6, "a", OnOff::Off)).is_empty());
    assert!(!f.in_step());
    assert!(
        f.snapshot(SnapshotMessage { epoch: 7, seq: 3, state: snapshot_of(&[("a", Some(OnOff::Off))]) }).is_empty()
    );
    let effects = f.snapshot(SnapshotMessage { epoch: 7, seq: 5, state: snapshot_of(&[("a", Some(OnOff::On))]) });
    assert_eq!(effects.len(), 2, "{effects:?}");
    assert!(f.in_step());
    assert_eq!(f.state().unwrap().devices[0].state, Some(OnOff::Off));
    // A new run of the core (restarted): its numbers start again, from its snapshot.
    assert!(f.change(change(8, 1, "a", OnOff::On)).is_empty());
    let effects = f.snapshot(SnapshotMessage { epoch: 8, seq: 0, state: snapshot_of(&[("a", Some(OnOff::Off))]) });
    assert_eq!(effects.len(), 2);
    assert_eq!(f.state().unwrap().devices[0].state, Some(OnOff::On));
    // Offline and back: told once each.
    assert!(!f.state().unwrap().online, "offline until the core's `online` came");
    assert_eq!(f.online(true), vec![Effect::Frame(ServerFrame::Online { online: true })]);
    assert_eq!(f.online(false), vec![Effect::Frame(ServerFrame::Online { online: false })]);
    assert!(f.online(false).is_empty());
    assert!(!f.state().unwrap().online);
    assert_eq!(f.online(true).len(), 1);
}

#[test]
fn the_core_carries_out_a_command_id_once() {
    let mut r = Received::default();
    assert_eq!(r.begin("e:1"), Seen::New);
    assert_eq!(r.begin("e:1"), Seen::InProgress);
    r.finish("e:1", &Reply::Applied);
    assert_eq!(r.begin("e:1"), Seen::Done(Reply::Applied));
    assert_eq!(r.begin("e:2"), Seen::New);
}

#[test]
fn topics_and_broker_urls_are_read_strictly() {
    let t = topics();
    assert_eq!(t.topic(&Topic::Snapshot), "plarail/chofufes2021/snapshot");
    assert_eq!(t.parse("plarail/chofufes2021/reply/edge-1"), Some(Topic::Reply("edge-1".into())));
    assert_eq!(t.parse("plarail/chofufes2021/reply/a/b"), None);
    assert_eq!(t.parse("plarail/chofufes2021x/change"), None);
    assert_eq!(t.parse("plarail/chofufes2021/change"), Some(Topic::Change));
    assert!(Topics::new("plarail/#").is_err());
    let b = Broker::parse("mqtts://broker.example:8884").unwrap();
    assert_eq!((b.host.as_str(), b.port, b.tls), ("broker.example", 8884, true));
    assert_eq!(Broker::parse("mqtt://10.0.0.1").unwrap().port, 1883);
    assert!(Broker::parse("http://10.0.0.1:1883").is_err());
    assert!(Broker::parse("mqtt://:1883").is_err());
    assert!(Broker::parse("mqtt://h:99999").is_err());
}
