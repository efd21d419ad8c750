//! The track interface in sim mode, end to end on loopback: commands through the interlocking and the
//! virtual boards, board failures and reboots, restoration of the desired state.

use std::time::{Duration, Instant};

use hil::client::ClientConfig;
use hil::track::{Outcome, Setup, Track, TrackConfig};
use hil::virtual_boards::Faults;
use sim::interlocking::{RejectKind, Request};
use sim::layout::OnOff;
use sim::track::DevicePosition;

use crate::support::layout_2021;

/// A track for tests: frequent health polls and a short restore spacing, and the board client's own timeouts
/// (a shorter one could take a slow board on a busy machine for a dead one).
pub fn config() -> TrackConfig {
    TrackConfig {
        health_every: Duration::from_millis(200),
        init_spacing: Duration::from_millis(10),
        ..TrackConfig::default()
    }
}

pub async fn until(what: &str, limit: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ok().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn device(track: &Track, name: &str, state: OnOff) -> Request {
    Request::Device { device: track.layout().device_id(name).unwrap(), state }
}

pub async fn position(track: &Track, name: &str) -> DevicePosition {
    track.state().await.devices[track.layout().device_id(name).unwrap()]
}

const CHOFU: &str = "servo-107";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pass_the_interlocking_and_the_boards() {
    let track = Track::start(layout_2021(), Setup { config: config(), ..Setup::default() }).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
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
}

/// Chofu's virtual servo board.
fn chofu(track: &Track) -> hil::virtual_boards::VirtualBoard {
    track.virtual_boards().iter().find(|b| b.name == CHOFU).unwrap().clone()
}

/// A track whose board client gives up soon (300 ms, one retry), started and restored; and Chofu's board.
async fn short_timeouts() -> (Track, hil::virtual_boards::VirtualBoard) {
    let client = ClientConfig { timeout: Duration::from_millis(300), retries: 1, backoff: Duration::from_millis(20) };
    let track = Track::start(layout_2021(), Setup { config: TrackConfig { client, ..config() }, ..Setup::default() })
        .await
        .unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
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
        Outcome::Failed(reason) => assert!(reason.contains("did not answer"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let unhealthy = || track.boards().iter().any(|(_, h)| h.name == CHOFU && !h.alive);
    until("board marked down", Duration::from_secs(2), async || unhealthy()).await;
    assert!(down_at.elapsed() < Duration::from_secs(2));
    assert_eq!(position(&track, "chofu_b3").await, DevicePosition::On, "the failed command changed nothing");
    match track.apply(device(&track, "chofu_b3", OnOff::Off)).await {
        Outcome::Failed(reason) => assert!(reason.contains("servo-107 is not answering"), "{reason}"),
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

/// Three quick reboots of a board answering like the 2021 firmware: every one is seen (its clock reads as
/// uptime again) and followed by a restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reboot_of_a_board_is_followed_by_a_restore() {
    let track = Track::start(layout_2021(), Setup { config: config(), ..Setup::default() }).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied);
    let board = chofu(&track);
    for round in 0..3 {
        board.reboot();
        // Rebooted again while the twin may still be restoring the previous one, in the first two rounds.
        if round < 2 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            board.reboot();
        }
        until("restored after the reboot", Duration::from_secs(10), async || {
            position(&track, "chofu_b3").await == DevicePosition::Off
                && position(&track, "chofu_b1").await == DevicePosition::On
                && track.ready()
        })
        .await;
    }
    track.stop();
}

/// A servo moved behind the twin's back (no reboot to see: the board kept its clock) is driven back by the
/// periodic re-assertion, and commands go meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servo_moved_behind_the_twin_s_back_is_reasserted() {
    let config = hil::track::TrackConfig { reassert_every: Duration::from_millis(500), ..config() };
    let track = Track::start(layout_2021(), Setup { config, ..Setup::default() }).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
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
        Outcome::Failed(reason) => assert!(reason.contains("may have been carried out"), "{reason}"),
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
    let track = Track::start(layout_2021(), Setup { config: config(), ..Setup::default() }).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
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
    let track = Track::start(layout_2021(), Setup { config: config(), ..Setup::default() }).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    // Several health polls later every board is still alive, and commands go through.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(track.ready(), "{:?}", track.boards());
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied);
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_positions_sensor_reports_and_the_snapshot_everything() {
    use hil::track::{Mode, TrackEvent};
    let track = Track::start(layout_2021(), Setup { config: config(), ..Setup::default() }).await.unwrap();
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    let snapshot = track.snapshot().await;
    assert_eq!(snapshot.mode, Mode::Sim);
    assert_eq!(snapshot.boards.len(), 5, "four servo boards and TAKAO's speed controller");
    assert_eq!(snapshot.state.trains.len(), 8);
    let mut events = track.subscribe();
    // CHICHIBU waits at kudanshita_s6; released, it runs on towards Iwamotocho.
    assert_eq!(track.apply(device(&track, "kudanshita_s6", OnOff::Off)).await, Outcome::Applied);
    let reading = hil::ingest::SensorReading { sensor: track.layout().sensor_id("shinjuku").unwrap(), train_id: 3 };
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

/// The track's bookkeeping without IO: restores stepped with the time passed in.
mod bookkeeping {
    use std::time::{Duration, Instant};

    use hil::track::Mode;
    use hil::track::core::{Next, RestoreStep, TrackCore};
    use sim::layout::OnOff;

    use crate::support::layout_2021;

    const SPACING: Duration = Duration::from_millis(500);

    fn core(now: Instant) -> (TrackCore, usize) {
        let layout = layout_2021();
        let n = layout.boards.len();
        let sim = (0..n).map(|b| format!("sim:{b}")).collect();
        let live = (0..n).map(|b| format!("live:{b}")).collect();
        let desired = layout.devices.iter().map(|d| d.initial).collect();
        let board = layout.boards.iter().position(|b| b.name == "servo-107").unwrap();
        (TrackCore::new(&layout, Mode::Sim, desired, [sim, live], SPACING, now), board)
    }

    /// Runs `board`'s restore to its end, every step succeeding, with time passing as the core asks.
    fn restore(core: &mut TrackCore, board: usize, mut now: Instant) -> (Instant, usize) {
        let mut devices = 0;
        loop {
            match core.next(board, now) {
                Next::Step(step, number) => {
                    devices += matches!(step, RestoreStep::Device(_)) as usize;
                    core.step_done(board, number, true, now);
                }
                Next::At(at) => {
                    assert!(at > now);
                    now = at;
                }
                Next::Idle => return (now, devices),
                Next::Reassert(d) => panic!("a re-assertion of device {d} during a restore"),
            }
        }
    }

    #[test]
    fn a_restore_sets_the_clock_then_drives_each_device_spaced_out() {
        let t0 = Instant::now();
        let (mut core, board) = core(t0);
        assert!(!core.ready() && core.restoring());
        let Next::Step(RestoreStep::SetClock, number) = core.next(board, t0) else { panic!("the clock first") };
        assert!(core.admit(board).unwrap_err().contains("being restored"));
        core.step_done(board, number, true, t0);
        // The first device right after the clock, the next one SPACING later.
        let Next::Step(RestoreStep::Device(first), _) = core.next(board, t0) else { panic!("a device step") };
        core.step_done(board, number, true, t0);
        assert_eq!(core.next(board, t0), Next::At(t0 + SPACING));
        assert_ne!(core.next(board, t0 + SPACING), Next::Step(RestoreStep::Device(first), number));
        let (end, devices) = restore(&mut core, board, t0 + SPACING);
        assert!(devices >= 1 && end >= t0 + SPACING * devices as u32, "{devices} devices by {:?}", end - t0);
        assert_eq!(core.admit(board), Ok(()));
        let others: Vec<usize> = core.health().iter().map(|(b, _)| *b).filter(|&b| b != board).collect();
        for b in others {
            restore(&mut core, b, t0);
        }
        assert!(core.ready() && !core.restoring());
    }

    #[test]
    fn a_failed_step_ends_the_restore_until_the_board_answers_again() {
        let t0 = Instant::now();
        let (mut core, board) = core(t0);
        let Next::Step(_, first) = core.next(board, t0) else { panic!("a step") };
        core.step_done(board, first, true, t0);
        let health = core.step_done(board, first, false, t0).expect("health changed");
        assert!(!health.alive && health.restoring);
        assert_eq!(core.next(board, t0), Next::Idle);
        assert!(core.admit(board).unwrap_err().contains("not answering"));
        // Still down: nothing. Back: restored from the start.
        assert_eq!(core.polled(board, false, false, t0), None);
        assert!(core.polled(board, true, false, t0).expect("alive again").alive);
        let Next::Step(RestoreStep::SetClock, second) = core.next(board, t0) else { panic!("the clock first") };
        // A late result of the abandoned restore changes nothing.
        assert_eq!(core.step_done(board, first, true, t0), None);
        assert_eq!(core.next(board, t0), Next::Step(RestoreStep::SetClock, second));
    }

    #[test]
    fn a_rebooted_board_is_restored_and_commands_update_the_desired_state() {
        let t0 = Instant::now();
        let (mut core, board) = core(t0);
        restore(&mut core, board, t0);
        assert_eq!(core.polled(board, true, false, t0), None, "a healthy board: nothing to do");
        assert!(core.polled(board, true, true, t0).expect("restoring").restoring);
        assert!(matches!(core.next(board, t0), Next::Step(RestoreStep::SetClock, _)));
        let device = 0;
        let flipped = if core.desired(device) == OnOff::On { OnOff::Off } else { OnOff::On };
        core.commanded(device, flipped);
        assert_eq!(core.desired(device), flipped);
    }

    /// Every so often a healthy board's devices are driven to their desired states again, one per spacing,
    /// while commands still go; a board that does not take one is down.
    #[test]
    fn a_healthy_board_is_reasserted_periodically_without_holding_commands() {
        let t0 = Instant::now();
        let (core, board) = core(t0);
        let mut core = core.with_reassertion(Duration::from_secs(60));
        let (t1, devices) = restore(&mut core, board, t0);
        assert_eq!(core.polled(board, true, false, t1), None);
        assert_eq!(core.next(board, t1), Next::Idle, "not due yet");
        let t2 = t0 + Duration::from_secs(61);
        core.polled(board, true, false, t2);
        let mut now = t2;
        let mut reasserted = 0;
        loop {
            match core.next(board, now) {
                Next::Reassert(d) => {
                    assert_eq!(core.admit(board), Ok(()), "commands still go");
                    assert_eq!(core.reasserted(board, d, true, now), None);
                    reasserted += 1;
                }
                Next::At(at) => now = at,
                Next::Idle => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reasserted, devices, "every device once");
        assert!(now >= t2 + SPACING * (devices as u32 - 1), "spaced out");
        // The next round comes a period later; a board that fails one is down.
        core.polled(board, true, false, t2 + Duration::from_secs(61));
        let Next::Reassert(d) = core.next(board, now + SPACING) else { panic!("a second round") };
        assert!(!core.reasserted(board, d, false, now).expect("down").alive);
    }

    #[test]
    fn a_switch_of_mode_moves_every_board_to_its_other_address_and_restores_it() {
        let t0 = Instant::now();
        let (mut core, board) = core(t0);
        for (b, _) in core.health() {
            restore(&mut core, b, t0);
        }
        assert_eq!(core.address(board), format!("sim:{board}"));
        let changed = core.switch(Mode::Live, t0);
        assert_eq!(changed.len(), core.health().len());
        assert!(changed.iter().all(|h| h.restoring && h.address.starts_with("live:")));
        assert_eq!((core.mode(), core.address(board)), (Mode::Live, format!("live:{board}").as_str()));
        assert!(matches!(core.next(board, t0), Next::Step(RestoreStep::SetClock, _)));
    }
}
