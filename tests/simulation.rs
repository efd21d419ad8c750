//! Simulation behaviour: stop rails, switches, sensors, collisions, derailments, determinism, threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sim::layout::{DeviceKind, Layout, OnOff};
use sim::twin::thread::{Output, Pacing, Request, spawn};
use sim::twin::{CollisionKind, DerailCause, EventKind, SimCommand, SimEvent, Simulation, TrainStatus};

use crate::support::{layout_2021, layout_2021_with, siding_layout, train};

fn run_for(sim: &mut Simulation, ms: u64) -> Vec<SimEvent> {
    let mut events = Vec::new();
    for _ in 0..ms / sim.dt_ms() {
        sim.step(&mut events);
    }
    events
}

fn set(sim: &mut Simulation, name: &str, state: OnOff) -> Vec<SimEvent> {
    let device = sim.layout().device_id(name).unwrap_or_else(|| panic!("device {name}"));
    let mut events = Vec::new();
    sim.apply(SimCommand::SetDevice { device, state }, &mut events).expect("apply");
    events
}

/// The names of the sensors passed, in order.
fn sensors_passed<'a>(layout: &'a Layout, events: &[SimEvent]) -> Vec<&'a str> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::SensorPassed { sensor, .. } => Some(layout.sensors[sensor].name.as_str()),
            _ => None,
        })
        .collect()
}

fn collisions(events: &[SimEvent]) -> Vec<CollisionKind> {
    events
        .iter()
        .filter_map(|e| if let EventKind::Collision { kind, .. } = e.kind { Some(kind) } else { None })
        .collect()
}

fn derailments(events: &[SimEvent]) -> Vec<DerailCause> {
    events
        .iter()
        .filter_map(|e| if let EventKind::Derailment { cause, .. } = e.kind { Some(cause) } else { None })
        .collect()
}

#[test]
fn a_raised_stop_rail_stops_the_train_at_its_position_and_lowering_releases_it() {
    let layout = siding_layout(false, &train("T", "in", 100.0, "SW", 200));
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    run_for(&mut sim, 5_000);
    let t = sim.train(0).unwrap();
    let front = t.body.front(&layout);
    assert_eq!(front.seg, layout.segment_id("in").unwrap());
    assert!((front.offset - 500.0).abs() < 1e-6, "front stopped at {} mm, stop rail at 500", front.offset);
    assert_eq!(t.held_at, layout.device_id("test_s1"));

    set(&mut sim, "test_s1", OnOff::Off);
    let events = run_for(&mut sim, 1_000);
    let front = sim.train(0).unwrap().body.front(&layout);
    assert!((front.offset - 700.0).abs() < 1e-6, "released train runs 200 mm in 1 s, now at {}", front.offset);
    assert!(events.iter().any(|e| matches!(e.kind, EventKind::StopRailPassed { train: 0, .. })));
}

#[test]
fn a_switch_routes_the_train() {
    for (state, expect, other) in [(OnOff::Off, "main_mid", "side_mid"), (OnOff::On, "side_mid", "main_mid")] {
        let layout = siding_layout(false, &train("T", "in", 600.0, "SW", 300));
        let mut sim = Simulation::new(layout.clone(), 10).unwrap();
        set(&mut sim, "test_b1", state);
        let events = run_for(&mut sim, 6_000);
        let passed = sensors_passed(&layout, &events);
        assert!(passed.contains(&expect) && !passed.contains(&other), "switch {state:?}: passed {passed:?}");
        assert!(derailments(&events).is_empty());
    }
}

/// The 2021 hall-sensor chain (halls.md): the sensors a train may reach next after each sensor.
fn halls_next() -> HashMap<&'static str, Vec<&'static str>> {
    HashMap::from([
        ("motoyawata_s2_f", vec!["motoyawata_s1_b"]),
        ("motoyawata_s1_b", vec!["motoyawata_s1_f"]),
        ("motoyawata_s1_f", vec!["iwamotocho_s1_b", "iwamotocho_s2_f"]),
        ("iwamotocho_s1_b", vec!["iwamotocho_s1_f"]),
        ("iwamotocho_s2_f", vec!["iwamotocho_s2_b"]),
        ("iwamotocho_s1_f", vec!["kudanshita_s5_b"]),
        ("iwamotocho_s2_b", vec!["kudanshita_s5_b"]),
        ("kudanshita_s5_b", vec!["kudanshita_s5_f"]),
        ("kudanshita_s5_f", vec!["sasazuka_s2_f"]),
        ("sasazuka_s2_f", vec!["sasazuka_s1_takao", "sasazuka_s2_shinsen"]),
        ("sasazuka_s2_shinsen", vec!["sasazuka_s3_shinsen"]),
        ("sasazuka_s3_shinsen", vec!["sasazuka_s3_b"]),
        ("sasazuka_s1_takao", vec!["meidaimae_s1_b"]),
        ("meidaimae_s1_b", vec!["meidaimae_s1_f"]),
        ("meidaimae_s2_b", vec!["meidaimae_s2_f"]),
        ("meidaimae_s2_f", vec!["sasazuka_s3_b", "sasazuka_s4_b"]),
        ("sasazuka_s4_b", vec!["sasazuka_s4_f"]),
        ("sasazuka_s4_f", vec!["shinjuku"]),
        ("shinjuku", vec!["sasazuka_s1_b"]),
        ("sasazuka_s1_b", vec!["sasazuka_s1_f"]),
        ("sasazuka_s1_f", vec!["meidaimae_s1_b"]),
        ("sasazuka_s3_b", vec!["kudanshita_s6_b"]),
        ("kudanshita_s6_b", vec!["kudanshita_s6_f"]),
        ("kudanshita_s6_f", vec!["iwamotocho_s4_b"]),
        ("iwamotocho_s4_b", vec!["iwamotocho_s4_f"]),
        ("iwamotocho_s4_f", vec!["motoyawata_s2_b"]),
        ("motoyawata_s2_b", vec!["motoyawata_s2_f"]),
    ])
}

#[test]
fn a_train_passes_the_2021_sensors_in_the_order_of_the_hall_chain() {
    let next = halls_next();
    let mut seen = std::collections::HashSet::new();
    // Each setting of the switches sends TAKAO round a different way; together they pass every sensor.
    let settings: [&[(&str, OnOff)]; 3] = [
        &[("iwamotocho_b1", OnOff::On), ("sasazuka_b1", OnOff::Off), ("iwamotocho_b4", OnOff::Off)],
        &[
            ("iwamotocho_b1", OnOff::Off),
            ("iwamotocho_b4", OnOff::Off),
            ("sasazuka_b1", OnOff::On),
            ("sasazuka_b2", OnOff::Off),
        ],
        &[
            ("iwamotocho_b1", OnOff::Off),
            ("iwamotocho_b4", OnOff::Off),
            ("sasazuka_b1", OnOff::On),
            ("sasazuka_b2", OnOff::On),
        ],
    ];
    for setting in settings {
        let layout = layout_2021_with(&["TAKAO"]);
        let mut sim = Simulation::new(layout.clone(), 10).unwrap();
        for (i, d) in layout.devices.iter().enumerate() {
            if d.kind == DeviceKind::StopRail {
                sim.apply(SimCommand::SetDevice { device: i, state: OnOff::Off }, &mut Vec::new()).unwrap();
            }
        }
        for &(name, state) in setting {
            set(&mut sim, name, state);
        }
        sim.apply(SimCommand::SetSpeed { train: 0, speed: 300 }, &mut Vec::new()).unwrap();
        let events = run_for(&mut sim, 20 * 60 * 1000);
        assert!(derailments(&events).is_empty() && collisions(&events).is_empty());
        let passed = sensors_passed(&layout, &events);
        assert!(passed.len() > 20, "{setting:?}: only {} sensor passes", passed.len());
        for pair in passed.windows(2) {
            if let Some(allowed) = next.get(pair[0]) {
                assert!(
                    allowed.contains(&pair[1]),
                    "{setting:?}: {} then {}, the chain allows {allowed:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        seen.extend(passed.into_iter().map(str::to_string));
    }
    let layout = layout_2021();
    let missed: Vec<&str> = layout.sensors.iter().map(|s| s.name.as_str()).filter(|n| !seen.contains(*n)).collect();
    assert!(missed.is_empty(), "sensors never passed: {missed:?}");
}

#[test]
fn a_faster_train_running_into_a_slower_one_is_a_rear_end_collision() {
    let trains = train("SLOW", "main", 1200.0, "M", 50) + &train("FAST", "main", 500.0, "M", 300);
    let layout = siding_layout(false, &trains);
    let mut sim = Simulation::new(layout, 10).unwrap();
    let events = run_for(&mut sim, 10_000);
    assert_eq!(collisions(&events), vec![CollisionKind::RearEnd]);
    assert_eq!(sim.train(0).unwrap().status, TrainStatus::Crashed);
    assert_eq!(sim.train(1).unwrap().status, TrainStatus::Crashed);
    let pos = sim.train(1).unwrap().body.front(sim.layout());
    let later = run_for(&mut sim, 2_000);
    assert_eq!(sim.train(1).unwrap().body.front(sim.layout()), pos, "crashed trains stay where they are");
    assert!(collisions(&later).is_empty(), "a collision is reported once");
}

#[test]
fn trains_running_towards_each_other_collide_head_on() {
    let trains = train("EAST", "main", 500.0, "M", 200) + &train("WEST", "main", 1800.0, "SW", 0);
    let layout = siding_layout(false, &trains);
    let mut sim = Simulation::new(layout, 10).unwrap();
    sim.apply(SimCommand::SetSpeed { train: 1, speed: 0 }, &mut Vec::new()).unwrap();
    let mut events = run_for(&mut sim, 500);
    // WEST faces SW: run it towards EAST.
    sim.apply(SimCommand::SetSpeed { train: 1, speed: 200 }, &mut events).unwrap();
    events.extend(run_for(&mut sim, 10_000));
    assert_eq!(collisions(&events), vec![CollisionKind::HeadOn]);
}

#[test]
fn a_train_fouling_a_point_is_hit_from_the_other_branch() {
    // STANDING waits 20 mm short of the merge on the siding; PASSING runs through it on the main line.
    let trains = train("STANDING", "side", 1980.0, "M", 0) + &train("PASSING", "main", 1000.0, "M", 200);
    let layout = siding_layout(false, &trains);
    let mut sim = Simulation::new(layout, 10).unwrap();
    let events = run_for(&mut sim, 10_000);
    assert_eq!(collisions(&events), vec![CollisionKind::Flank]);
}

#[test]
fn throwing_a_switch_under_a_train_derails_it() {
    let layout = siding_layout(false, &train("T", "main", 100.0, "M", 0));
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let events = set(&mut sim, "test_b1", OnOff::On);
    assert_eq!(derailments(&events), vec![DerailCause::SwitchThrownUnder(layout.device_id("test_b1").unwrap())]);
    assert_eq!(sim.train(0).unwrap().status, TrainStatus::Derailed);
}

#[test]
fn trailing_a_rigid_switch_set_against_the_train_derails_it() {
    let layout = siding_layout(true, &train("T", "side", 1000.0, "M", 200));
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    let events = run_for(&mut sim, 10_000);
    assert_eq!(derailments(&events), vec![DerailCause::TrailedAgainst(layout.device_id("test_b2").unwrap())]);
    // Through a spring point the same run is fine.
    let layout = siding_layout(false, &train("T", "side", 1000.0, "M", 200));
    let mut sim = Simulation::new(layout, 10).unwrap();
    assert!(derailments(&run_for(&mut sim, 10_000)).is_empty());
}

#[test]
fn a_servo_left_between_on_and_off_derails_the_next_train() {
    let layout = siding_layout(false, &train("T", "in", 600.0, "SW", 200));
    let b1 = layout.device_id("test_b1").unwrap();
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    sim.apply(SimCommand::SetAngle { device: b1, angle: 45 }, &mut Vec::new()).unwrap();
    assert_eq!(derailments(&run_for(&mut sim, 5_000)), vec![DerailCause::SwitchBetween(b1)]);

    let s1 = layout.device_id("test_s1").unwrap();
    let layout = siding_layout(false, &train("T", "in", 100.0, "SW", 200));
    let mut sim = Simulation::new(layout, 10).unwrap();
    sim.apply(SimCommand::SetAngle { device: s1, angle: 45 }, &mut Vec::new()).unwrap();
    assert_eq!(derailments(&run_for(&mut sim, 5_000)), vec![DerailCause::StopRailBetween(s1)]);
}

#[test]
fn an_exact_on_or_off_angle_is_that_state() {
    let layout = siding_layout(false, &train("T", "in", 100.0, "SW", 200));
    let s1 = layout.device_id("test_s1").unwrap();
    let mut sim = Simulation::new(layout, 10).unwrap();
    sim.apply(SimCommand::SetAngle { device: s1, angle: 0 }, &mut Vec::new()).unwrap();
    assert_eq!(sim.devices()[s1].state(), Some(OnOff::Off));
    assert!(sim.apply(SimCommand::SetAngle { device: s1, angle: 360 }, &mut Vec::new()).is_err());
}

#[test]
fn bad_commands_are_refused_and_change_nothing() {
    let layout = siding_layout(false, &train("T", "in", 100.0, "SW", 200));
    let mut sim = Simulation::new(layout, 10).unwrap();
    let before = sim.state();
    let mut events = Vec::new();
    for cmd in [
        SimCommand::SetDevice { device: 99, state: OnOff::On },
        SimCommand::SetSpeed { train: 0, speed: 301 },
        SimCommand::SetSpeed { train: 5, speed: 10 },
        SimCommand::SetAngle { device: 0, angle: 400 },
        SimCommand::SetSpeedLimit { train: 7, limit: None },
    ] {
        assert!(sim.apply(cmd, &mut events).is_err(), "{cmd:?} must be refused");
    }
    assert!(events.is_empty());
    assert_eq!(sim.state(), before);
}

#[test]
fn reverse_running_moves_the_train_backwards() {
    let layout = siding_layout(false, &train("T", "main", 1000.0, "M", 0));
    let mut sim = Simulation::new(layout.clone(), 10).unwrap();
    sim.apply(SimCommand::SetSpeed { train: 0, speed: -100 }, &mut Vec::new()).unwrap();
    run_for(&mut sim, 2_000);
    let front = sim.train(0).unwrap().body.front(&layout);
    assert!((front.offset - 800.0).abs() < 1e-6, "front moved back 200 mm, now at {}", front.offset);
    assert_eq!(front.dir, sim::layout::Dir::Forward, "the front still faces M");
}

#[test]
fn the_same_commands_give_the_same_run() {
    let run = || {
        let layout = layout_2021();
        let mut sim = Simulation::new(layout.clone(), 10).unwrap();
        let mut events = Vec::new();
        for (i, d) in layout.devices.iter().enumerate() {
            if d.kind == DeviceKind::StopRail {
                sim.apply(SimCommand::SetDevice { device: i, state: OnOff::Off }, &mut events).unwrap();
            }
        }
        events.extend(run_for(&mut sim, 120_000));
        (events, sim.state())
    };
    let (a, sa) = run();
    let (b, sb) = run();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(sa, sb);
}

#[test]
fn the_simulation_thread_takes_commands_and_sends_events_over_channels() {
    let layout: Arc<Layout> = siding_layout(false, &train("T", "in", 100.0, "SW", 200));
    let s1 = layout.device_id("test_s1").unwrap();
    let sim = Simulation::new(layout, 10).unwrap();
    let handle = spawn(sim, Pacing::Fast, None);
    handle
        .requests
        .send(Request::Command { id: 7, cmd: SimCommand::SetDevice { device: s1, state: OnOff::Off } })
        .unwrap();
    handle
        .requests
        .send(Request::Command { id: 8, cmd: SimCommand::SetDevice { device: 99, state: OnOff::Off } })
        .unwrap();
    let mut acks = Vec::new();
    let mut sensor = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(sensor && acks.len() == 2) && Instant::now() < deadline {
        match handle.outputs.recv_timeout(Duration::from_secs(1)) {
            Ok(Output::Ack { id, result, .. }) => acks.push((id, result.is_ok())),
            Ok(Output::Event(e)) => sensor |= matches!(e.kind, EventKind::SensorPassed { .. }),
            Err(_) => {}
        }
    }
    let sim = handle.stop();
    assert_eq!(acks, vec![(7, true), (8, false)]);
    assert!(sensor, "the released train passed a sensor");
    assert!(sim.time_ms() > 0);
}

#[test]
fn a_paced_simulation_keeps_to_the_wall_clock() {
    let layout = siding_layout(false, &train("T", "in", 100.0, "SW", 200));
    let sim = Simulation::new(layout, 10).unwrap();
    let started = Instant::now();
    // 300 ms of simulated time at real time cannot finish sooner than 300 ms of wall time.
    let handle = spawn(sim, Pacing::WallClock { factor: 1.0 }, Some(30));
    while handle.outputs.recv().is_ok() {}
    let sim = handle.stop();
    assert_eq!(sim.time_ms(), 300);
    assert!(started.elapsed() >= Duration::from_millis(290), "took {:?}", started.elapsed());
}
