//! The 2023 MQTT boards, row by row against the reference (`../shared/reference/plarail2023`, festival build
//! `7beb801`): what a virtual board does with every topic and word, and what the twin reads from a board.

use hil::boards2023::firmware::{Act, Board, Build, Detector, Io, Setting};
use hil::boards2023::protocol::{FromBoard, Target, Unreadable, delta_topic, get_accepted_topic, read, state_word};
use sim::layout::OnOff;

/// The festival's `chofu` board, its stops and point (`config/chofufes/chofu.json`), two of its detectors.
fn chofu() -> Setting {
    let io = |id: &str, pin| Io { id: id.into(), pin };
    Setting {
        name: "chofu".into(),
        stops: vec![io("chofu_down_s1", 14), io("chofu_down_s2", 15), io("chofu_up_s1", 16), io("chofu_up_s2", 17)],
        points: vec![io("chofu_down_p1", 13)],
        detectors: vec![
            Detector { block_id: "sakurajosui_down_b1".into(), target: "OPEN".into(), pin: 12 },
            Detector { block_id: "chofu_up_b1".into(), target: "CLOSE".into(), pin: 22 },
        ],
    }
}

fn publish(topic: &str, payload: &str) -> Act {
    Act::Publish { topic: topic.into(), payload: payload.as_bytes().to_vec() }
}

fn stop(pin: u8, angle: u32) -> Vec<Act> {
    vec![Act::Move { pin, angle, hold_ms: Some(200) }]
}

fn point(pin: u8, angle: u32) -> Vec<Act> {
    vec![Act::Move { pin, angle, hold_ms: None }]
}

#[test]
fn a_2023_board_boots_connects_and_asks_its_state_once() {
    let (mut board, at_boot) = Board::boot(chofu(), Build::Festival2023, 0);
    assert_eq!(board.client_id(), "esp32-client-chofu");
    // The point is attached at boot: the library's default pulse, neither normal nor reverse.
    assert_eq!(at_boot, point(13, 92));
    let first = board.connected();
    let subscriptions: Vec<Act> = ["stop/+/get/accepted", "point/+/get/accepted", "stop/+/delta", "point/+/delta"]
        .into_iter()
        .map(Act::Subscribe)
        .collect();
    let mut want = subscriptions.clone();
    want.push(publish("point/chofu_down_p1/get", "get"));
    for s in ["chofu_down_s1", "chofu_down_s2", "chofu_up_s1", "chofu_up_s2"] {
        want.push(publish(&format!("stop/{s}/get"), "get"));
    }
    assert_eq!(first, want);
    assert!(!board.reconnects(), "the festival build never reconnects");
    // The 2025 build reconnects and subscribes again, but never asks its state again.
    let (mut later, _) = Board::boot(chofu(), Build::Reconnecting2025, 0);
    later.connected();
    assert!(later.reconnects());
    assert_eq!(later.connected(), subscriptions);
}

#[test]
fn a_2023_board_handles_every_topic_and_word_as_the_firmware() {
    let huge = "STOP_STATE_STOP".to_string() + &" ".repeat(240);
    let rows: Vec<(&str, &[u8], Vec<Act>)> = vec![
        ("stop/chofu_up_s1/delta", b"STOP_STATE_STOP", stop(16, 180)),
        ("stop/chofu_up_s1/delta", b"STOP_STATE_GO", stop(16, 0)),
        ("stop/chofu_up_s2/get/accepted", b"STOP_STATE_GO", stop(17, 0)),
        // The payload is read as a C string: what follows a NUL is not compared.
        ("stop/chofu_down_s1/delta", b"STOP_STATE_STOP\0junk", stop(14, 180)),
        // Exact words only.
        ("stop/chofu_up_s1/delta", b"stop_state_stop", vec![]),
        ("stop/chofu_up_s1/delta", b"STOP_STATE_STOP ", vec![]),
        ("stop/chofu_up_s1/delta", b"STOP_STATE_UNKNOWN", vec![]),
        ("stop/chofu_up_s1/delta", b"POINT_STATE_NORMAL", vec![]),
        // Another board's id: every board gets every id (wildcards) and ignores the others'.
        ("stop/shinjyuku_down_s1/delta", b"STOP_STATE_STOP", vec![]),
        ("point/chofu_down_p1/delta", b"POINT_STATE_REVERSE", point(13, 179)),
        ("point/chofu_down_p1/get/accepted", b"POINT_STATE_NORMAL", point(13, 159)),
        ("point/chofu_down_p1/delta", b"POINT_STATE_UNKNOWN", vec![]),
        ("point/chofu_down_p1/delta", b"STOP_STATE_GO", vec![]),
        ("point/sakurajosui_down_p1/delta", b"POINT_STATE_REVERSE", vec![]),
        // Any topic starting stop/ is handled alike, whatever its method.
        ("stop/chofu_up_s1/anything", b"STOP_STATE_STOP", stop(16, 180)),
        ("stop/chofu_up_s1", b"STOP_STATE_STOP", vec![]),
        ("block/chofu_up_b1/update", b"CLOSE", vec![]),
        // Beyond PubSubClient's 256-byte buffer: never reaches the callback.
        ("stop/chofu_up_s1/delta", huge.as_bytes(), vec![]),
    ];
    for (topic, payload, want) in rows {
        let (mut board, _) = Board::boot(chofu(), Build::Festival2023, 0);
        assert_eq!(board.message(topic, payload), want, "{topic} {:?}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn a_2023_detector_reports_every_3_s_while_closed_and_not_in_the_first_3_s() {
    let (mut board, _) = Board::boot(chofu(), Build::Festival2023, 1_000);
    let closed = [false, true];
    let report = vec![publish("block/chofu_up_b1/update", "CLOSE")];
    assert_eq!(board.detectors(1_000 + 2_999, &closed), vec![], "silent for 3 s after boot");
    assert_eq!(board.detectors(1_000 + 3_000, &closed), report);
    assert_eq!(board.detectors(1_000 + 5_999, &closed), vec![]);
    assert_eq!(board.detectors(1_000 + 6_000, &closed), report, "again while held closed");
    assert_eq!(board.detectors(1_000 + 20_000, &[false, false]), vec![], "open: nothing");
    assert_eq!(
        board.detectors(1_000 + 20_001, &[true, false]),
        vec![publish("block/sakurajosui_down_b1/update", "OPEN")]
    );
}

#[test]
fn the_twin_reads_a_2023_board_s_messages_and_counts_the_rest() {
    let rows: Vec<(&str, &[u8], Result<FromBoard, Unreadable>)> = vec![
        ("point/chofu_down_p1/get", b"get", Ok(FromBoard::Get(Target::Point, "chofu_down_p1".into()))),
        ("stop/shinjyuku_up_s1/get", b"anything", Ok(FromBoard::Get(Target::Stop, "shinjyuku_up_s1".into()))),
        ("block/chofu_up_b1/update", b"CLOSE", Ok(FromBoard::Block("chofu_up_b1".into(), true))),
        ("block/chofu_up_b1/update", b"OPEN", Ok(FromBoard::Block("chofu_up_b1".into(), false))),
        ("block/chofu_up_b1/update", b"close", Err(Unreadable::Word("close".into()))),
        ("block/chofu_up_b1/update", &[b'C'; 100], Err(Unreadable::Word("100 bytes".into()))),
        ("stop/chofu_up_s1/delta", b"STOP_STATE_GO", Ok(FromBoard::Echo)),
        ("point/chofu_down_p1/get/accepted", b"POINT_STATE_NORMAL", Ok(FromBoard::Echo)),
        ("point/chofu_down_p1/update", b"x", Err(Unreadable::Method("point/chofu_down_p1/update".into()))),
        ("block/chofu_up_b1/delta", b"x", Err(Unreadable::Method("block/chofu_up_b1/delta".into()))),
        ("train/t1/update", b"x", Err(Unreadable::Target("train".into()))),
        ("nfc/04a1b2/update", b"x", Err(Unreadable::Target("nfc".into()))),
        ("stop/chofu_up_s1", b"get", Err(Unreadable::Topic("stop/chofu_up_s1".into()))),
        ("stop//get", b"get", Err(Unreadable::Topic("stop//get".into()))),
        ("stop/a/get/accepted/more", b"get", Err(Unreadable::Topic("stop/a/get/accepted/more".into()))),
        ("stop/a/get/rejected", b"get", Err(Unreadable::Topic("stop/a/get/rejected".into()))),
    ];
    for (topic, payload, want) in rows {
        assert_eq!(read(topic, payload), want, "{topic}");
    }
    // What the twin sends, in 2023's words.
    assert_eq!(state_word(Target::Stop, OnOff::On), "STOP_STATE_STOP");
    assert_eq!(state_word(Target::Stop, OnOff::Off), "STOP_STATE_GO");
    assert_eq!(state_word(Target::Point, OnOff::On), "POINT_STATE_REVERSE");
    assert_eq!(state_word(Target::Point, OnOff::Off), "POINT_STATE_NORMAL");
    assert_eq!(delta_topic(Target::Stop, "chofu_up_s1"), "stop/chofu_up_s1/delta");
    assert_eq!(get_accepted_topic(Target::Point, "chofu_down_p1"), "point/chofu_down_p1/get/accepted");
}

/// A test client on the broker: every message sent on `filters` from its start (not the retained ones), and a
/// way to publish.
struct Observer {
    client: rumqttc::AsyncClient,
    messages: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
}

impl Observer {
    async fn start(port: u16, filters: &[&str]) -> Observer {
        let options = rumqttc::MqttOptions::new(format!("observer-{port}"), "127.0.0.1", port);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
        for f in filters {
            client.subscribe(*f, rumqttc::QoS::AtMostOnce).await.unwrap();
        }
        let (tx, messages) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        tokio::spawn(async move {
            while let Ok(event) = events.poll().await {
                match event {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                        if let Some(done) = subscribed_tx.take() {
                            let _ = done.send(());
                        }
                    }
                    // A retained message is the broker's stored state, not one sent now.
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) if !p.retain => {
                        let _ = tx.send((p.topic, p.payload.to_vec()));
                    }
                    _ => {}
                }
            }
        });
        subscribed.await.unwrap();
        Observer { client, messages }
    }

    async fn publish(&self, topic: &str, payload: &str) {
        self.client.publish(topic, rumqttc::QoS::AtMostOnce, false, payload.as_bytes().to_vec()).await.unwrap();
    }

    /// The next message (within 10 s).
    async fn next(&mut self) -> (String, String) {
        let (t, p) = tokio::time::timeout(std::time::Duration::from_secs(10), self.messages.recv())
            .await
            .expect("a message in time")
            .expect("observer running");
        (t, String::from_utf8_lossy(&p).into_owned())
    }
}

/// Servo moves seen, in order: `(pin, angle)`.
pub(crate) type Moves = std::sync::Arc<std::sync::Mutex<Vec<(u8, u32)>>>;

/// A servo callback and the moves it records.
pub(crate) fn servos() -> (hil::boards2023::virtual_board::Servo, Moves) {
    let moves = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = moves.clone();
    (std::sync::Arc::new(move |pin, angle| seen.lock().unwrap().push((pin, angle))), moves)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn a_virtual_2023_board_on_mosquitto_behaves_as_the_festival_firmware() {
    let mosquitto = crate::support::Mosquitto::start();
    behaves_as_the_festival_firmware(mosquitto.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_2023_board_on_the_embedded_broker_behaves_as_the_festival_firmware() {
    let broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    behaves_as_the_festival_firmware(broker.addr.port()).await;
}

/// A virtual board on the broker at `port`: its gets at start, the answers and deltas it takes (its own ids
/// only), its detector reports, dropped messages, and no reconnect in the festival build.
async fn behaves_as_the_festival_firmware(port: u16) {
    use std::time::Duration;

    use hil::boards2023::virtual_board::{Faults, VirtualMqttBoard};
    let mut observer = Observer::start(port, &["+/+/get", "block/#"]).await;
    let (servo, moves) = servos();
    let board = VirtualMqttBoard::start(chofu(), Build::Festival2023, "127.0.0.1", port, None, servo);
    // At start: a get per device, points first.
    let mut gets = Vec::new();
    for _ in 0..5 {
        gets.push(observer.next().await);
    }
    assert_eq!(gets[0], ("point/chofu_down_p1/get".into(), "get".into()));
    assert_eq!(gets[4], ("stop/chofu_up_s2/get".into(), "get".into()));
    // The state manager's answer and a delta move the servos; another board's id moves nothing.
    observer.publish("stop/chofu_up_s1/get/accepted", "STOP_STATE_STOP").await;
    observer.publish("stop/hachioji_up_s1/delta", "STOP_STATE_STOP").await;
    observer.publish("point/chofu_down_p1/delta", "POINT_STATE_REVERSE").await;
    crate::support::until("the servos moved", Duration::from_secs(10), async || moves.lock().unwrap().len() >= 3).await;
    assert_eq!(moves.lock().unwrap()[..3], [(13, 92), (16, 180), (13, 179)]);
    // A detector held closed reports its block (not in the first 3 s after boot), again every 3 s.
    board.set_detector(1, true);
    assert_eq!(observer.next().await, ("block/chofu_up_b1/update".into(), "CLOSE".into()));
    board.set_detector(1, false);
    // Dropped messages change nothing; the board stays as it was.
    board.set_faults(Faults { drop_messages: true, ..Faults::default() });
    observer.publish("stop/chofu_up_s1/delta", "STOP_STATE_GO").await;
    crate::support::until("the delta dropped", Duration::from_secs(10), async || board.dropped() == 1).await;
    board.set_faults(Faults::default());
    observer.publish("stop/chofu_up_s2/delta", "STOP_STATE_GO").await;
    crate::support::until("the next delta taken", Duration::from_secs(10), async || moves.lock().unwrap().len() >= 4)
        .await;
    assert_eq!(moves.lock().unwrap()[3..], [(17, 0)], "the dropped delta never moved chofu_up_s1");
    // The festival build never reconnects.
    board.cut();
    crate::support::until("given up for good", Duration::from_secs(5), async || board.gave_up()).await;
    assert!(!board.online(), "the festival build stays offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn the_2025_build_reconnects_and_subscribes_again_but_asks_nothing() {
    let mosquitto = crate::support::Mosquitto::start();
    reconnects_without_asking(mosquitto.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2025_build_on_the_embedded_broker_reconnects_and_subscribes_again_but_asks_nothing() {
    let broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    reconnects_without_asking(broker.addr.port()).await;
}

/// The 2025 build on the broker at `port`: cut, it is back after 5 s, subscribed again, asking nothing.
async fn reconnects_without_asking(port: u16) {
    use std::time::Duration;

    use hil::boards2023::virtual_board::VirtualMqttBoard;
    let mut observer = Observer::start(port, &["+/+/get"]).await;
    let (servo, moves) = servos();
    let board = VirtualMqttBoard::start(chofu(), Build::Reconnecting2025, "127.0.0.1", port, None, servo);
    for _ in 0..5 {
        observer.next().await;
    }
    board.cut();
    crate::support::until("offline", Duration::from_secs(5), async || !board.online()).await;
    assert!(!board.gave_up());
    crate::support::until("back after 5 s", Duration::from_secs(15), async || board.online()).await;
    // Subscribed again: a delta moves the servo; no get was asked again.
    let before = moves.lock().unwrap().len();
    let mut tries = 0;
    while moves.lock().unwrap().len() == before {
        observer.publish("stop/chofu_down_s1/delta", "STOP_STATE_STOP").await;
        tries += 1;
        assert!(tries < 50, "no delta taken after the reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(observer.messages.try_recv().is_err(), "no get after a reconnect");
}

#[test]
fn the_twin_answers_a_get_with_the_desired_state_and_reads_block_reports_and_nothing_else() {
    use hil::boards2023::link::{Reply, reply, setting_of};
    let layout = crate::support::layout_2023();
    let device = |name: &str| layout.device_id(name).unwrap();
    let desired = |d: usize| Some(if layout.devices[d].name == "chofu_down_p1" { OnOff::On } else { OnOff::Off });
    let cases: [(&str, &str, Reply); 8] = [
        (
            "stop/chofu_up_s1/get",
            "get",
            Reply::Publish {
                device: device("chofu_up_s1"),
                topic: "stop/chofu_up_s1/get/accepted".into(),
                payload: "STOP_STATE_GO",
            },
        ),
        (
            "point/chofu_down_p1/get",
            "get",
            Reply::Publish {
                device: device("chofu_down_p1"),
                topic: "point/chofu_down_p1/get/accepted".into(),
                payload: "POINT_STATE_REVERSE",
            },
        ),
        ("block/chofu_up_b1/update", "CLOSE", Reply::Block(layout.block_id("chofu_up_b1").unwrap(), true)),
        ("block/chofu_up_b1/update", "OPEN", Reply::Block(layout.block_id("chofu_up_b1").unwrap(), false)),
        ("stop/chofu_up_s1/delta", "STOP_STATE_GO", Reply::Nothing),
        ("stop/chofu_up_s1/get/accepted", "STOP_STATE_GO", Reply::Nothing),
        ("stop/nowhere_s1/get", "get", Reply::Unreadable("`stop/nowhere_s1/get`: the layout has no such stop".into())),
        (
            "point/chofu_up_s1/get",
            "get",
            Reply::Unreadable("`point/chofu_up_s1/get`: the layout has no such point".into()),
        ),
    ];
    for (topic, payload, want) in cases {
        assert_eq!(reply(&layout, topic, payload.as_bytes(), desired), want, "{topic} {payload}");
    }
    for (topic, payload) in [("block/nowhere_b1/update", "CLOSE"), ("block/chofu_up_b1/update", "HALF"), ("a/b", "x")] {
        assert!(matches!(reply(&layout, topic, payload.as_bytes(), desired), Reply::Unreadable(_)), "{topic}");
    }
    // The live track's link while the twin runs in sim mode holds a real board's `get` (told on the switch).
    assert_eq!(reply(&layout, "stop/chofu_up_s1/get", b"get", |_| None), Reply::Held(device("chofu_up_s1")));
    // The chofu board's setting.json as the layout has it: the festival's pins.
    let board = layout.boards.iter().position(|b| b.name == "chofu").unwrap();
    let s = setting_of(&layout, board);
    let pins = |io: &[Io]| io.iter().map(|i| (i.id.clone(), i.pin)).collect::<Vec<_>>();
    assert_eq!(
        pins(&s.stops),
        [
            ("chofu_down_s1".into(), 14),
            ("chofu_down_s2".into(), 15),
            ("chofu_up_s1".into(), 16),
            ("chofu_up_s2".into(), 17)
        ]
    );
    assert_eq!(pins(&s.points), [("chofu_down_p1".into(), 13)]);
    assert_eq!(s.detectors.len(), 6);
    assert!(s.detectors.contains(&Detector { block_id: "hachioji_up_b1".into(), target: "OPEN".into(), pin: 32 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn the_twin_drives_the_2023_layout_through_virtual_boards_on_mosquitto() {
    let mosquitto = crate::support::Mosquitto::start();
    drives_the_2023_layout(hil::boards2023::link::BoardBroker::plain("127.0.0.1", mosquitto.port)).await;
}

/// The same on the broker embedded in the twin's process (what `serve --layout chofufes2023` runs without
/// `--broker`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twin_drives_the_2023_layout_through_virtual_boards_on_the_embedded_broker() {
    let broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    drives_the_2023_layout(broker.board_broker()).await;
}

/// The twin on the 2023 layout with its virtual 2023 boards on `broker` (4x real time): a page's
/// command reaches the board as a `…/delta` and the board moves the simulated servo; a departing train's
/// detectors report its block CLOSE then OPEN over MQTT; what the twin cannot read is counted and changes
/// nothing; a delta the board loses is a failed command, not a done one.
async fn drives_the_2023_layout(broker: hil::boards2023::link::BoardBroker) {
    use std::time::Duration;

    use futures_util::SinkExt;
    use hil::track::{Setup, Track, TrackConfig, TrackEvent};
    use tokio_tungstenite::tungstenite::Message;

    use crate::support::serve;
    use crate::support::until;
    use crate::support::{expect, expect_within};

    let mut observer = Observer::start(broker.port, &["+/+/delta", "block/#"]).await;
    let config = TrackConfig { pace: 4.0, ..crate::support::config() };
    let setup = Setup { config, boards2023: Some(broker), ..Setup::default() };
    let track = Track::start(crate::support::layout_2023(), setup).await.unwrap();
    let booted = std::time::Instant::now();
    let mut events = track.subscribe();
    let boards = track.virtual_mqtt_boards();
    assert_eq!(boards.len(), 5);
    // At boot the points stand at the firmware's power-on angle, between positions, until each board's `get`
    // is answered with the desired state.
    until("every board asked its state and stands as desired", Duration::from_secs(20), async || {
        boards.iter().all(|b| b.online()) && track.state().await.devices.iter().all(|d| d.state().is_some())
    })
    .await;
    // The firmware reports no detector in its first 3 s.
    until("the boards' first 3 s over", Duration::from_secs(10), async || {
        booted.elapsed() > Duration::from_millis(3500)
    })
    .await;
    let addr = serve(track.clone(), gateway::core::Options::default()).await;
    let mut ws = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/v2")).await.unwrap().0;
    expect(&mut ws, |v| v["type"] == "snapshot").await;
    let command = serde_json::json!({"id": 1, "cmd": "device", "name": "shinjyuku_down_s1", "state": "OFF"});
    ws.send(Message::Text(command.to_string().into())).await.unwrap();
    assert_eq!(expect(&mut ws, |v| v["id"] == 1).await["type"], "ack");
    // The command's delta (after the states the twin retained as it started).
    let told = ("stop/shinjyuku_down_s1/delta".to_string(), "STOP_STATE_GO".to_string());
    while observer.next().await != told {}
    // KEIO8000 departs: Shinjuku's entry detector reports the block CLOSE, then Sakurajosui's exit detector OPEN
    // (the stop rail raised behind the train comes between them as a delta).
    let mut reported = Vec::new();
    while reported.last().is_none_or(|w| w != "OPEN") {
        let (topic, word) = observer.next().await;
        if topic == "block/shinjyuku_down_b1/update" {
            reported.push(word);
        }
    }
    assert_eq!(reported, ["CLOSE", "OPEN"]);
    let block = track.layout().block_id("shinjyuku_down_b1").unwrap();
    let mut reports = Vec::new();
    while reports.len() < 2 {
        if let Ok(Ok(TrackEvent::BlockReport { block: b, close })) =
            tokio::time::timeout(Duration::from_secs(10), events.recv()).await
            && b == block
        {
            reports.push(close);
        }
    }
    assert_eq!(reports, [true, false], "the twin took both reports, in order");
    // Unreadable messages are counted, and change nothing.
    let before = track.state().await.devices;
    observer.publish("stop/nowhere_s9/get", "get").await;
    observer.publish("block/shinjyuku_up_b1/update", "HALF").await;
    until("both counted", Duration::from_secs(10), async || track.unreadable_mqtt() == 2).await;
    assert_eq!(track.state().await.devices, before);
    // A board that loses the delta: the command fails (it did not move), saying so.
    let chofu = boards.iter().find(|b| b.name() == "chofu").unwrap();
    chofu.set_faults(hil::boards2023::virtual_board::Faults { drop_messages: true, ..Default::default() });
    let command = serde_json::json!({"id": 2, "cmd": "device", "name": "chofu_down_p1", "state": "ON"});
    ws.send(Message::Text(command.to_string().into())).await.unwrap();
    let failed = expect_within(&mut ws, Duration::from_secs(10), |v| v["id"] == 2).await;
    assert_eq!(failed["type"], "failed", "{failed}");
    assert!(failed["reason"].as_str().unwrap().contains("did not move it"), "{failed}");
    assert_eq!(
        track.state().await.devices[track.layout().device_id("chofu_down_p1").unwrap()],
        sim::track::DevicePosition::Off
    );
    track.stop();
}

/// Board presence and resync on the embedded broker (which tells its clients' comings and goings): every board
/// shows up when its client connects and down when it goes; a command to a board that is not there fails at
/// once, saying so; a delta the board lost is put right when the board connects again (the 2025 build, which
/// reconnects but asks nothing): the twin tells it the desired state of each of its devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_that_connects_again_is_told_its_devices_desired_states() {
    use std::time::Duration;

    use hil::track::{Failure, Outcome, Setup, Track, TrackConfig};
    use sim::interlocking::Request;
    use sim::track::DevicePosition;

    use crate::support::until;

    let broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let config = TrackConfig { pace: 4.0, ..crate::support::config() };
    let setup = Setup {
        config,
        boards2023: Some(broker.board_broker()),
        firmware2023: Build::Reconnecting2025,
        ..Setup::default()
    };
    let track = Track::start(crate::support::layout_2023(), setup).await.unwrap();
    let layout = track.layout().clone();
    let chofu_id = layout.boards.iter().position(|b| b.name == "chofu").unwrap();
    let up = |track: &Track, board: usize| track.boards().iter().any(|(id, h)| *id == board && h.alive);
    until("every board up and standing as desired", Duration::from_secs(20), async || {
        (0..layout.boards.len()).all(|b| up(&track, b))
            && track.state().await.devices.iter().all(|d| d.state().is_some())
    })
    .await;
    let chofu = track.virtual_mqtt_boards().into_iter().find(|b| b.name() == "chofu").unwrap();
    let point = layout.device_id("chofu_down_p1").unwrap();
    let position = async || track.state().await.devices[point];

    // The board loses the delta: the command fails, the point stays, and REVERSE is now the desired state.
    chofu.set_faults(hil::boards2023::virtual_board::Faults { drop_messages: true, ..Default::default() });
    let reverse = Request::Device { device: point, state: OnOff::On };
    assert!(
        matches!(track.apply(reverse).await, Outcome::Failed(Failure::NotMoved { device, .. }) if device == "chofu_down_p1")
    );
    assert_eq!(position().await, DevicePosition::Off);
    assert_eq!(track.desired(point), OnOff::On);
    chofu.set_faults(hil::boards2023::virtual_board::Faults::default());

    // Its connection drops: down at once, and its commands fail saying so.
    chofu.cut();
    until("chofu down", Duration::from_secs(5), async || !up(&track, chofu_id)).await;
    let stop = Request::Device { device: layout.device_id("chofu_up_s1").unwrap(), state: OnOff::Off };
    assert_eq!(track.apply(stop).await, Outcome::Failed(Failure::NotConnected { board: "chofu".into() }));

    // Back after 5 s (the 2025 build): up, and told its devices' states: the point turns as desired.
    until("chofu up again", Duration::from_secs(15), async || up(&track, chofu_id)).await;
    until("the lost delta put right", Duration::from_secs(10), async || position().await == DevicePosition::On).await;
    track.stop();
}

/// Live mode with real 2023 boards on the festival's broker (mosquitto telling its clients' comings and goings;
/// the boards run the 2025 build, which reconnects) while the virtual boards stay on the embedded broker: the
/// real boards' `get`s are held in sim mode and their devices told on the switch to live; a command drives the
/// real board and the mirror follows; a board that drops off is shown down and its commands fail; a delta it
/// lost is put right when it comes back; its detector's report moves the mirrored train.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn live_mode_drives_the_real_2023_boards_on_their_broker() {
    use std::time::Duration;

    use hil::boards2023::link::{BoardBroker, setting_of};
    use hil::boards2023::virtual_board::{Faults, VirtualMqttBoard};
    use hil::track::{Failure, Outcome, Setup, Track, TrackEvent};
    use sim::interlocking::Request;
    use sim::layout::{BoardKind, DetectorTarget};
    use sim::track::DevicePosition;
    use sim::twin::Mode;

    use crate::support::until;

    let festival = crate::support::Mosquitto::telling_clients();
    let embedded = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let layout = crate::support::layout_2023();
    let setup = Setup {
        config: crate::support::config(),
        boards2023: Some(embedded.board_broker()),
        live2023: Some(BoardBroker::plain("127.0.0.1", festival.port)),
        ..Setup::default()
    };
    let track = Track::start(layout.clone(), setup).await.unwrap();
    let mut events = track.subscribe();
    let mut real = Vec::new();
    for (id, _) in layout.boards.iter().enumerate().filter(|(_, b)| b.kind == BoardKind::Mqtt) {
        let (servo, moves) = servos();
        let setting = setting_of(&layout, id);
        let board = VirtualMqttBoard::start(setting, Build::Reconnecting2025, "127.0.0.1", festival.port, None, servo);
        real.push((id, board, moves));
    }
    let angle = |moves: &Moves, pin: u32| moves.lock().unwrap().iter().rev().find(|m| m.0 as u32 == pin).map(|m| m.1);
    let stands = |board: usize, moves: &Moves| {
        let on_board = layout.devices.iter().enumerate().filter(|(_, d)| d.board == board);
        on_board.into_iter().all(|(i, d)| {
            let want = if track.desired(i) == OnOff::On { d.on_angle } else { d.off_angle };
            angle(moves, d.pin) == Some(want)
        })
    };
    until("every real board connected", Duration::from_secs(10), async || real.iter().all(|r| r.1.online())).await;
    let board = |name: &str| real.iter().find(|r| r.1.name() == name).unwrap();
    let (chofu_id, chofu, chofu_moves) = board("chofu");
    let point = layout.device_id("chofu_down_p1").unwrap();
    let point_pin = layout.devices[point].pin;
    assert!(!stands(*chofu_id, chofu_moves), "in sim mode a real board's get is not answered");

    let report = track.switch_mode(Mode::Live, false).await.unwrap();
    let chofu_checked = report.checked.iter().find(|c| c.0 == "chofu").unwrap();
    assert!(chofu_checked.1.starts_with("esp32-client-chofu on 127.0.0.1:") && chofu_checked.2, "{report:?}");
    until("every real board told its devices' desired states", Duration::from_secs(10), async || {
        real.iter().all(|(id, _, moves)| stands(*id, moves))
    })
    .await;
    let up = |board: usize| track.boards().iter().any(|(id, h)| *id == board && h.alive);
    assert!(real.iter().all(|r| up(r.0)), "every real board shown up: {:?}", track.boards());

    // A command drives the real board, and the mirror follows.
    let reverse = Request::Device { device: point, state: OnOff::On };
    assert_eq!(track.apply(reverse).await, Outcome::Applied);
    until("chofu's point turned", Duration::from_secs(5), async || {
        angle(chofu_moves, point_pin) == Some(layout.devices[point].on_angle)
    })
    .await;
    assert_eq!(track.state().await.devices[point], DevicePosition::On);

    // The board loses a delta (the 2023 protocol acknowledges nothing: told is done).
    chofu.set_faults(Faults { drop_messages: true, ..Faults::default() });
    let normal = Request::Device { device: point, state: OnOff::Off };
    assert_eq!(track.apply(normal).await, Outcome::Applied);
    assert_eq!(angle(chofu_moves, point_pin), Some(layout.devices[point].on_angle));
    chofu.set_faults(Faults::default());
    // It drops off the broker: shown down, and its commands fail saying so.
    chofu.cut();
    until("chofu down", Duration::from_secs(5), async || !up(*chofu_id)).await;
    let stop = Request::Device { device: layout.device_id("chofu_up_s1").unwrap(), state: OnOff::Off };
    assert_eq!(track.apply(stop).await, Outcome::Failed(Failure::NotConnected { board: "chofu".into() }));
    // Back after 5 s: up, and told its devices' states: the lost delta is put right.
    until("chofu up again", Duration::from_secs(15), async || up(*chofu_id)).await;
    until("the lost delta put right", Duration::from_secs(10), async || {
        angle(chofu_moves, point_pin) == Some(layout.devices[point].off_angle)
    })
    .await;

    // Shinjuku's entry detector of shinjyuku_down_b1 closes under the real KEIO8000: the mirror's KEIO8000,
    // standing at the raised stop rail before it, is snapped onto the block.
    let block = layout.block_id("shinjyuku_down_b1").unwrap();
    let (shinjyuku_id, shinjyuku, _) = board("shinjyuku");
    let slot = layout
        .detectors
        .iter()
        .filter(|d| d.wiring.is_some_and(|(b, _)| b == *shinjyuku_id))
        .position(|d| d.block == block && d.target == DetectorTarget::Close)
        .unwrap();
    let keio8000 = layout.trains.iter().position(|t| t.name == "KEIO8000").unwrap();
    let on_block = async || {
        let state = track.state().await;
        state.trains[keio8000].body.segs.back().unwrap().0 == layout.blocks[block].segs[0]
    };
    assert!(!on_block().await, "KEIO8000 waits before the block");
    shinjyuku.set_detector(slot, true);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("the report in time") {
            Ok(TrackEvent::BlockReport { block: b, close: true }) if b == block => break,
            Ok(TrackEvent::Divergence(d)) => panic!("{}", d.describe(&layout)),
            _ => {}
        }
    }
    shinjyuku.set_detector(slot, false);
    until("the mirror's KEIO8000 on the block", Duration::from_secs(5), on_block).await;
    track.stop();
}

/// Live mode as the festival's broker is set up in `deploy/mosquitto` (its ACL, logins, the log on its `$SYS`
/// topic): the twin reaches the boards' topics and the broker's log over mqtts:// with the core's login, a board
/// connects with its own login on the venue's plain listener. Live from the start, the board's `get`s are
/// answered, a command moves its servo, and its comings and goings show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto) and openssl"]
async fn live_mode_reaches_2023_boards_over_tls_with_the_deploy_acl() {
    use std::time::Duration;

    use hil::boards2023::link::{BoardBroker, setting_of};
    use hil::boards2023::virtual_board::VirtualMqttBoard;
    use hil::track::{Outcome, Setup, Track};
    use sim::interlocking::Request;
    use sim::twin::Mode;

    use crate::support::until;

    let secure = crate::support::SecureBroker::start();
    let core = secure.broker("core", "core-secret");
    let live = BoardBroker {
        host: core.host.clone(),
        port: core.port,
        login: core.login.clone(),
        tls: core.tls().unwrap(),
        presence: None,
    };
    assert!(live.tls.is_some());
    let setup = Setup { mode: Mode::Live, config: crate::support::config(), live2023: Some(live), ..Setup::default() };
    let layout = crate::support::layout_2023();
    let track = Track::start(layout.clone(), setup).await.unwrap();
    let chofu_id = layout.boards.iter().position(|b| b.name == "chofu").unwrap();
    let up = || track.boards().iter().any(|(id, h)| *id == chofu_id && h.alive);
    assert!(!up());
    let (servo, moves) = servos();
    let login = Some(("board".to_string(), "board-secret".to_string()));
    let setting = setting_of(&layout, chofu_id);
    let chofu = VirtualMqttBoard::start(setting, Build::Festival2023, "127.0.0.1", secure.plain_port, login, servo);
    until("chofu shown up", Duration::from_secs(10), async || up()).await;
    let point = layout.device_id("chofu_down_p1").unwrap();
    let d = &layout.devices[point];
    let angle = || moves.lock().unwrap().iter().rev().find(|m| m.0 as u32 == d.pin).map(|m| m.1);
    until("chofu's get answered: its point as desired", Duration::from_secs(10), async || angle() == Some(d.off_angle))
        .await;
    assert_eq!(track.apply(Request::Device { device: point, state: OnOff::On }).await, Outcome::Applied);
    until("chofu's point turned", Duration::from_secs(5), async || angle() == Some(d.on_angle)).await;
    chofu.cut();
    until("chofu shown down", Duration::from_secs(5), async || !up()).await;
    track.stop();
}
