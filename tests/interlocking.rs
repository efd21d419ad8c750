//! The interlocking's rules, one by one, on the 2021 layout and the test layout.

use sim::interlocking::{Interlocking, RejectKind, Request};
use sim::layout::{Layout, OnOff};
use sim::twin::{EventKind, SimCommand, Simulation};

use crate::support::{layout_2021, siding_layout, train};

fn device(layout: &Layout, name: &str, state: OnOff) -> Request {
    Request::Device { device: layout.device_id(name).unwrap_or_else(|| panic!("device {name}")), state }
}

/// Checks a request and applies it when accepted; returns the rejection kind and message, if any.
fn ask(il: &Interlocking, sim: &mut Simulation, req: Request) -> Option<(RejectKind, String)> {
    match il.check(&req, &sim.state()) {
        Ok(()) => {
            sim.apply(req.command(sim.layout()), &mut Vec::new()).expect("apply");
            None
        }
        Err(r) => Some((r.kind, r.message)),
    }
}

#[test]
fn station_rules_refuse_a_combination_not_in_any_allowed_line() {
    let layout = layout_2021();
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    // kitano_kudari allows s2 OFF only with s5 ON, and the other way round.
    assert_eq!(ask(&il, &mut sim, device(&layout, "kitano_s5", OnOff::Off)), None);
    let (kind, message) = ask(&il, &mut sim, device(&layout, "kitano_s2", OnOff::Off)).expect("refused");
    assert_eq!(kind, RejectKind::StationRule);
    assert!(message.contains("kitano_s2") && message.contains("kitano_kudari"), "{message}");
    // Raising a stop rail only ever stops trains: always allowed.
    assert_eq!(ask(&il, &mut sim, device(&layout, "kitano_s5", OnOff::On)), None);
    // So a group can be outside its lines (kitano_nobori wants exactly one of s5, s6 raised; both are, as the
    // protection leaves them behind trains): a change that takes it no further is allowed (b2 is in no line),
    // one that puts it right is, and one that takes an allowed group out of its lines still is not.
    assert_eq!(ask(&il, &mut sim, device(&layout, "kitano_b2", OnOff::Off)), None);
    assert_eq!(ask(&il, &mut sim, device(&layout, "kitano_s6", OnOff::Off)), None);
    let (kind, message) = ask(&il, &mut sim, device(&layout, "kitano_s5", OnOff::Off)).expect("refused");
    assert_eq!(kind, RejectKind::StationRule);
    assert!(message.contains("kitano_s5") && message.contains("kitano_nobori"), "{message}");
}

#[test]
fn a_switch_a_train_stands_on_or_is_routed_over_cannot_be_thrown() {
    // T stands across SW (front on `main`, body back on `in`).
    let layout = siding_layout(false, &train("T", "main", 100.0, "M", 0));
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let (kind, message) = ask(&il, &mut sim, device(&layout, "test_b1", OnOff::On)).expect("refused");
    assert_eq!(kind, RejectKind::SwitchInUse);
    assert!(message.contains("test_b1") && message.contains('T'), "{message}");

    // U has passed the stop rail and runs towards SW: the switch is in its route.
    let layout = siding_layout(false, &train("U", "in", 600.0, "SW", 0));
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    assert_eq!(ask(&il, &mut sim, device(&layout, "test_b1", OnOff::On)).map(|r| r.0), Some(RejectKind::SwitchInUse));

    // V waits at the raised stop rail: the switch beyond it is free to throw.
    let layout = siding_layout(false, &train("V", "in", 500.0, "SW", 0));
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    assert_eq!(ask(&il, &mut sim, device(&layout, "test_b1", OnOff::On)), None);
}

#[test]
fn a_stop_rail_is_not_lowered_into_an_occupied_block() {
    // OKUTAMA waits at meidaimae_s1; chofu_b1 ON routes it onto the s1 track where NIKKO waits at chofu_s1.
    let layout = layout_2021();
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let (kind, message) = ask(&il, &mut sim, device(&layout, "meidaimae_s1", OnOff::Off)).expect("refused");
    assert_eq!(kind, RejectKind::RouteOccupied);
    assert!(message.contains("meidaimae_s1") && message.contains("OKUTAMA") && message.contains("NIKKO"), "{message}");
    // Routed straight (chofu_b1 OFF) OKUTAMA runs over the free s2 track and on to kitano_s1: the release is
    // accepted.
    assert_eq!(ask(&il, &mut sim, device(&layout, "chofu_b1", OnOff::Off)), None);
    assert_eq!(ask(&il, &mut sim, device(&layout, "meidaimae_s1", OnOff::Off)), None);
    // Now OKUTAMA's route runs over chofu_b2: it cannot be thrown.
    assert_eq!(ask(&il, &mut sim, device(&layout, "chofu_b2", OnOff::On)).map(|r| r.0), Some(RejectKind::SwitchInUse));
}

#[test]
fn a_stop_rail_is_not_lowered_towards_a_switch_set_against_the_train() {
    // H waits at test_s1; with test_b1 diverging it would run round the siding and trail the rigid merge
    // test_b2, which is set straight.
    let layout = siding_layout(true, &train("H", "in", 500.0, "SW", 200));
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    assert_eq!(ask(&il, &mut sim, device(&layout, "test_b1", OnOff::On)), None);
    let (kind, message) = ask(&il, &mut sim, device(&layout, "test_s1", OnOff::Off)).expect("refused");
    assert_eq!(kind, RejectKind::RouteUnsafe, "{message}");
    assert!(message.contains("test_b2") && message.contains("set against") && message.contains('H'), "{message}");
}

#[test]
fn a_release_with_no_stop_rail_ahead_is_refused() {
    // The only stop rail is the one holding the train: lowered, nothing would ever stop it again.
    let layout = siding_layout(false, &train("T", "in", 500.0, "SW", 200));
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let (kind, message) = ask(&il, &mut sim, device(&layout, "test_s1", OnOff::Off)).expect("refused");
    assert_eq!(kind, RejectKind::NoStopAhead, "{message}");
}

/// A stop rail lowered in front of a waiting train stays lowered until the train's last car has passed it (so a
/// visitor sees it lowered), and is raised then.
#[test]
fn a_passed_stop_rail_is_raised_once_the_last_car_is_past() {
    // T (300 mm) waits at test_s1 (500 mm into `in`) at 200 mm/s.
    let layout = siding_layout(false, &train("T", "in", 100.0, "SW", 200));
    let il = Interlocking::new(layout.clone(), true);
    let s1 = layout.device_id("test_s1").unwrap();
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let mut events = Vec::new();
    while sim.train(0).unwrap().held_at != Some(s1) {
        sim.step(&mut events);
    }
    sim.apply(SimCommand::SetDevice { device: s1, state: OnOff::Off }, &mut events).unwrap();
    let lowered_at = sim.time_ms();
    let mut raised_at = None;
    for _ in 0..500 {
        events.clear();
        sim.step(&mut events);
        let front_past =
            events.iter().any(|e| matches!(e.kind, EventKind::StopRailPassed { device, .. } if device == s1));
        let commands = il.protect_after(&events);
        assert!(!front_past || commands.is_empty(), "not raised as the front passes");
        for cmd in commands {
            assert_eq!(cmd, SimCommand::SetDevice { device: s1, state: OnOff::On });
            sim.apply(cmd, &mut events).unwrap();
            raised_at = Some(sim.time_ms());
        }
        if raised_at.is_some() {
            break;
        }
        assert_eq!(sim.devices()[s1].state(), Some(OnOff::Off), "lowered while the train is over it");
    }
    let raised_at = raised_at.expect("raised once the train passed it");
    // The last car is past when the train has run its length: 300 mm at 200 mm/s, 1.5 s.
    let lowered_for = raised_at - lowered_at;
    assert!((1_450..=1_560).contains(&lowered_for), "lowered for {lowered_for} ms");
    assert_eq!(sim.devices()[s1].state(), Some(OnOff::On));
    assert!(
        Interlocking::new(layout, false)
            .protect_after(&[sim::twin::SimEvent {
                time_ms: 0,
                kind: EventKind::StopRailCleared { device: s1, train: 0 }
            }])
            .is_empty()
    );
}

/// While a train still covers a lowered stop rail, another train whose route reaches the rail has it raised at
/// once: the block behind the first train closes before the second can enter it.
#[test]
fn a_stop_rail_a_train_still_covers_is_raised_when_another_train_comes() {
    // L is past test_s1 with its tail still over it (front at 700, 300 mm long); F comes along `in` behind it.
    let trains = train("L", "in", 700.0, "SW", 0) + &train("F", "in", 100.0, "SW", 0);
    let layout = siding_layout(false, &trains);
    let il = Interlocking::new(layout.clone(), true);
    let s1 = layout.device_id("test_s1").unwrap();
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    sim.apply(SimCommand::SetDevice { device: s1, state: OnOff::Off }, &mut Vec::new()).unwrap();
    let raise = SimCommand::SetDevice { device: s1, state: OnOff::On };
    assert!(il.supervise(&sim.state()).contains(&raise), "{:?}", il.supervise(&sim.state()));
    // With F gone, nothing needs it raised early.
    let alone = siding_layout(false, &train("L", "in", 700.0, "SW", 0));
    let mut sim = Simulation::new(alone.clone(), 10).unwrap();
    sim.apply(SimCommand::SetDevice { device: s1, state: OnOff::Off }, &mut Vec::new()).unwrap();
    assert!(!Interlocking::new(alone, true).supervise(&sim.state()).contains(&raise));
}

#[test]
fn speed_supervision_keeps_a_follower_off_a_slower_train() {
    // Two trains in one block (as a live-mode estimate may show): the follower is capped, then stopped.
    let trains = train("LEAD", "main", 1300.0, "M", 50) + &train("FOLLOW", "main", 900.0, "M", 300);
    let layout = siding_layout(false, &trains);
    let il = Interlocking::new(layout.clone(), true);
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let mut events = Vec::new();
    let limits = il.supervise(&sim.state());
    assert_eq!(limits, vec![SimCommand::SetSpeedLimit { train: 1, limit: Some(50) }], "capped to the leader's speed");
    for _ in 0..3_000 {
        for cmd in il.supervise(&sim.state()) {
            sim.apply(cmd, &mut events).unwrap();
        }
        sim.step(&mut events);
    }
    let collided = events.iter().any(|e| matches!(e.kind, EventKind::Collision { .. }));
    assert!(!collided, "supervision prevented the rear-end collision");
}

#[test]
fn reverse_running_is_refused_and_everything_passes_when_switched_off() {
    let layout = layout_2021();
    let il = Interlocking::new(layout.clone(), true);
    let state = Simulation::new(layout.clone(), 10).unwrap().state();
    let reverse = Request::Speed { train: 0, speed: -100 };
    let err = il.check(&reverse, &state).expect_err("refused");
    assert_eq!(err.kind, RejectKind::Reverse);
    assert!(err.message.contains("TAKAO"));
    let off = Interlocking::new(layout.clone(), false);
    assert!(!off.enabled());
    assert!(off.check(&reverse, &state).is_ok());
    assert!(off.check(&device(&layout, "meidaimae_s1", OnOff::Off), &state).is_ok());
}

#[test]
fn unknown_devices_and_trains_are_refused_whether_on_or_off() {
    let layout = layout_2021();
    let state = Simulation::new(layout.clone(), 10).unwrap().state();
    for enabled in [true, false] {
        let il = Interlocking::new(layout.clone(), enabled);
        let e = il.check(&Request::Device { device: 999, state: OnOff::On }, &state).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (RejectKind::Unknown, "there is no device #999"));
        let e = il.check(&Request::Speed { train: 8, speed: 10 }, &state).unwrap_err();
        assert_eq!(e.kind, RejectKind::Unknown);
    }
}

/// While a command is on its way to its board, a second command is checked against both outcomes of the first:
/// kitano_s2 may be lowered with kitano_s5 raised, but not while kitano_s5's lowering may have been carried out
/// (kitano_kudari allows only one of them down). With nothing pending, the check is the plain one; a pending
/// command that changes nothing for it changes nothing.
#[test]
fn a_command_is_checked_against_every_outcome_of_the_commands_in_flight() {
    let layout = layout_2021();
    let il = Interlocking::new(layout.clone(), true);
    let sim = Simulation::new(layout.clone(), 10).unwrap();
    let state = sim.state();
    let id = |name: &str| layout.device_id(name).unwrap();
    let s2_down = device(&layout, "kitano_s2", OnOff::Off);
    assert_eq!(il.check(&s2_down, &state), Ok(()));
    assert_eq!(il.check_pending(&s2_down, &state, &[]), Ok(()));
    let refused = il.check_pending(&s2_down, &state, &[(id("kitano_s5"), OnOff::Off)]).unwrap_err();
    assert_eq!(refused.kind, RejectKind::StationRule, "{}", refused.message);
    // The same pending command twice, or with its undoing, is no different.
    let pending = [(id("kitano_s5"), OnOff::Off), (id("kitano_s5"), OnOff::On), (id("kitano_s5"), OnOff::Off)];
    assert_eq!(il.check_pending(&s2_down, &state, &pending).unwrap_err(), refused);
    // Pending commands elsewhere on the line leave the answer as it is (every combination of them is tried).
    let elsewhere =
        [(id("motoyawata_s1"), OnOff::On), (id("iwamotocho_b1"), OnOff::On), (id("iwamotocho_s1"), OnOff::On)];
    assert_eq!(il.check_pending(&s2_down, &state, &elsewhere), il.check(&s2_down, &state));
}
