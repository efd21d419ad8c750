//! Live mode with the 2023 boards holds to what the hardware says: desired states retained on any broker (a
//! 2025-build board that comes back on a stock mosquitto, which tells nothing of its clients, has its states at
//! once); a block is what its detectors last reported on every door, the interlocking takes the safe side, a
//! phantom in the mirror ends; stuck and chattering detectors are told apart and can be taken out of service;
//! reports on unknown blocks, other words and floods change nothing.

use std::time::{Duration, Instant};

use hil::boards2023::block_word::{DetectorHealth, PHANTOM_AFTER_MS};
use hil::boards2023::firmware::Build;
use hil::boards2023::link::{BoardBroker, setting_of};
use hil::boards2023::virtual_board::VirtualMqttBoard;
use hil::track::{Outcome, Setup, Track, TrackEvent};
use sim::interlocking::Request;
use sim::layout::OnOff;
use sim::twin::Mode;

use crate::hil_2023::{Moves, servos};
use crate::support::{config, until};

/// The angle a pin was last driven to.
fn angle(moves: &Moves, pin: u32) -> Option<u32> {
    moves.lock().unwrap().iter().rev().find(|m| m.0 as u32 == pin).map(|m| m.1)
}

/// A test client that publishes on a broker.
async fn publisher(port: u16) -> rumqttc::AsyncClient {
    let options = rumqttc::MqttOptions::new(format!("test-publisher-{port}"), "127.0.0.1", port);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 4096);
    let (up_tx, up) = tokio::sync::oneshot::channel();
    let mut up_tx = Some(up_tx);
    tokio::spawn(async move {
        while let Ok(e) = events.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) = e
                && let Some(tx) = up_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    up.await.unwrap();
    client
}

/// How many retained states a board subscribing now would be handed: a fresh client subscribes to the delta
/// topics and then to a marker it publishes itself; what came before the marker came retained.
async fn retained_deltas(port: u16) -> usize {
    let options = rumqttc::MqttOptions::new(format!("test-retained-{port}"), "127.0.0.1", port);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 1024);
    for filter in ["stop/+/delta", "point/+/delta", "test/marker"] {
        client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.unwrap();
    }
    client.publish("test/marker", rumqttc::QoS::AtLeastOnce, false, "end").await.unwrap();
    let mut retained = 0;
    while let Ok(e) = tokio::time::timeout(Duration::from_secs(5), events.poll()).await.expect("the marker comes") {
        if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = e {
            if p.topic == "test/marker" {
                break;
            }
            retained += usize::from(p.retain && !p.payload.is_empty());
        }
    }
    let _ = client.disconnect().await;
    retained
}

async fn report(client: &rumqttc::AsyncClient, block: &str, word: &str) {
    let topic = format!("block/{block}/update");
    client.publish(topic, rumqttc::QoS::AtMostOnce, false, word.as_bytes().to_vec()).await.unwrap();
}

/// On a stock mosquitto (`listener`, `allow_anonymous true`, nothing else: no presence on `$SYS`), the real
/// boards run the 2025 build: a board that drops off, misses a delta while away and comes back without asking
/// has every device at its desired state within 5 s of its return; a servo already in place does not move. When
/// live mode ends, the retained states are taken off the broker; a board that boots in sim mode is told nothing
/// until live mode again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn a_2025_board_that_comes_back_on_a_stock_mosquitto_has_its_states_within_5_s() {
    let stock = crate::support::Mosquitto::start();
    let embedded = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let layout = crate::support::layout_2023();
    let setup = Setup {
        config: config(),
        boards2023: Some(embedded.board_broker()),
        live2023: Some(BoardBroker::plain("127.0.0.1", stock.port)),
        ..Setup::default()
    };
    let track = Track::start(layout.clone(), setup).await.unwrap();
    let chofu_id = layout.boards.iter().position(|b| b.name == "chofu").unwrap();
    let (servo, moves) = servos();
    let chofu = VirtualMqttBoard::start(
        setting_of(&layout, chofu_id),
        Build::Reconnecting2025,
        "127.0.0.1",
        stock.port,
        None,
        servo,
    );
    until("chofu connected", Duration::from_secs(10), async || chofu.online()).await;
    let stands = |moves: &Moves| {
        layout.devices.iter().enumerate().filter(|(_, d)| d.board == chofu_id).all(|(i, d)| {
            let want = if track.desired(i) == OnOff::On { d.on_angle } else { d.off_angle };
            angle(moves, d.pin) == Some(want)
        })
    };
    // The broker tells nothing of its clients: a board never heard from is unknown, not down.
    let hashimoto = layout.boards.iter().position(|b| b.name == "hashimoto").unwrap();
    track.switch_mode(Mode::Live, false).await.unwrap();
    let health = track.boards().into_iter().find(|(id, _)| *id == hashimoto).unwrap().1;
    assert!(health.unknown && !health.alive, "{health:?}");
    until("chofu told its states on the switch", Duration::from_secs(5), async || stands(&moves)).await;

    // Away (the broker does not say so: the twin cannot know), it misses a delta.
    let point = layout.device_id("chofu_down_p1").unwrap();
    chofu.cut();
    until("chofu off the broker", Duration::from_secs(5), async || !chofu.online()).await;
    assert_eq!(track.apply(Request::Device { device: point, state: OnOff::On }).await, Outcome::Applied);
    assert!(!stands(&moves), "the delta was missed");
    let moved_before = moves.lock().unwrap().len();
    // Back by itself (every 5 s), asking nothing: the broker hands it the retained states as it subscribes.
    until("chofu back", Duration::from_secs(15), async || chofu.online()).await;
    let back = Instant::now();
    until("chofu's devices at their desired states", Duration::from_secs(5), async || stands(&moves)).await;
    assert!(back.elapsed() < Duration::from_secs(5));
    // Each device told once: the point moves, what stood in place is written its own angle again.
    let after: Vec<(u8, u32)> = moves.lock().unwrap()[moved_before..].to_vec();
    assert!(after.contains(&(layout.devices[point].pin as u8, layout.devices[point].on_angle)), "{after:?}");

    // Sim mode: the retained states are taken off; a board that boots now is told nothing by the broker.
    track.switch_mode(Mode::Sim, false).await.unwrap();
    until("the retained states taken off", Duration::from_secs(5), async || retained_deltas(stock.port).await == 0)
        .await;
    let (servo, late_moves) = servos();
    let hachioji_id = layout.boards.iter().position(|b| b.name == "hachioji").unwrap();
    let hachioji = VirtualMqttBoard::start(
        setting_of(&layout, hachioji_id),
        Build::Festival2023,
        "127.0.0.1",
        stock.port,
        None,
        servo,
    );
    until("hachioji connected", Duration::from_secs(10), async || hachioji.online()).await;
    let boot_moves = late_moves.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await; // nothing may come: a window to see that nothing does
    assert_eq!(
        late_moves.lock().unwrap().len(),
        boot_moves,
        "no retained state in sim mode: {:?}",
        late_moves.lock().unwrap()
    );
    track.stop();
}

/// While `board` is away, the operator raises one of its lowered stop rails (raising is always allowed, and a
/// late raise endangers no train): a delta the board misses. The stop rail, if one was lowered.
///
/// Not a point: on a broker that does not tell its clients the twin cannot know the board is away, so a command
/// to it is told and lost, and the board takes the retained state when it comes back, perhaps under a train (see
/// the README).
async fn miss_a_delta(track: &Track, board: &str) -> Option<String> {
    let layout = track.layout().clone();
    let id = layout.boards.iter().position(|b| b.name == board).unwrap();
    let lowered = layout.devices.iter().enumerate().filter(|(i, d)| {
        d.board == id && d.kind == sim::layout::DeviceKind::StopRail && track.desired(*i) == OnOff::Off
    });
    for (device, d) in lowered {
        if track.apply_as_operator(Request::Device { device, state: OnOff::On }).await == Outcome::Applied {
            return Some(d.name.clone());
        }
    }
    None
}

/// The track in live mode on the 2023 layout, its real boards' broker an embedded one the test publishes on
/// as the boards would; returns the track, the broker and a publisher on it.
async fn live_track()
-> (Track, hil::boards2023::embedded_broker::EmbeddedBroker, hil::boards2023::embedded_broker::EmbeddedBroker) {
    let sim_broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let live_broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let setup = Setup {
        config: config(),
        boards2023: Some(sim_broker.board_broker()),
        live2023: Some(live_broker.board_broker()),
        mode: Mode::Live,
        ..Setup::default()
    };
    let track = Track::start(crate::support::layout_2023(), setup).await.unwrap();
    (track, sim_broker, live_broker)
}

/// A presence receiver that falls behind the broker's words (some missed, a board's going perhaps among them)
/// makes every board's presence unknown instead of keeping a board up that may have gone; the broker's next
/// word on a board counts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_presence_words_leave_every_board_unknown_until_the_next_word() {
    use hil::boards2023::presence::Presence;
    let sim_broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let live_broker = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let (presence, _) = tokio::sync::broadcast::channel(16);
    let setup = Setup {
        config: config(),
        boards2023: Some(sim_broker.board_broker()),
        live2023: Some(BoardBroker { presence: Some(presence.clone()), ..live_broker.board_broker() }),
        mode: Mode::Live,
        ..Setup::default()
    };
    let layout = crate::support::layout_2023();
    let track = Track::start(layout.clone(), setup).await.unwrap();
    let chofu = layout.boards.iter().position(|b| b.name == "chofu").unwrap();
    let health = |track: &Track| track.boards().into_iter().find(|(id, _)| *id == chofu).unwrap().1;
    presence.send(Presence::Connected(hil::boards2023::link::client_id("chofu"))).unwrap();
    until("chofu up", Duration::from_secs(5), async || health(&track).alive).await;
    // A burst the receiver cannot keep up with (no await between the words).
    for i in 0..1_000 {
        presence.send(Presence::Connected(format!("visitor-{i}"))).unwrap();
    }
    until("chofu unknown", Duration::from_secs(5), async || {
        let h = health(&track);
        h.unknown && !h.alive
    })
    .await;
    presence.send(Presence::Connected(hil::boards2023::link::client_id("chofu"))).unwrap();
    until("chofu up again", Duration::from_secs(5), async || {
        let h = health(&track);
        h.alive && !h.unknown
    })
    .await;
    track.stop();
}

/// The case: `block/chofu_down_b1/update CLOSE`, then `OPEN`, no mirrored train near: every door shows
/// the last report (the track's state, whence `/api/state`, v2, gRPC and Connect), at once and for good.
/// A mirrored train the detectors say has left is shown lost and taken off within seconds, so the mirror no
/// longer holds the block; the operator can place a train in a block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_what_its_detectors_last_reported_and_a_phantom_in_the_mirror_ends() {
    let (track, _sim, live) = live_track().await;
    let layout = track.layout().clone();
    let mut events = track.subscribe();
    let client = publisher(live.addr.port()).await;
    let b = layout.block_id("chofu_down_b1").unwrap();
    let shown = async || track.state().await.blocks[b];
    assert!(!shown().await);
    report(&client, "chofu_down_b1", "CLOSE").await;
    until("CLOSE shown", Duration::from_secs(5), async || shown().await).await;
    report(&client, "chofu_down_b1", "OPEN").await;
    until("OPEN shown", Duration::from_secs(5), async || !shown().await).await;
    let stays = Instant::now();
    while stays.elapsed() < Duration::from_millis(PHANTOM_AFTER_MS + 1_000) {
        assert!(!shown().await, "a block reported OPEN stays open");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The operator places KEIO8000 in the block (the mirror's, just past its entry: 27 s from its exit at its
    // speed); the hardware says the block was left: shown free, held by the mirror, and the train shown lost.
    let keio = layout.trains.iter().position(|t| t.name == "KEIO8000").unwrap();
    let placed = track.place_in_block("KEIO8000", "chofu_down_b1").await.unwrap();
    assert!(placed.contains("placed"), "{placed}");
    assert!(track.place_in_block("KEIO8000", "no_such_block").await.unwrap_err().contains("no block"));
    let front = track.state().await.trains[keio].body.segs.front().unwrap().0;
    assert_eq!(layout.segments[front].id, "chofu_down_b1");
    assert!(!shown().await, "the hardware's word shown");
    report(&client, "chofu_down_b1", "OPEN").await;
    // Every mirrored train in the block is shown lost (KEIO9000 may have run in from Chofu meanwhile).
    let mut lost = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !lost.contains(&(keio, b)) {
            if let Ok(TrackEvent::Divergence(hil::track::mirror::Divergence::Lost { train, block })) =
                events.recv().await
            {
                lost.push((train, block));
            }
        }
    })
    .await
    .expect("the phantom found");
    assert!(lost.iter().all(|l| l.1 == b), "{lost:?}");
    let state = track.state().await;
    assert!(!state.blocks[b]);
    assert_eq!(state.trains[keio].status, sim::twin::TrainStatus::Removed);
    track.stop();
}

/// A chattering detector (CLOSE/OPEN many times a second) is told apart, keeps its block occupied and is
/// counted; the operator takes it out of service (its reports ignored) and back. Reports on unknown blocks and
/// other words, and a flood, are counted and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_detectors_and_bad_reports_change_nothing_they_should_not() {
    let (track, _sim, live) = live_track().await;
    let layout = track.layout().clone();
    let client = publisher(live.addr.port()).await;
    let b = layout.block_id("sakurajosui_down_b1").unwrap();
    let shown = async || track.state().await.blocks[b];
    for _ in 0..10 {
        report(&client, "sakurajosui_down_b1", "CLOSE").await;
        report(&client, "sakurajosui_down_b1", "OPEN").await;
    }
    let chattering = |track: &Track| {
        let health = track.detectors();
        (0..layout.detectors.len())
            .filter(|&d| layout.detectors[d].block == b)
            .all(|d| health[d] == DetectorHealth::Chattering)
    };
    until("both detectors chattering", Duration::from_secs(5), async || chattering(&track)).await;
    assert!(shown().await, "a chattering detector keeps its block occupied");
    assert!(track.detector_counts().chattering >= 1);

    // Out of service: the block as the mirror has it (as the interlocking holds it: no faulty detector, its last
    // report OPEN), its reports ignored.
    for word in ["CLOSE", "OPEN"] {
        let said = track.set_detector_in_service(&format!("sakurajosui_down_b1/{word}"), false).unwrap();
        assert!(said.contains("out of service"), "{said}");
    }
    assert!(track.set_detector_in_service("nowhere/CLOSE", false).unwrap_err().contains("no detector"));
    let as_the_mirror = async || track.state().await.blocks[b] == track.held_blocks().await.unwrap()[b];
    assert!(as_the_mirror().await);
    let ignored = track.detector_counts().ignored;
    report(&client, "sakurajosui_down_b1", "CLOSE").await;
    until("the report ignored", Duration::from_secs(5), async || track.detector_counts().ignored > ignored).await;
    assert!(as_the_mirror().await);
    track.set_detector_in_service("sakurajosui_down_b1/CLOSE", true).unwrap();
    assert_eq!(track.detectors()[layout.detectors.iter().position(|d| d.block == b).unwrap()], DetectorHealth::Ok);

    // Unknown blocks, other words: counted, nothing changed; a flood of reports on another block is taken.
    let before = track.state().await.blocks;
    let unreadable = track.unreadable_mqtt();
    report(&client, "no_such_block", "CLOSE").await;
    report(&client, "chofu_down_b1", "SHUT").await;
    until("both counted", Duration::from_secs(5), async || track.unreadable_mqtt() >= unreadable + 2).await;
    let other = layout.block_id("chofu_down_b1").unwrap();
    for i in 0..5_000 {
        report(&client, "chofu_down_b1", if i % 2 == 0 { "CLOSE" } else { "OPEN" }).await;
    }
    until("the flood taken", Duration::from_secs(30), async || {
        track.detector_counts().reports + track.detector_counts().ignored >= 5_000
    })
    .await;
    let after = track.state().await.blocks;
    for (i, (x, y)) in before.iter().zip(&after).enumerate() {
        if i != other {
            assert_eq!(x, y, "block {} untouched", layout.blocks[i].id);
        }
    }
    assert!(after[other], "the flooded block's detectors chatter: kept occupied");
    track.stop();
}

/// The festival hour live with the 2023 hardware (five minutes of it at 4x on every run; `PLARAIL_LIVE_MINUTES`
/// and `PLARAIL_LIVE_PACE` for the hour): the twin in live mode under automatic operation, on a stock mosquitto,
/// against "real" boards (the festival firmware's state machine: chofu and sakurajosui on the 2025 build, the
/// others on the festival build) over a simulation that presses their detectors. Chofu is cut off twice and
/// comes back by itself, hachioji is power-cycled, a detector is stuck closed for a minute. Then: no accident on
/// the real track, every board back at its desired states within 5 s each time, the stuck detector found, every
/// block on every door as the hardware last reported it (or `OPEN` where the twin supplied a missed `OPEN`), no
/// block held by a phantom in the mirror for long, and trains still departing at the end (no standstill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (Debian package mosquitto)"]
async fn the_2023_hour_runs_live_on_a_stock_mosquitto_through_board_and_detector_faults() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use hil::track::TrackConfig;
    use hil::virtual_devices::device::SimSink;
    use hil::virtual_devices::rig::{MqttBoards, Rig, post_sensor_reports};
    use sim::auto::{AutoEvent, Operation};
    use sim::track::DevicePosition;
    use sim::twin::EventKind;
    use sim::twin::thread::Request as SimRequest;

    let _alone = crate::support::CPU_HEAVY.lock().await;
    let pace: f64 = std::env::var("PLARAIL_LIVE_PACE").ok().and_then(|p| p.parse().ok()).unwrap_or(4.0);
    let minutes: u64 = std::env::var("PLARAIL_LIVE_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(5);
    let stock = crate::support::Mosquitto::start();
    let layout = crate::support::layout_2023();

    // The real track: a simulation behind the boards on the broker.
    let real = Rig::start(layout.clone(), &HashMap::new(), pace).await.unwrap();
    let requests = real.sim.requests.clone();
    let sink: SimSink = Arc::new(move |cmd| {
        let _ = requests.send(SimRequest::Command { id: 0, cmd });
    });
    let build = |name: &str| match name {
        "chofu" | "sakurajosui" => Build::Reconnecting2025,
        _ => Build::Festival2023,
    };
    let names: Vec<String> = layout.boards.iter().map(|b| b.name.clone()).collect();
    let boards =
        Arc::new(MqttBoards::start(layout.clone(), sink, "127.0.0.1", stock.port, None, |id| build(&names[id])));
    let stuck_detector = layout
        .detectors
        .iter()
        .position(|d| d.wiring.is_some_and(|(b, _)| names[b] == "sakurajosui"))
        .expect("a detector on sakurajosui's board");
    let stuck = Arc::new(AtomicBool::new(false));
    let accidents = Arc::new(Mutex::new(Vec::new()));
    let (pressed, seen, real_layout) = (boards.clone(), accidents.clone(), layout.clone());
    let held_by_test = stuck.clone();
    // `PLARAIL_LIVE_TRACE=1`: every event of the twin and of the real track, at the real layout's time.
    let trace = std::env::var_os("PLARAIL_LIVE_TRACE").is_some();
    post_sensor_reports(layout.clone(), real.sim.outputs.clone(), None, move |e| {
        if trace && !matches!(e.kind, EventKind::SensorPassed { .. }) {
            eprintln!("{:>9.2} s real: {}", e.time_ms as f64 / 1000.0, e.describe(&real_layout));
        }
        match e.kind {
            // The stuck detector's switch stays closed whatever the trains do.
            EventKind::DetectorChanged { detector, closed }
                if !(detector == stuck_detector && held_by_test.load(Ordering::SeqCst)) =>
            {
                pressed.detector_changed(detector, closed);
            }
            EventKind::Collision { .. } | EventKind::Derailment { .. } => {
                seen.lock().unwrap().push(e.describe(&real_layout));
            }
            _ => {}
        }
    });
    let real_state = || {
        let (tx, rx) = crossbeam_channel::bounded(1);
        real.sim.requests.send(SimRequest::Snapshot(tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    };
    // What the detectors last said, as the broker carried it.
    let last_reports: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
    let observer = {
        let options = rumqttc::MqttOptions::new("test-observer", "127.0.0.1", stock.port);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 1024);
        client.subscribe("block/#", rumqttc::QoS::AtMostOnce).await.unwrap();
        let reports = last_reports.clone();
        tokio::spawn(async move {
            while let Ok(e) = events.poll().await {
                if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = e
                    && let Some(block) = p.topic.strip_prefix("block/").and_then(|t| t.strip_suffix("/update"))
                {
                    reports.lock().unwrap().insert(block.to_string(), &p.payload[..] == b"CLOSE");
                }
            }
        });
        client
    };

    // The twin, live, automatic, its own virtual boards on the embedded broker.
    let embedded = hil::boards2023::embedded_broker::EmbeddedBroker::start().await.unwrap();
    let setup = Setup {
        config: TrackConfig { pace, overdue_ms: 10_000, ..config() },
        boards2023: Some(embedded.board_broker()),
        live2023: Some(BoardBroker::plain("127.0.0.1", stock.port)),
        mode: Mode::Live,
        operation: Operation::Auto,
        ..Setup::default()
    };
    let track = Track::start(layout.clone(), setup).await.unwrap();
    let mut events = track.subscribe();
    let stands = |board: &str| {
        let now = real_state();
        let id = layout.boards.iter().position(|b| b.name == board).unwrap();
        layout
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.board == id)
            .all(|(i, _)| now.devices[i] == DevicePosition::from(track.desired(i)))
    };
    until("every board at its desired states", Duration::from_secs(10), async || {
        layout.boards.iter().all(|b| stands(&b.name))
    })
    .await;

    // Phantoms: how long a block has been held by the mirror alone (the hardware saying it is free).
    let longest_phantom = Arc::new(Mutex::new(Duration::ZERO));
    let sampler = {
        let (track, longest) = (track.clone(), longest_phantom.clone());
        tokio::spawn(async move {
            let mut since: Vec<Option<Instant>> = Vec::new();
            while let (Some(held), Some(shown)) = (track.held_blocks().await, track.try_state().await) {
                since.resize(held.len(), None);
                for (b, s) in since.iter_mut().enumerate() {
                    if held[b] && !shown.blocks[b] {
                        let start = *s.get_or_insert_with(Instant::now);
                        let mut l = longest.lock().unwrap();
                        *l = (*l).max(start.elapsed());
                    } else {
                        *s = None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let total_ms = minutes * 60_000;
    let mut back_within = Vec::new();
    let mut missed = Vec::new();
    let mut departures = vec![0u32; layout.trains.len()];
    let mut last_departure_ms = 0;
    let mut divergences = Vec::new();
    // Blocks whose missed OPEN the twin supplied (a board away when the train left them).
    let mut supplied = std::collections::HashSet::new();
    let mut stuck_found = false;
    let mut stuck_since: Option<Instant> = None;
    let stuck_for = Duration::from_secs(60);
    let release = |boards: &MqttBoards| {
        stuck.store(false, Ordering::SeqCst);
        boards.detector_changed(stuck_detector, real_state().detectors[stuck_detector]);
    };
    // The faults, at their share of the run: the detector stuck (for a minute of wall clock, the firmware's),
    // chofu cut, hachioji power-cycled, chofu cut again.
    let due = [0.1, 0.2, 0.45, 0.7];
    let mut step = 0;
    let wall = Duration::from_secs_f64(total_ms as f64 / 1000.0 / pace * 3.0 + 90.0);
    let started = Instant::now();
    loop {
        let now_ms = real_state().time_ms;
        assert!(started.elapsed() < wall, "the real layout's clock runs");
        stuck_found |= track.detectors()[stuck_detector] == DetectorHealth::Stuck;
        if let Some(since) = stuck_since
            && since.elapsed() >= stuck_for
            && stuck.load(Ordering::SeqCst)
        {
            release(&boards);
        }
        if now_ms >= total_ms && !stuck.load(Ordering::SeqCst) {
            break;
        }
        if step < due.len() && now_ms as f64 >= due[step] * total_ms as f64 {
            if trace {
                eprintln!("{:>9.2} s fault {step} begins", now_ms as f64 / 1000.0);
            }
            match step {
                0 => {
                    stuck.store(true, Ordering::SeqCst);
                    boards.detector_changed(stuck_detector, true);
                    stuck_since = Some(Instant::now());
                }
                1 | 3 => {
                    let chofu = boards.board("chofu").unwrap();
                    chofu.cut();
                    until("chofu off", Duration::from_secs(5), async || !chofu.online()).await;
                    missed.push(miss_a_delta(&track, "chofu").await);
                    until("chofu back by itself", Duration::from_secs(15), async || chofu.online()).await;
                    let back = Instant::now();
                    until("chofu at its desired states", Duration::from_secs(5), async || stands("chofu")).await;
                    back_within.push(("chofu cut", back.elapsed()));
                }
                _ => {
                    let old = boards.board("hachioji").unwrap();
                    old.stop();
                    until("hachioji off", Duration::from_secs(5), async || !old.online()).await;
                    missed.push(miss_a_delta(&track, "hachioji").await);
                    boards.reboot("hachioji", Build::Festival2023);
                    let hachioji = boards.board("hachioji").unwrap();
                    until("hachioji rebooted", Duration::from_secs(10), async || hachioji.online()).await;
                    let back = Instant::now();
                    until("hachioji at its desired states", Duration::from_secs(5), async || stands("hachioji")).await;
                    back_within.push(("hachioji rebooted", back.elapsed()));
                }
            }
            if trace {
                eprintln!("{:>9.2} s fault {step} over", real_state().time_ms as f64 / 1000.0);
            }
            step += 1;
            continue;
        }
        while let Ok(e) = events.try_recv() {
            if trace && !matches!(e, TrackEvent::Trains(_) | TrackEvent::Plans { .. }) {
                eprintln!("{:>9.2} s {e:?}", now_ms as f64 / 1000.0);
            }
            match e {
                TrackEvent::Auto(AutoEvent::Departed { train, .. }) => {
                    departures[train] += 1;
                    last_departure_ms = now_ms;
                }
                TrackEvent::Divergence(d) => {
                    if let hil::track::mirror::Divergence::MissedOpen { block, .. } = d {
                        supplied.insert(block);
                    }
                    divergences.push(d.describe(&layout));
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every block on every door as the hardware last reported it (a report in flight given a moment), or OPEN
    // where the twin supplied a missed OPEN.
    while let Ok(e) = events.try_recv() {
        if let TrackEvent::Divergence(hil::track::mirror::Divergence::MissedOpen { block, .. }) = e {
            supplied.insert(block);
        }
    }
    let healthy = |b: usize| {
        let health = track.detectors();
        (0..layout.detectors.len()).filter(|&d| layout.detectors[d].block == b).all(|d| health[d] == DetectorHealth::Ok)
    };
    let differing = async || {
        let shown = track.state().await.blocks;
        let reports = last_reports.lock().unwrap().clone();
        let differs = |b: usize| {
            let supplied_open = supplied.contains(&b) && !shown[b];
            reports.get(&layout.blocks[b].id).is_some_and(|&close| shown[b] != close && !supplied_open)
        };
        (0..layout.blocks.len())
            .filter(|&b| healthy(b) && differs(b))
            .map(|b| layout.blocks[b].id.clone())
            .collect::<Vec<_>>()
    };
    if trace {
        eprintln!("blocks not as last reported: {:?}; {:?}", differing().await, track.detector_counts());
    }
    until("every block as last reported", Duration::from_secs(5), async || differing().await.is_empty()).await;
    let accidents = accidents.lock().unwrap().clone();
    let longest = *longest_phantom.lock().unwrap();
    eprintln!(
        "live 2023 automatic operation, {minutes} min at {pace}x on a stock mosquitto: departures by train \
         {departures:?}, boards back {back_within:?} (deltas missed meanwhile {missed:?}), stuck detector found {stuck_found}, longest phantom \
         {longest:?}, {} divergences, detector counts {:?}, accidents {accidents:?}",
        divergences.len(),
        track.detector_counts()
    );
    assert!(accidents.is_empty(), "{accidents:?}; divergences {divergences:?}");
    assert_eq!(back_within.len(), 3, "{back_within:?}");
    assert!(back_within.iter().all(|(_, t)| *t <= Duration::from_secs(5)), "{back_within:?}");
    assert!(stuck_found, "the stuck detector was found");
    assert!(departures.iter().sum::<u32>() >= 4, "trains run: {departures:?}");
    assert!(total_ms.saturating_sub(last_departure_ms) <= 120_000, "no departure since {last_departure_ms} ms");
    assert!(
        longest < Duration::from_millis(PHANTOM_AFTER_MS) + Duration::from_secs(10),
        "a block held by the mirror alone for {longest:?}"
    );
    sampler.abort();
    drop(observer);
    track.stop();
    boards.stop();
    real.sim.stop();
}
