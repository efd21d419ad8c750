//! Virtual boards, the board client and sensor ingest, end to end on loopback.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hil::boards2021::client::{BoardClient, ClientConfig, Failure, servo_command};
use hil::boards2021::firmware::POWER_ON_ANGLE;
use hil::boards2021::ingest::{IngestError, report_for, resolve};
use hil::boards2021::protocol::{BoardCommand, SensorReport, ServoOp};
use hil::boards2021::virtual_board::{Faults, VirtualBoard, start};
use hil::virtual_devices::device::SimSink;
use sim::layout::{Layout, OnOff};
use sim::track::DevicePosition;
use sim::twin::thread::{Pacing, Request, SimHandle, spawn};
use sim::twin::{EventKind, SimEvent, Simulation, TrackState};

use crate::support::layout_2021;

struct Rig {
    layout: Arc<Layout>,
    sim: SimHandle,
    boards: Vec<VirtualBoard>,
}

impl Rig {
    async fn new() -> Rig {
        let layout = layout_2021();
        let sim = spawn(Simulation::new(layout.clone(), 10).unwrap(), Pacing::WallClock { factor: 1.0 }, None);
        let requests = sim.requests.clone();
        let sink: SimSink = Arc::new(move |cmd| {
            requests.send(Request::Command { id: 0, cmd }).expect("simulation running");
        });
        let boards = start(&layout, &HashMap::new(), sink).await.expect("boards start");
        Rig { layout, sim, boards }
    }

    fn board(&self, layout_address: &str) -> &VirtualBoard {
        let name = &self.layout.boards.iter().find(|b| b.address == layout_address).unwrap().name;
        self.boards.iter().find(|b| &b.name == name).unwrap()
    }

    fn addr(&self, layout_address: &str) -> String {
        self.board(layout_address).addr.to_string()
    }

    /// The track state once the simulation has taken every command sent so far.
    fn state(&self) -> TrackState {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.sim.requests.send(Request::Snapshot(tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).expect("snapshot")
    }

    fn position(&self, device: &str) -> DevicePosition {
        self.state().devices[self.layout.device_id(device).unwrap()]
    }
}

fn fast_client() -> BoardClient {
    BoardClient::new(ClientConfig {
        timeout: Duration::from_millis(300),
        retries: 1,
        backoff: Duration::from_millis(20),
    })
}

const CHOFU: &str = "192.168.100.107:80";

#[tokio::test]
async fn a_command_through_a_virtual_board_moves_the_simulated_device() {
    let rig = Rig::new().await;
    assert_eq!(rig.boards.len(), 4, "one virtual board per servo board");
    let client = BoardClient::new(ClientConfig::default());
    let b1 = &rig.layout.devices[rig.layout.device_id("chofu_b1").unwrap()];
    assert_eq!(rig.position("chofu_b1"), DevicePosition::On);
    client.send(&rig.addr(CHOFU), &servo_command(b1, OnOff::Off)).await.expect("applied");
    assert_eq!(rig.position("chofu_b1"), DevicePosition::Off);
    assert_eq!(rig.board(CHOFU).angle(b1.pin), Some(b1.off_angle));
    // An angle that is neither ON nor OFF leaves the device between positions; so does the firmware's own ON
    // (80 degrees on every pin).
    client.send(&rig.addr(CHOFU), &BoardCommand::Servo { pin: b1.pin, op: ServoOp::Angle(150) }).await.unwrap();
    assert_eq!(rig.position("chofu_b1"), DevicePosition::Between(150));
    client.send(&rig.addr(CHOFU), &BoardCommand::Servo { pin: b1.pin, op: ServoOp::On }).await.unwrap();
    assert_eq!(rig.position("chofu_b1"), DevicePosition::Between(80));
    // GET on a servo pin is refused, as the firmware does, and moves nothing.
    let get = client.send(&rig.addr(CHOFU), &BoardCommand::Servo { pin: b1.pin, op: ServoOp::Get }).await;
    assert_eq!(get, Err(Failure::RejectedOperation(rig.addr(CHOFU))));
    assert_eq!(rig.position("chofu_b1"), DevicePosition::Between(80));
    rig.sim.stop();
}

#[tokio::test]
async fn refused_pins_and_operations_are_classified_and_not_retried() {
    let rig = Rig::new().await;
    let client = fast_client();
    let addr = rig.addr(CHOFU);
    let e = client.send(&addr, &BoardCommand::Servo { pin: 2, op: ServoOp::On }).await.unwrap_err();
    assert_eq!(e, Failure::RejectedPin(addr.clone()));
    let raw = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .body(r#"{"pin":23,"state":"SPIN"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(raw.text().await.unwrap(), r#"{"error":"invalid operation"}"#);
    rig.sim.stop();
}

#[tokio::test]
async fn injected_faults_are_reported_as_failures() {
    let rig = Rig::new().await;
    let client = fast_client();
    let addr = rig.addr(CHOFU);
    let board = rig.board(CHOFU);
    let cmd = servo_command(&rig.layout.devices[rig.layout.device_id("chofu_s1").unwrap()], OnOff::Off);

    board.set_faults(Faults { error_500: true, ..Faults::default() });
    assert!(matches!(client.send(&addr, &cmd).await, Err(Failure::BadAnswer { .. })));
    assert!(client.probe(&addr, UNIX).await.unwrap().is_err(), "a board answering 500 is not healthy");
    assert_eq!(rig.position("chofu_s1"), DevicePosition::On, "a failed command changed nothing");

    board.set_faults(Faults { drop_requests: true, ..Faults::default() });
    assert_eq!(client.send(&addr, &cmd).await, Err(Failure::Timeout(addr.clone())));

    board.set_faults(Faults { latency_ms: 100, ..Faults::default() });
    let started = Instant::now();
    assert!(client.send(&addr, &cmd).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(rig.position("chofu_s1"), DevicePosition::Off);

    // Nothing listens here: unreachable, and unhealthy.
    let nobody = "127.0.0.1:9";
    assert_eq!(client.send(nobody, &cmd).await, Err(Failure::Unreachable(nobody.into())));
    assert_eq!(client.probe(nobody, UNIX).await, Some(Err(Failure::Unreachable(nobody.into()))));
    rig.sim.stop();
}

/// A unix time to set boards' clocks to.
const UNIX: u64 = 1_700_000_000;

/// Every kind of request over HTTP, and the answer the 2021 firmware gives it (`N` stands for the clock's
/// reading), with the content type and the closed connection of the ESP32 web server. Every branch of the
/// firmware itself is in `hil::boards2021`'s unit tests.
#[tokio::test]
async fn a_virtual_board_answers_every_request_as_the_2021_firmware_does() {
    let rig = Rig::new().await;
    let addr = rig.addr(CHOFU);
    let servo = rig.layout.devices[rig.layout.device_id("chofu_s1").unwrap()].pin;
    let board = rig.layout.devices[rig.layout.device_id("chofu_s1").unwrap()].board;
    let free = *sim::layout::SERVO_PINS
        .iter()
        .find(|&&p| !rig.layout.devices.iter().any(|d| d.board == board && d.pin == p))
        .expect("a servo pin with nothing attached");
    let ok = r#"{"status":"OK","last_update":N}"#;
    let invalid_op = r#"{"error":"invalid operation"}"#;
    let invalid_pin = r#"{"error":"invalid GPIO pin"}"#;
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let table: Vec<(&str, &str, &str, String, u16, &str, &str)> = vec![
        ("POST", "/", json, format!(r#"{{"pin":{servo},"state":"ANGLE","angle":45}}"#), 200, json, ok),
        ("POST", "/", json, format!(r#"{{"pin":{servo},"state":"ON"}}"#), 200, json, ok),
        ("POST", "/", json, format!(r#"{{"pin":{servo},"state":"OFF"}}"#), 200, json, ok),
        ("POST", "/", json, format!(r#"{{"pin":{free},"state":"ANGLE","angle":10}}"#), 200, json, ok),
        ("POST", "/", json, format!(r#"{{"pin":{servo},"state":"GET"}}"#), 400, json, invalid_op),
        ("POST", "/", json, r#"{"pin":34,"state":"GET"}"#.into(), 404, json, invalid_pin),
        ("POST", "/", json, r#"{"pin":2,"state":"ANGLE","angle":10}"#.into(), 404, json, invalid_pin),
        ("POST", "/", json, format!(r#"{{"pin":{servo},"state":"TOGGLE"}}"#), 400, json, invalid_op),
        ("POST", "/", json, "not json".into(), 404, json, invalid_pin),
        ("POST", "/", form, format!(r#"{{"pin":{servo},"state":"ON"}}"#), 404, json, invalid_pin),
        ("POST", "/", json, format!(r#"{{"pin":-1,"state":"{UNIX}"}}"#), 200, json, ok),
        ("POST", "/", json, r#"{"pin":-1,"state":"soon"}"#.into(), 200, json, r#"{"status":"OK","last_update":0}"#),
        ("POST", "/health", json, String::new(), 404, json, r#"{"status":"OK"}"#),
        ("GET", "/health", json, String::new(), 404, "text/html", "Not found: /health"),
        ("GET", "/", json, String::new(), 404, "text/html", "Not found: /"),
        ("POST", "/gpio", json, format!(r#"{{"pin":{servo},"state":"ON"}}"#), 404, "text/html", "Not found: /gpio"),
    ];
    let http = reqwest::Client::new();
    for (method, path, content_type, body, status, answer_type, want) in table {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = http
            .request(method.clone(), format!("http://{addr}{path}"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let header = |name: &str| answer.headers().get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header("connection").as_deref(), Some("close"), "{method} {path}: the board closes");
        assert_eq!(header("content-type").as_deref(), Some(answer_type), "{method} {path} {body}");
        let got = (answer.status().as_u16(), answer.text().await.unwrap());
        // The clock's reading differs from run to run: compare the answer with its number taken out, unless the
        // table gives the number.
        let shape = match got.1.split_once("\"last_update\":") {
            Some((head, tail))
                if !want.contains(tail) && tail.trim_start_matches(|c: char| c.is_ascii_digit()) == "}" =>
            {
                format!("{head}\"last_update\":N}}")
            }
            _ => got.1.clone(),
        };
        assert_eq!((got.0, shape.as_str()), (status, want), "{method} {path} {body}");
    }
    rig.sim.stop();
}

/// A clock set answers the time it was given, rebooted or not; a servo command answers the board's clock,
/// which reads as seconds since boot after a reboot (without NTP), and re-driving a servo where it stands moves
/// nothing.
#[tokio::test]
async fn a_servo_answer_shows_a_reboot_and_re_driving_in_place_moves_nothing() {
    let rig = Rig::new().await;
    let client = fast_client();
    let addr = rig.addr(CHOFU);
    let d = &rig.layout.devices[rig.layout.device_id("chofu_s1").unwrap()];
    let board = rig.board(CHOFU);
    assert_eq!(client.probe(&addr, UNIX).await, Some(Ok(UNIX as i64)));
    let clock = client.send(&addr, &servo_command(d, OnOff::Off)).await.unwrap();
    assert!(clock >= UNIX as i64, "the clock was set: {clock}");
    assert_eq!(board.moves(d.pin), 1);
    client.send(&addr, &servo_command(d, OnOff::Off)).await.unwrap();
    assert_eq!(board.moves(d.pin), 1, "driven where it stands: no move");
    board.reboot();
    assert_eq!(client.probe(&addr, UNIX + 3).await, Some(Ok(UNIX as i64 + 3)), "a clock set shows nothing");
    board.reboot();
    let clock = client.send(&addr, &servo_command(d, OnOff::Off)).await.unwrap();
    assert!(clock < 1_000_000_000, "after a reboot a servo answer reads as uptime: {clock}");
    assert_eq!(board.moves(d.pin), 2, "back from the power-on angle");
    rig.sim.stop();
}

#[tokio::test]
async fn faults_and_reboots_can_be_set_over_http() {
    let rig = Rig::new().await;
    let addr = rig.addr(CHOFU);
    let http = reqwest::Client::new();
    let set = http
        .put(format!("http://{addr}/_twin/faults"))
        .body(r#"{"latency_ms": 5, "error_500": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    assert_eq!(rig.board(CHOFU).faults(), Faults { latency_ms: 5, error_500: true, ..Faults::default() });
    let bad = http.put(format!("http://{addr}/_twin/faults")).body(r#"{"latency": "slow"}"#).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("not a fault setting"));
    // A reboot returns the servos to their power-on angle: the simulated devices are left between positions.
    let reboot = http.post(format!("http://{addr}/_twin/reboot")).send().await.unwrap();
    assert_eq!(reboot.status().as_u16(), 200);
    assert_eq!(rig.position("chofu_b1"), DevicePosition::Between(POWER_ON_ANGLE));
    assert_eq!(rig.position("kitano_b1"), DevicePosition::On, "other boards are untouched");
    rig.sim.stop();
}

#[tokio::test]
async fn one_request_at_a_time_per_board() {
    let rig = Rig::new().await;
    let client = BoardClient::new(ClientConfig::default());
    let addr = rig.addr(CHOFU);
    rig.board(CHOFU).set_faults(Faults { latency_ms: 100, ..Faults::default() });
    let cmd = BoardCommand::SetClock { unix: UNIX };
    let started = Instant::now();
    let (a, b, c) = tokio::join!(client.send(&addr, &cmd), client.send(&addr, &cmd), client.send(&addr, &cmd));
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(300), "three 100 ms requests in turn: {:?}", started.elapsed());
    rig.sim.stop();
}

#[test]
fn sensor_reports_map_to_the_layout_and_back() {
    let layout = layout_2021();
    let sensor = layout.sensor_id("sasazuka_s1_takao").unwrap();
    let event = SimEvent { time_ms: 5, kind: EventKind::SensorPassed { sensor, train: 2 } };
    let report = report_for(&layout, &event).expect("wired sensor");
    assert_eq!(report, SensorReport { mac_address: "192.168.1.103".into(), pin: 8, train_id: 3 });
    assert_eq!(resolve(&layout, &report).unwrap().sensor, sensor);
    let unwired = layout.sensor_id("shinjuku").unwrap();
    assert_eq!(
        report_for(&layout, &SimEvent { time_ms: 5, kind: EventKind::SensorPassed { sensor: unwired, train: 0 } }),
        None
    );
    let stranger = SensorReport { mac_address: "10.9.9.9".into(), pin: 1, train_id: 1 };
    assert_eq!(resolve(&layout, &stranger).unwrap_err().status(), 403);
    let no_pin = SensorReport { pin: 99, ..report };
    assert_eq!(resolve(&layout, &no_pin), Err(IngestError::UnknownPin { board: "192.168.1.103".into(), pin: 99 }));
}

#[tokio::test]
async fn the_ingest_endpoint_accepts_allowed_reports_and_refuses_the_rest() {
    let layout = layout_2021();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The Meidaimae sensor board reports from loopback here; the others from their layout addresses.
    let senders = hil::boards2021::ingest::Senders::new(&board_addresses(&layout, "sensors-meidaimae", "127.0.0.1"));
    let app = hil::boards2021::ingest::router(layout, senders, tx)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let post = |body: String| http.post(format!("http://{addr}/registerPosition")).body(body).send();

    let ok = post(r#"{"mac_address":"192.168.1.104","pin":2,"train_id":4}"#.into()).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let reading = rx.recv().await.unwrap();
    assert_eq!((reading.sensor, reading.train_id), (layout_2021().sensor_id("meidaimae_s1_f").unwrap(), 4));

    let forbidden = post(r#"{"mac_address":"192.168.9.9","pin":2,"train_id":4}"#.into()).await.unwrap();
    assert_eq!(forbidden.status().as_u16(), 403);
    let unknown_pin = post(r#"{"mac_address":"192.168.1.104","pin":7,"train_id":4}"#.into()).await.unwrap();
    assert_eq!(unknown_pin.status().as_u16(), 400);
    assert!(unknown_pin.text().await.unwrap().contains("no sensor on pin 7"));
    let malformed = post("{not json".into()).await.unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let oversized = post(format!(r#"{{"mac_address":"{}","pin":1,"train_id":1}}"#, "x".repeat(10_000))).await.unwrap();
    assert_eq!(oversized.status().as_u16(), 413);
    // A report naming another board, sent from here, is not that board's.
    let forged = post(r#"{"mac_address":"192.168.1.103","pin":1,"train_id":4}"#.into()).await.unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert!(forged.text().await.unwrap().contains("came from 127.0.0.1, not from the board (192.168.1.103)"));
    assert!(rx.try_recv().is_err(), "refused reports feed nothing");
    // A flood from the board itself: past its rate, refused.
    let mut statuses = Vec::new();
    for _ in 0..hil::boards2021::ingest::REPORTS_PER_SECOND + 5 {
        statuses.push(
            post(r#"{"mac_address":"192.168.1.104","pin":2,"train_id":4}"#.into()).await.unwrap().status().as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let accepted = std::iter::from_fn(|| rx.try_recv().ok()).count();
    assert!(accepted <= hil::boards2021::ingest::REPORTS_PER_SECOND as usize, "{accepted} accepted");
}

/// Every board's layout address, but `name`'s replaced by `address`.
fn board_addresses(layout: &Layout, name: &str, address: &str) -> Vec<String> {
    layout.boards.iter().map(|b| if b.name == name { address.to_string() } else { b.address.clone() }).collect()
}

/// A board's reports are taken only from its address, and at most so many a second (the window is plain data
/// with the time passed in).
#[test]
fn sensor_reports_are_admitted_only_from_their_board_and_within_its_rate() {
    use hil::boards2021::ingest::{IngestError, REPORTS_PER_SECOND, Senders};
    let layout = layout_2021();
    let board = layout.boards.iter().position(|b| b.name == "sensors-sasazuka").unwrap();
    let senders = Senders::new(&board_addresses(&layout, "", ""));
    let (board_ip, stranger) = ("192.168.1.103".parse().unwrap(), "127.0.0.1".parse().unwrap());
    let t0 = Instant::now();
    assert!(matches!(senders.admit(board, "s", stranger, t0), Err(IngestError::WrongSender { .. })));
    for _ in 0..REPORTS_PER_SECOND {
        assert_eq!(senders.admit(board, "s", board_ip, t0), Ok(()));
    }
    assert_eq!(senders.admit(board, "s", board_ip, t0), Err(IngestError::TooMany("s".into())));
    assert_eq!(senders.admit(board, "s", board_ip, t0 + Duration::from_secs(1)), Ok(()), "a new second");
}

/// Housekeeping gives way to commands: a health probe waiting on a slow board's answer is dropped as soon as a
/// command wants the board, so the command takes the board's own time, not the probe's and then its own.
#[tokio::test]
async fn a_command_does_not_wait_behind_housekeeping() {
    let rig = Rig::new().await;
    let client = BoardClient::new(ClientConfig { timeout: Duration::from_secs(5), ..ClientConfig::default() });
    let addr = rig.addr(CHOFU);
    let board = rig.board(CHOFU);
    board.set_faults(Faults { latency_ms: 1000, ..Faults::default() });
    let d = &rig.layout.devices[rig.layout.device_id("chofu_s1").unwrap()];
    let probe = tokio::spawn({
        let (client, addr) = (client.clone(), addr.clone());
        async move { client.probe(&addr, UNIX).await }
    });
    // The probe holds the board's turn once the board has its request (and set its clock); its answer is slow.
    let started = Instant::now();
    while board.clock() < UNIX as i64 {
        assert!(started.elapsed() < Duration::from_secs(5), "the probe did not reach the board");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = Instant::now();
    client.send(&addr, &servo_command(d, OnOff::Off)).await.expect("applied");
    let took = sent.elapsed();
    assert_eq!(probe.await.unwrap(), None, "the probe gave way");
    assert!(took < Duration::from_millis(1600), "the command took {took:?}: its own 1 s, not the probe's too");
    rig.sim.stop();
}
