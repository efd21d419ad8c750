//! The track interface in sim mode, end to end on loopback: commands through the interlocking and the
//! virtual boards, board failures and reboots, restoration of the desired state.

use std::time::{Duration, Instant};

use hil::boards2021::client::{self, ClientConfig};
use hil::boards2021::virtual_board::Faults;
use hil::track::{Failure, Outcome, Setup, Track, TrackConfig};
use sim::interlocking::{RejectKind, Request};
use sim::layout::OnOff;
use sim::track::DevicePosition;

use crate::support::{config, device, layout_2021, position, started, until};

const CHOFU: &str = "servo-107";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pass_the_interlocking_and_the_boards() {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied);
    assert_eq!(position(&track, "chofu_b3").await, DevicePosition::Off);
    match track.apply(device(&track, "meidaimae_s1", OnOff::Off)).await {
        Outcome::Rejected(r) => assert_eq!(r.kind, RejectKind::RouteOccupied, "{}", r.message),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(position(&track, "meidaimae_s1").await, DevicePosition::On, "a rejected command changes nothing");
    // CHICHIBU has no controller: its speed is set in the simulation, 40 % of its top speed.
    assert_eq!(track.apply(Request::Speed { train: 1, speed: 40 }).await, Outcome::Applied);
    assert_eq!(track.state().await.trains[1].set_speed, 120);
    assert_eq!(track.speed(1), 40);
    match track.apply(Request::Speed { train: 1, speed: 101 }).await {
        Outcome::Rejected(r) => assert_eq!(r.kind, RejectKind::OutOfRange, "{}", r.message),
        other => panic!("expected a rejection, got {other:?}"),
    }
    track.stop();
    // A command that comes while the track shuts down fails, saying so (automatic operation's task may still be
    // carrying out a round).
    match track.apply(Request::Speed { train: 1, speed: 30 }).await {
        Outcome::Failed(failure) => assert_eq!(failure, Failure::Simulation(sim::twin::SimError::Stopped)),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Chofu's virtual servo board.
fn chofu(track: &Track) -> hil::boards2021::virtual_board::VirtualBoard {
    track.virtual_boards().iter().find(|b| b.name == CHOFU).unwrap().clone()
}

/// A track whose board client gives up soon (300 ms, one retry), started and restored; and Chofu's board.
async fn short_timeouts() -> (Track, hil::boards2021::virtual_board::VirtualBoard) {
    let client = ClientConfig { timeout: Duration::from_millis(300), retries: 1, backoff: Duration::from_millis(20) };
    let track = started(layout_2021(), Setup { config: TrackConfig { client, ..config() }, ..Setup::default() }).await;
    let board = chofu(&track);
    (track, board)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_down_fails_its_commands_and_is_unhealthy_within_two_seconds() {
    // A board that drops requests is found by its timeouts: 300 ms, one retry.
    let (track, board) = short_timeouts().await;
    board.set_faults(Faults { drop_requests: true, ..Faults::default() });
    let down_at = Instant::now();
    match track.apply(device(&track, "chofu_b3", OnOff::Off)).await {
        // No answer in time: the board may have got it.
        Outcome::Failed(failure) => {
            assert!(matches!(failure, Failure::Uncertain { failure: client::Failure::Timeout(_), .. }), "{failure}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let unhealthy = || track.boards().iter().any(|(_, h)| h.name == CHOFU && !h.alive);
    until("board marked down", Duration::from_secs(2), async || unhealthy()).await;
    assert!(down_at.elapsed() < Duration::from_secs(2));
    assert_eq!(position(&track, "chofu_b3").await, DevicePosition::On, "the failed command changed nothing");
    match track.apply(device(&track, "chofu_b3", OnOff::Off)).await {
        Outcome::Failed(failure) => assert_eq!(failure, Failure::BoardDown { board: "servo-107".into() }),
        other => panic!("expected a failure, got {other:?}"),
    }
    // Another board still works.
    assert_eq!(track.apply(device(&track, "kitano_s5", OnOff::Off)).await, Outcome::Applied);
    // Back up: restored, then commands go through again.
    board.set_faults(Faults::default());
    until("board restored", Duration::from_secs(5), async || track.ready()).await;
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied);
    track.stop();
}

/// Whether every device of `board` stands at its desired angle on the virtual board.
fn in_place(track: &Track, board: &hil::boards2021::virtual_board::VirtualBoard) -> bool {
    let layout = track.layout();
    let id = layout.boards.iter().position(|b| b.name == board.name).unwrap();
    layout.devices.iter().enumerate().filter(|(_, d)| d.board == id).all(|(i, d)| {
        let want = if track.desired(i) == OnOff::On { d.on_angle } else { d.off_angle };
        board.angle(d.pin) == Some(want)
    })
}

/// Moves of every servo of every virtual board, by (board, pin).
fn moves(track: &Track) -> Vec<((String, u32), u64)> {
    let layout = track.layout();
    track
        .virtual_boards()
        .iter()
        .flat_map(|b| {
            let id = layout.boards.iter().position(|l| l.name == b.name).unwrap();
            layout.devices.iter().filter(move |d| d.board == id).map(move |d| ((b.name.clone(), d.pin), b.moves(d.pin)))
        })
        .collect()
}

/// Three quick reboots in a row of a board answering exactly as the 2021 firmware (down for 300 ms each, the
/// first two rebooted again while the twin restores them, servos back at their power-on angle): after each,
/// every device of the board is back at its desired angle within 10 s, with the track's own settings; each of
/// its servos moved once per reboot at most (from the power-on angle), and no servo of another board moved.
/// Without NTP the reboot shows in the clock of the next servo answer; with NTP it does not, and the health
/// polls' rotation puts every servo back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reboot_of_a_board_is_restored_within_ten_seconds() {
    tokio::join!(three_reboots_restored(false), three_reboots_restored(true));
}

/// Three quick reboots of Chofu's board, with NTP or not (see above).
async fn three_reboots_restored(ntp: bool) {
    let track = Track::start(layout_2021(), Setup::default()).await.unwrap();
    until("start-up restore", Duration::from_secs(20), async || track.ready()).await;
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied);
    let board = chofu(&track);
    board.set_faults(Faults { ntp, ..Faults::default() });
    for round in 0..3 {
        let before = moves(&track);
        board.reboot_for(Duration::from_millis(300));
        if round < 2 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            board.reboot_for(Duration::from_millis(300));
        }
        let last = Instant::now();
        until("every device back in place", Duration::from_secs(10), async || in_place(&track, &board)).await;
        println!("ntp {ntp}, round {round}: in place {:?} after the last reboot", last.elapsed());
        let reboots = if round < 2 { 2 } else { 1 };
        for ((name, pin), after) in moves(&track) {
            let had = before.iter().find(|(k, _)| *k == (name.clone(), pin)).unwrap().1;
            let most = if name == board.name { reboots } else { 0 };
            assert!(after - had <= most, "{name} pin {pin} moved {} times for {reboots} reboots", after - had);
        }
    }
    until("healthy", Duration::from_secs(10), async || track.ready()).await;
    track.stop();
}

/// A servo moved behind the twin's back (no reboot to see: the board kept its clock) is driven back by the
/// health polls' rotation, and commands go meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servo_moved_behind_the_twin_s_back_is_reasserted() {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let board = chofu(&track);
    let layout = track.layout().clone();
    let b1 = &layout.devices[layout.device_id("chofu_b1").unwrap()];
    let moved = reqwest::Client::new()
        .post(format!("http://{}/", board.addr))
        .body(format!(r#"{{"pin":{},"state":"ANGLE","angle":{}}}"#, b1.pin, b1.off_angle))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 200);
    assert_eq!(position(&track, "chofu_b1").await, DevicePosition::Off, "moved behind the twin's back");
    assert_eq!(track.desired(layout.device_id("chofu_b1").unwrap()), OnOff::On);
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied, "commands go");
    until("re-asserted", Duration::from_secs(10), async || position(&track, "chofu_b1").await == DevicePosition::On)
        .await;
    assert_eq!(position(&track, "chofu_b3").await, DevicePosition::Off, "the command held");
    track.stop();
}

/// A board that carries a command out but answers too late: the outcome is unknown, so the twin does not show
/// it as not done: it says the command may have been carried out, makes the commanded state the desired one,
/// and drives it when the board answers again (instead of restoring the old state over the servo's move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_outcome_is_unknown_is_made_true_not_undone() {
    let (track, board) = short_timeouts().await;
    board.set_faults(Faults { latency_ms: 800, ..Faults::default() });
    match track.apply(device(&track, "chofu_b3", OnOff::Off)).await {
        Outcome::Failed(failure) => {
            assert!(
                matches!(failure, Failure::Uncertain { ref device, will_be: "set straight", .. } if device == "chofu_b3")
            );
            assert!(failure.to_string().contains("may have been carried out"), "{failure}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let chofu_b3 = track.layout().device_id("chofu_b3").unwrap();
    assert_eq!(track.desired(chofu_b3), OnOff::Off, "the commanded state is the one the twin stands by");
    assert_eq!(position(&track, "chofu_b3").await, DevicePosition::Off, "the slow board did move the servo");
    board.set_faults(Faults::default());
    until("board restored", Duration::from_secs(10), async || track.ready()).await;
    assert_eq!(position(&track, "chofu_b3").await, DevicePosition::Off, "not undone by the restore");
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_drives_every_device_through_its_board() {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let layout = track.layout().clone();
    for vb in track.virtual_boards() {
        let board = layout.boards.iter().position(|b| b.name == vb.name).unwrap();
        for d in layout.devices.iter().filter(|d| d.board == board) {
            let want = if d.initial == OnOff::On { d.on_angle } else { d.off_angle };
            assert_eq!(vb.angle(d.pin), Some(want), "{} driven to its initial state", d.name);
        }
    }
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boards_answering_like_the_2021_firmware_stay_alive_under_health_polls() {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    // Three health polls later every board is still alive, and commands go through.
    let before: Vec<u64> = track.virtual_boards().iter().map(|vb| vb.answered()).collect();
    until("three more requests answered by every board", Duration::from_secs(10), async || {
        track.virtual_boards().iter().zip(&before).all(|(vb, b)| vb.answered() >= b + 3)
    })
    .await;
    assert!(track.ready(), "{:?}", track.boards());
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied);
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_positions_sensor_reports_and_the_snapshot_everything() {
    use hil::track::TrackEvent;
    use sim::twin::Mode;
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let snapshot = track.snapshot().await;
    assert_eq!(snapshot.mode, Mode::Sim);
    assert_eq!(snapshot.boards.len(), 5, "four servo boards and TAKAO's speed controller");
    assert_eq!(snapshot.state.trains.len(), 8);
    let mut events = track.subscribe();
    // CHICHIBU waits at kudanshita_s6; released, it runs on towards Iwamotocho.
    assert_eq!(track.apply(device(&track, "kudanshita_s6", OnOff::Off)).await, Outcome::Applied);
    let reading =
        hil::boards2021::ingest::SensorReading { sensor: track.layout().sensor_id("shinjuku").unwrap(), train_id: 3 };
    track.readings().send(reading).unwrap();
    let (mut moved, mut reported) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(moved && reported) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Ok(TrackEvent::Trains(p))) => moved |= p[1].speed > 0,
            Ok(Ok(TrackEvent::SensorReport(r))) => reported |= r == reading,
            _ => {}
        }
    }
    assert!(moved && reported, "moved {moved}, reported {reported}");
    track.stop();
}

/// A slow board holds up its own commands only: while a command to Chofu's board (answering after 1.5 s) is on
/// its way, a command to Kitano's board is checked, carried out and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_board_holds_up_only_its_own_commands() {
    let client = ClientConfig { timeout: Duration::from_secs(5), ..ClientConfig::default() };
    let track = started(layout_2021(), Setup { config: TrackConfig { client, ..config() }, ..Setup::default() }).await;
    let board = chofu(&track);
    board.set_faults(Faults { latency_ms: 1500, ..Faults::default() });
    let b3 = track.layout().devices[track.layout().device_id("chofu_b3").unwrap()].pin;
    let slow = tokio::spawn({
        let track = track.clone();
        async move { track.apply(device(&track, "chofu_b3", OnOff::Off)).await }
    });
    until("the slow board carried it out", Duration::from_secs(5), async || board.moves(b3) > 0).await;
    let started = Instant::now();
    assert_eq!(track.apply(device(&track, "kitano_s5", OnOff::Off)).await, Outcome::Applied);
    let took = started.elapsed();
    assert!(!slow.is_finished(), "Kitano's command was answered while Chofu's was still on its way ({took:?})");
    assert_eq!(slow.await.unwrap(), Outcome::Applied);
    track.stop();
}
