//! The track's bookkeeping without IO: restores stepped with the time passed in.

use std::time::{Duration, Instant};

use sim::layout::OnOff;
use sim::layout::festival::layout_2021;
use sim::twin::Mode;

use super::{Next, Poll, RestoreStep, TrackCore};

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
        }
    }
}

#[test]
fn a_restore_sets_the_clock_then_drives_each_device_spaced_out() {
    let t0 = Instant::now();
    let (mut core, board) = core(t0);
    assert!(!core.ready() && core.restoring());
    let Next::Step(RestoreStep::SetClock, number) = core.next(board, t0) else { panic!("the clock first") };
    assert!(matches!(core.admit(board), Err(crate::track::Failure::BoardRestoring { .. })));
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
    assert!(matches!(core.admit(board), Err(crate::track::Failure::BoardDown { .. })));
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

/// A healthy servo board's polls drive its devices in turn, each once per round; a board being restored or
/// down has its clock set instead; a speed controller is asked for a connection. A clock that reads as
/// seconds since boot shows a reboot.
#[test]
fn health_polls_rotate_over_a_board_s_devices() {
    let t0 = Instant::now();
    let (mut core, board) = core(t0);
    assert_eq!(core.poll(board), Poll::Clock, "being restored");
    let (_, devices) = restore(&mut core, board, t0);
    let mut seen: Vec<usize> = (0..devices)
        .map(|_| match core.poll(board) {
            Poll::Device(d) => d,
            other => panic!("{other:?}"),
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), devices, "every device once in a round");
    assert!(core.rebooted(board, 42));
    assert!(!core.rebooted(board, 1_700_000_000));
    core.unreachable(board);
    assert_eq!(core.poll(board), Poll::Clock, "down");
    let layout = layout_2021();
    let controller = layout.boards.iter().position(|b| b.name == "speed-takao").unwrap();
    assert_eq!(core.poll(controller), Poll::Connect);
    assert!(!core.rebooted(controller, 0), "a controller has no clock");
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
