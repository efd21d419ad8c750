//! Speed control end to end, as in 2021: the onboard controller's PWM model, virtual controllers, the `/speed`
//! socket, and live mode driving a train's controller (speed supervision included).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use hil::controllers2021::onboard::{KICK, duty, motor_mm_s, plan};
use hil::track::{Outcome, Setup};
use hil::virtual_devices::device::SimSink;
use hil::virtual_devices::rig::Rig;
use sim::interlocking::Request;
use sim::twin::Mode;
use sim::twin::SimCommand;
use sim::twin::thread::Request as SimRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    Ws, config, controlled_train, expect, layout_2021, live_boards, next, serve, siding_layout, started, train, until,
};

/// The 2021 controller's mapping: 0 -> 0 %, 0 < N <= 100 -> a 60 % kick for 0.1 s, then 17.5 + N x 0.175 %;
/// negatives and speeds over 100 change nothing.
#[test]
fn the_pwm_model_kicks_maps_and_ignores_what_the_2021_controller_ignored() {
    assert_eq!(duty(0), Some(0.0));
    assert_eq!(duty(100), Some(35.0));
    assert!((duty(50).unwrap() - 26.25).abs() < 1e-9);
    assert!((duty(5).unwrap() - 18.375).abs() < 1e-9);
    assert_eq!(duty(-5), None);
    assert_eq!(duty(101), None);
    assert_eq!(plan(0), Some(vec![(Duration::ZERO, 0.0)]));
    assert_eq!(plan(50), Some(vec![(Duration::ZERO, 60.0), (KICK, 26.25)]));
    assert_eq!(KICK, Duration::from_millis(100));
    assert_eq!(plan(-50), None);
    // The motor: still up to the stall duty, the top speed at twice it, no faster above (the kick).
    assert_eq!(motor_mm_s(0.0, 300), 0);
    assert_eq!(motor_mm_s(17.5, 300), 0);
    assert_eq!(motor_mm_s(26.25, 300), 150);
    assert_eq!(motor_mm_s(35.0, 300), 300);
    assert_eq!(motor_mm_s(60.0, 300), 300);
    // So speed N runs a train at N % of its top speed, as a train without a controller is set.
    for n in 0..=100 {
        assert_eq!(motor_mm_s(duty(n).unwrap(), 300) as i32, sim::interlocking::mm_s(&layout_2021(), 0, n), "{n}");
    }
}

/// A virtual controller answers like the 2021 one (always SUCCESS) and drives its train through the PWM model:
/// the kick at full speed, then the speed's duty 0.1 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_controller_kicks_the_motor_then_holds_the_speed() {
    let layout = layout_2021();
    let seen: Arc<Mutex<Vec<(Instant, SimCommand)>>> = Arc::default();
    let record = seen.clone();
    let sink: SimSink = Arc::new(move |cmd| record.lock().unwrap().push((Instant::now(), cmd)));
    let controllers =
        hil::controllers2021::virtual_controller::start(&layout, &HashMap::new(), sink, 1.0).await.unwrap();
    assert_eq!(controllers.len(), 1, "TAKAO's");
    let url = format!("http://{}", controllers[0].addr);
    let mut client = hil::controllers2021::proto::speed_client::SpeedClient::connect(url).await.unwrap();
    let send = |speed| hil::controllers2021::proto::SendSpeed {
        speed,
        train: hil::controllers2021::proto::Train::Takao as i32,
    };
    let takao = layout.train_id("TAKAO").unwrap();
    for speed in [50, -50, 120] {
        let answer = client.control_speed(send(speed)).await.unwrap().into_inner();
        assert_eq!(
            answer.code,
            hil::controllers2021::proto::Code::Success as i32,
            "the 2021 controller always says SUCCESS"
        );
    }
    until("kick and hold", Duration::from_secs(5), async || seen.lock().unwrap().len() >= 2).await;
    // A stop after them: the controller takes its speeds in order, so once the stop is carried out, whatever -50
    // and 120 did would be there too.
    client.control_speed(send(0)).await.unwrap();
    let stop = SimCommand::SetSpeed { train: takao, speed: 0 };
    until("the stop", Duration::from_secs(5), async || seen.lock().unwrap().iter().any(|(_, c)| *c == stop)).await;
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.pop().map(|(_, c)| c), Some(stop), "nothing after the stop");
    assert_eq!(
        seen.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        vec![SimCommand::SetSpeed { train: takao, speed: 300 }, SimCommand::SetSpeed { train: takao, speed: 150 }]
    );
    // The kick lasts 0.1 s (less the moment between the plan's start and its first duty being set).
    let kick = seen[1].0 - seen[0].0;
    assert!(kick >= KICK - Duration::from_millis(5) && kick < KICK * 5, "the kick lasted {kick:?}");
    assert_eq!(controllers[0].received(), vec![50, -50, 120, 0]);
}

async fn speed_socket(addr: std::net::SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/speed")).await.expect("connect").0
}

fn speed_frame(train: &str, speed: i64) -> serde_json::Value {
    serde_json::json!({ "train_name": train, "speed": speed })
}

async fn say(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.to_string().into())).await.unwrap();
}

/// The 2021 page's speed socket in sim mode: every train's speed on connect, every change to every client,
/// TAKAO's through its (virtual) onboard controller; refusals answered with an error and the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speed_socket_sets_takao_through_its_controller_and_every_client_sees_it() {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let addr = serve(track.clone(), gateway::core::Options::default()).await;
    let (mut a, mut b) = (speed_socket(addr).await, speed_socket(addr).await);
    // On connect: every train's speed (the layout's start speed, 200 of 300 mm/s, is 66 on the scale).
    for ws in [&mut a, &mut b] {
        expect(ws, |v| *v == speed_frame("TAKAO", 66)).await;
        expect(ws, |v| *v == speed_frame("YOKOSUKA", 66)).await;
    }
    say(&mut a, r#"{"train_name": "TAKAO", "speed": 50}"#).await;
    expect(&mut a, |v| *v == speed_frame("TAKAO", 50)).await;
    expect(&mut b, |v| *v == speed_frame("TAKAO", 50)).await;
    let controller = &track.virtual_controllers()[0];
    assert_eq!(controller.received().last(), Some(&50), "ControlSpeed reached TAKAO's controller");
    until("TAKAO at half speed", Duration::from_secs(5), async || track.state().await.trains[0].set_speed == 150).await;
    // The same speed again is echoed too, at once.
    say(&mut b, r#"{"train_name": "TAKAO", "speed": 50}"#).await;
    expect(&mut a, |v| *v == speed_frame("TAKAO", 50)).await;
    // Reverse is refused by the interlocking: an error, then the speed as it is (the 2021 page ignores errors).
    say(&mut a, r#"{"train_name": "TAKAO", "speed": -50}"#).await;
    let e = expect(&mut a, |v| v.get("error").is_some()).await;
    assert!(e["error"].as_str().unwrap().contains("reverse"), "{e}");
    assert_eq!(next(&mut a).await, speed_frame("TAKAO", 50));
    for (bad, says) in [
        (r#"{"train_name": "TAKAO", "speed": 105}"#, "out of range"),
        (r#"{"train_name": "TAKAO", "speed": 52.5}"#, "bad speed frame"),
        (r#"{"train_name": "THOMAS", "speed": 5}"#, "unknown train THOMAS"),
        (r#"{"station_name": "chofu_b1", "state": "ON"}"#, "speed frames"),
    ] {
        say(&mut a, bad).await;
        let e = expect(&mut a, |v| v.get("error").is_some()).await;
        assert!(e["error"].as_str().unwrap().contains(says), "{bad}: {e}");
    }
    assert_eq!(track.speed(0), 50, "nothing changed");
    assert_eq!(controller.received().iter().filter(|&&s| s != 50).count(), 1, "only the start-up speed besides");
    // A train without a controller: its speed is set in the simulation.
    say(&mut a, r#"{"train_name": "NIKKO", "speed": 100}"#).await;
    expect(&mut b, |v| *v == speed_frame("NIKKO", 100)).await;
    assert_eq!(track.state().await.trains[4].set_speed, 300);
    track.stop();
}

/// Done when: a 2021 speed client changes TAKAO's speed in live mode, the real controller receives
/// `ControlSpeed`, every client sees the speed frame, and the live track sent no request the firmware refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_live_mode_the_speed_socket_reaches_the_real_controller() {
    let real = Rig::start(layout_2021(), &HashMap::new(), 1.0).await.unwrap();
    let setup = Setup { live_boards: live_boards(&real), mode: Mode::Live, config: config(), ..Setup::default() };
    let track = started(layout_2021(), setup).await;
    let addr = serve(track.clone(), gateway::core::Options::default()).await;
    let (mut a, mut b) = (speed_socket(addr).await, speed_socket(addr).await);
    say(&mut a, r#"{"train_name": "TAKAO", "speed": 35}"#).await;
    expect(&mut a, |v| *v == speed_frame("TAKAO", 35)).await;
    expect(&mut b, |v| *v == speed_frame("TAKAO", 35)).await;
    let controller = real.controller("speed-takao").unwrap();
    assert_eq!(controller.received().last(), Some(&35));
    let real_speed = async || {
        let (tx, rx) = crossbeam_channel::bounded(1);
        real.sim.requests.send(SimRequest::Snapshot(tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap().trains[0].set_speed
    };
    until("the real TAKAO at 35 %", Duration::from_secs(5), async || real_speed().await == 105).await;
    until("the mirror follows", Duration::from_secs(5), async || track.state().await.trains[0].set_speed == 105).await;
    // A train without a controller runs at its own speed on the real track: refused, and the page told.
    say(&mut a, r#"{"train_name": "NIKKO", "speed": 10}"#).await;
    let e = expect(&mut a, |v| v.get("error").is_some()).await;
    assert!(e["error"].as_str().unwrap().contains("no onboard speed controller"), "{e}");
    assert_eq!(next(&mut a).await, speed_frame("NIKKO", 66));
    // Several health polls went by: none of the live track's requests was one the firmware refuses.
    tokio::time::sleep(config().health_every * 3).await;
    for board in &real.boards {
        assert_eq!(board.refused(), 0, "{} refused requests of the live track", board.name);
    }
    track.stop();
    real.sim.stop();
}

/// A controller that does not answer: the command fails and says so, the controller shows as down, and the
/// 2021 page is told (an error, then the speed as it is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_is_down_fails_the_speed_and_the_page_is_told() {
    let real = Rig::start(layout_2021(), &HashMap::new(), 1.0).await.unwrap();
    let mut boards = live_boards(&real);
    boards.insert("speed-takao".into(), "127.0.0.1:9".into());
    let setup = Setup { live_boards: boards, config: config(), ..Setup::default() };
    let track = started(layout_2021(), setup).await;
    let report = track.switch_mode(Mode::Live, true).await.unwrap();
    assert!(report.checked.iter().any(|(name, _, alive)| name == "speed-takao" && !alive), "{report:?}");
    let health = track.boards().into_iter().find(|(_, h)| h.name == "speed-takao").unwrap().1;
    assert!(!health.alive, "{health:?}");
    let addr = serve(track.clone(), gateway::core::Options::default()).await;
    let mut a = speed_socket(addr).await;
    say(&mut a, r#"{"train_name": "TAKAO", "speed": 80}"#).await;
    let e = expect(&mut a, |v| v.get("error").is_some()).await;
    assert!(e["error"].as_str().unwrap().contains("speed-takao is not answering"), "{e}");
    assert_eq!(next(&mut a).await, speed_frame("TAKAO", 66));
    assert_eq!(track.speed(0), 66, "nothing changed");
    track.stop();
    real.sim.stop();
}

/// In live mode speed supervision acts on a real train through its controller: closing on a stopped train,
/// it is stopped short of it (the real track itself has no interlocking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_live_mode_speed_supervision_stops_a_real_train_through_its_controller() {
    // F (with a controller) behind L (none) on the main line; both start stopped.
    let trains = format!("{}{}", controlled_train("F", "main", 100.0, "M", 0), train("L", "main", 1000.0, "M", 0));
    let layout = siding_layout(false, &trains);
    let real = Rig::start(layout.clone(), &HashMap::new(), 1.0).await.unwrap();
    let setup = Setup { live_boards: live_boards(&real), mode: Mode::Live, config: config(), ..Setup::default() };
    let track = started(layout.clone(), setup).await;
    assert_eq!(track.apply(Request::Speed { train: 0, speed: 60 }).await, Outcome::Applied);
    let controller = real.controller("speed").unwrap();
    until("stopped through its controller", Duration::from_secs(10), async || {
        controller.received().ends_with(&[60, 0])
    })
    .await;
    let real_state = || {
        let (tx, rx) = crossbeam_channel::bounded(1);
        real.sim.requests.send(SimRequest::Snapshot(tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    };
    until("the real F stands", Duration::from_secs(5), async || real_state().trains[0].effective_speed() == 0).await;
    let state = real_state();
    let gap = state.trains[1].body.spans(&layout).map(|s| s.lo).fold(f64::MAX, f64::min)
        - state.trains[0].body.front(&layout).offset;
    assert!(gap > 0.0, "stopped short of L, {gap:.0} mm behind it");
    assert_eq!(track.speed(0), 60, "the visitor's speed stands; supervision only caps it");
    track.stop();
    real.sim.stop();
}
