//! Every scenario in `scenarios/` runs and its expectations hold.

use sim::scenario::{Scenario, run_scenario};

use crate::support::repo;

#[test]
fn every_scenario_meets_its_expectations() {
    let mut ran = Vec::new();
    for entry in std::fs::read_dir(repo("scenarios")).expect("scenarios folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let report = run_scenario(&scenario, None, |_, _| {}).expect("starts");
            let failures = scenario.failures(&report);
            assert!(failures.is_empty(), "{}: {failures:?}\n{report}", path.display());
            ran.push(scenario.spec.name);
        }
    }
    ran.sort();
    assert!(
        ran.contains(&"festival-hour".to_string()) && ran.contains(&"festival-hour-unprotected".to_string()),
        "{ran:?}"
    );
}

#[test]
fn the_festival_hour_with_the_interlocking_is_collision_free_and_without_it_is_not() {
    let on = Scenario::load(&repo("scenarios/festival-hour.toml")).unwrap();
    let off = Scenario::load(&repo("scenarios/festival-hour-unprotected.toml")).unwrap();
    assert!(on.spec.interlocking && !off.spec.interlocking);
    assert_eq!((on.layout.trains.len(), off.layout.trains.len()), (8, 8));
    assert_eq!(on.spec.visitors, off.spec.visitors, "the same visitors in both");
    let r_on = run_scenario(&on, None, |_, _| {}).unwrap();
    let r_off = run_scenario(&off, None, |_, _| {}).unwrap();
    assert_eq!(r_on.commands, r_off.commands);
    assert!(r_on.commands >= 3000, "about 1 command/s for an hour: {}", r_on.commands);
    assert!(r_on.collisions.is_empty() && r_on.derailments.is_empty(), "{r_on}");
    assert!(r_on.rejected_total() > 0, "adversarial visitors were turned away");
    assert!(!r_off.collisions.is_empty(), "{r_off}");
}

#[test]
fn a_bad_scenario_file_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "name = \"x\"\nlayout = \"missing.toml\"\nduration_s = 1\nseed = 1\n[visitors]\ncount = 1\ncommands_per_s = 1\nstop_rail = 1\nswitch = 0\nspeed = 0\nadversarial = 0\n").unwrap();
    let e = Scenario::load(&path).unwrap_err().to_string();
    assert!(e.contains("missing.toml"), "{e}");
    std::fs::write(&path, "name = \"x\"\nduration_s = \"long\"\n").unwrap();
    let e = Scenario::load(&path).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("duration_s"), "{e}");
}

/// The twin's automatic operation against the 2023 auto-operation's rule alone, on the same hour of the 2021
/// layout (8 trains, no visitors): the twin's moves more trains through every station, serves every station,
/// keeps every train moving (no standstill over 60 s beyond its dwell) and has no accident; the 2023 rule has
/// no interlocking behind it.
#[test]
fn automatic_operation_moves_more_trains_than_the_2023_rule_and_safely() {
    let auto = Scenario::load(&repo("scenarios/festival-hour-auto.toml")).unwrap();
    let rule = Scenario::load(&repo("scenarios/festival-hour-rule2023.toml")).unwrap();
    assert_eq!((auto.layout.trains.len(), auto.spec.duration_s), (8, 3600));
    assert_eq!((rule.spec.duration_s, rule.spec.visitors.count, auto.spec.visitors.count), (3600, 0, 0));
    let a = run_scenario(&auto, None, |_, _| {}).unwrap();
    let r = run_scenario(&rule, None, |_, _| {}).unwrap();
    assert!(a.collisions.is_empty() && a.derailments.is_empty(), "{a}");
    let through = |report: &sim::scenario::Report| report.station_passes.iter().map(|s| s.1).sum::<usize>();
    assert!(
        through(&a) > 2 * through(&r),
        "auto {} trains through stations, the 2023 rule {}",
        through(&a),
        through(&r)
    );
    assert!(a.station_passes.iter().all(|s| s.1 >= 10), "every station served: {a}");
    assert!(a.longest_standstill.iter().all(|s| s.1 <= 60_000), "{a}");
    assert_eq!(a.deadlocks, (0, 0));
}

/// Automatic operation tells each train's plan: its next stop, and why it stands (its dwell counting down, the
/// train in its way); a train arriving at a station it calls at dwells there before it departs.
#[test]
fn automatic_operation_tells_each_train_s_next_stop_and_why_it_waits() {
    use sim::auto::{Auto, AutoConfig, AutoEvent, NoHolds, Wait};
    use sim::interlocking::Interlocking;
    use sim::interlocking::guarded::Guarded;
    use sim::twin::Simulation;

    let layout = crate::support::layout_2021();
    let mut track = Guarded::new(Simulation::new(layout.clone(), 10).unwrap(), Interlocking::new(layout.clone(), true));
    let mut auto = Auto::new(layout.clone(), AutoConfig::default());
    let mut events = Vec::new();
    let mut arrived = Vec::new();
    let mut departed = Vec::new();
    let mut seen_dwell = None;
    while track.sim().time_ms() < 120_000 {
        if track.sim().time_ms().is_multiple_of(200) {
            let (requests, found) = auto.tick(&track.sim().state(), track.interlocking(), &NoHolds);
            for r in requests {
                track.request(&r, &mut events).expect("automatic operation asks only what the interlocking allows");
            }
            for e in found {
                match e {
                    AutoEvent::Arrived { train, .. } => arrived.push((train, track.sim().time_ms())),
                    AutoEvent::Departed { train, stood_ms, .. } => departed.push((train, stood_ms)),
                    _ => {}
                }
            }
            let plans = auto.plans();
            if seen_dwell.is_none()
                && let Some((t, p)) = plans.iter().enumerate().find(|(_, p)| matches!(p.wait, Some(Wait::Dwell { .. })))
            {
                let words = p.wait.as_ref().unwrap().describe(&layout, track.sim().time_ms());
                seen_dwell = Some((t, p.next_stop, words));
            }
            assert!(plans.iter().all(|p| p.automatic), "every train runs automatically");
        }
        track.step(&mut events);
        events.clear();
    }
    let (train, next_stop, words) = seen_dwell.expect("a train dwelled");
    assert!(next_stop.is_some(), "the dwelling train's plan names its stop");
    assert!(words.starts_with("dwell, ") && words.ends_with(" s left"), "{words}");
    assert!(arrived.iter().any(|(t, _)| *t == train));
    // Every departure after an arrival came at least a dwell (10 s) after it.
    for (t, stood) in departed.iter().filter(|(t, _)| arrived.iter().any(|(a, _)| a == t)) {
        assert!(*stood >= layout.trains[*t].dwell_ms, "{} stood {stood} ms", layout.trains[*t].name);
    }
    assert!(departed.len() >= 8, "trains depart again and again: {departed:?}");
}

/// Two trains on a loop of two stop rails, each standing at one: each one's way runs into the other's track, a
/// cycle no way round breaks. Automatic operation finds it and reports it (after 5 s, well within the 10 s the
/// operator is promised), once, naming both trains, and moves neither.
#[test]
fn a_deadlock_no_way_round_breaks_is_reported_within_ten_seconds() {
    use sim::auto::{Auto, AutoConfig, AutoEvent, NoHolds, Wait};
    use sim::interlocking::Interlocking;
    use sim::interlocking::guarded::Guarded;
    use sim::layout::Layout;
    use sim::twin::Simulation;

    let text = r#"
name = "two-trains-loop"
canvas = { width = 200, height = 100 }

[[station]]
id = "east"
name_ja = "東"
name_en = "East"

[[station]]
id = "west"
name_ja = "西"
name_en = "West"

[[board]]
name = "servo"
address = "127.0.0.1:1"
kind = "servo"

[[node]]
id = "a"
x = 0
y = 50

[[node]]
id = "b"
x = 200
y = 50

[[segment]]
id = "north"
from = "a"
to = "b"
length_mm = 1000

[[segment]]
id = "south"
from = "b"
to = "a"
length_mm = 1000

[[device]]
name = "east_s1"
kind = "stop_rail"
station = "east"
board = "servo"
pin = 13
on_angle = 30
off_angle = 90
initial = "ON"
segment = "north"
offset_mm = 900

[[device]]
name = "west_s1"
kind = "stop_rail"
station = "west"
board = "servo"
pin = 14
on_angle = 30
off_angle = 90
initial = "ON"
segment = "south"
offset_mm = 900

[[train]]
name = "A"
length_mm = 450
max_speed_mm_s = 300
speed_mm_s = 200
start = { segment = "north", offset_mm = 850, toward = "b" }
service = { dwell_s = 1 }

[[train]]
name = "B"
length_mm = 450
max_speed_mm_s = 300
speed_mm_s = 200
start = { segment = "south", offset_mm = 850, toward = "a" }
service = { dwell_s = 1 }
"#;
    let layout = std::sync::Arc::new(Layout::from_toml(text).unwrap());
    let mut track = Guarded::new(Simulation::new(layout.clone(), 10).unwrap(), Interlocking::new(layout.clone(), true));
    let mut auto = Auto::new(layout.clone(), AutoConfig::default());
    let mut events = Vec::new();
    let mut reported = Vec::new();
    while track.sim().time_ms() < 20_000 {
        if track.sim().time_ms().is_multiple_of(200) {
            let (requests, found) = auto.tick(&track.sim().state(), track.interlocking(), &NoHolds);
            assert!(requests.is_empty(), "nothing can be done: {requests:?}");
            reported.extend(found.into_iter().filter_map(|e| match e {
                AutoEvent::Deadlock { trains } => Some((track.sim().time_ms(), trains)),
                _ => None,
            }));
        }
        track.step(&mut events);
        events.clear();
    }
    assert_eq!(reported.len(), 1, "reported once: {reported:?}");
    let (at, trains) = &reported[0];
    assert_eq!(trains, &vec![0, 1]);
    assert!(*at <= 10_000, "reported at {at} ms");
    let plans = auto.plans();
    assert!(matches!(plans[0].wait, Some(Wait::Route { by: Some(1), .. })), "{:?}", plans[0]);
    assert!(matches!(plans[1].wait, Some(Wait::Route { by: Some(0), .. })), "{:?}", plans[1]);
    assert_eq!(
        AutoEvent::Deadlock { trains: trains.clone() }.describe(&layout),
        "deadlock: A, B wait on each other and no way round is free"
    );
}

/// Where each of `train`'s runs out of segment `from` went (the next segment's id, counted), in `minutes` of
/// automatic operation of `layout`; and the accidents.
fn runs_out_of(layout: std::sync::Arc<sim::layout::Layout>, train: usize, from: &str, minutes: u64) -> Vec<String> {
    use sim::auto::{Auto, AutoConfig, NoHolds};
    use sim::interlocking::Interlocking;
    use sim::interlocking::guarded::Guarded;
    use sim::twin::{EventKind, Simulation};

    let mut track = Guarded::new(Simulation::new(layout.clone(), 10).unwrap(), Interlocking::new(layout.clone(), true));
    let mut auto = Auto::new(layout.clone(), AutoConfig::default());
    let (mut events, mut next, mut front) = (Vec::new(), Vec::new(), None::<usize>);
    while track.sim().time_ms() < minutes * 60_000 {
        if track.sim().time_ms().is_multiple_of(sim::auto::AUTO_EVERY_MS) {
            let (requests, _) = auto.tick(&track.sim().state(), track.interlocking(), &NoHolds);
            for r in requests {
                let _ = track.request(&r, &mut events);
            }
        }
        track.step(&mut events);
        for e in events.drain(..) {
            assert!(!matches!(e.kind, EventKind::Collision { .. } | EventKind::Derailment { .. }), "{e:?}");
        }
        let seg = track.sim().state().trains[train].body.front(&layout).seg;
        if front.is_some_and(|f| f != seg && layout.segments[f].id == from) {
            next.push(layout.segments[seg].id.clone());
        }
        front = Some(seg);
    }
    next
}

/// A train's service fixes its branch at a switch it faces: left to the planner, OKUTAMA leaves Chofu's kd_ch_2
/// both ways at Chofu's b2 (straight on, or over the crossover); told one branch there, it always takes that one
/// (and still runs, with no accident).
#[test]
fn a_service_fixes_a_trains_way_at_a_switch() {
    use sim::layout::Layout;
    use sim::layout::spec::{Branch, LayoutSpec};

    let text = crate::support::layout_2021_text();
    let okutama = 3;
    let free = runs_out_of(crate::support::layout_2021(), okutama, "kd_ch_2", 20);
    assert!(free.iter().any(|s| s == "kd_ch_b2_k") && free.iter().any(|s| s == "ch_b2_cross"), "{free:?}");

    let mut spec: LayoutSpec = toml::from_str(&text).unwrap();
    assert_eq!(spec.trains[okutama].name, "OKUTAMA");
    for (branch, into) in [(Branch::Straight, "kd_ch_b2_k"), (Branch::Diverging, "ch_b2_cross")] {
        spec.trains[okutama].service.ways.insert("chofu_b2".into(), branch);
        let layout = std::sync::Arc::new(Layout::from_spec(&spec).unwrap());
        let fixed = runs_out_of(layout, okutama, "kd_ch_2", 60);
        assert!(fixed.len() >= 3 && fixed.iter().all(|s| s == into), "{branch:?}: {fixed:?}");
    }

    // A way at a device that is not a switch is refused, saying why.
    spec.trains[okutama].service.ways.insert("chofu_s1".into(), Branch::Straight);
    let err = Layout::from_spec(&spec).unwrap_err().to_string();
    assert!(err.contains("`chofu_s1` is not a switch"), "{err}");
}

/// A train with a speed controller (TAKAO) brakes for its stop point under automatic operation: within 600 mm
/// of a raised stop rail ahead it is set slower, down to 30 % of its service speed, and still comes to the stop
/// rail; a train without one (CHICHIBU) is only ever set its service speed (its stop rails stop it).
#[test]
fn a_train_with_a_speed_controller_brakes_for_its_stop_point() {
    use sim::auto::{Auto, AutoConfig, NoHolds};
    use sim::interlocking::Interlocking;
    use sim::interlocking::guarded::Guarded;
    use sim::interlocking::route::{RouteEnd, route_ahead};
    use sim::twin::Simulation;

    let layout = crate::support::layout_2021();
    let (takao, chichibu) = (0, 1);
    assert!(layout.trains[takao].controller.is_some() && layout.trains[chichibu].controller.is_none());
    let mut track = Guarded::new(Simulation::new(layout.clone(), 10).unwrap(), Interlocking::new(layout.clone(), true));
    let mut auto = Auto::new(layout.clone(), AutoConfig::default());
    let (mut events, mut braking, mut stops, mut held) = (Vec::new(), Vec::new(), 0, None);
    while track.sim().time_ms() < 10 * 60_000 {
        let state = track.sim().state();
        if state.time_ms.is_multiple_of(sim::auto::AUTO_EVERY_MS) {
            let (requests, _) = auto.tick(&state, track.interlocking(), &NoHolds);
            for r in requests {
                let _ = track.request(&r, &mut events);
            }
        }
        track.step(&mut events);
        events.clear();
        let state = track.sim().state();
        let t = &state.trains[takao];
        let route = route_ahead(&layout, &state.devices, t.body.front(&layout));
        let to_stop: f64 = route.spans.iter().map(|(s, _)| s.hi - s.lo).sum();
        if t.held_at.is_none() && matches!(route.end, RouteEnd::StopRail(_)) && t.set_speed < 190 {
            braking.push((to_stop, t.set_speed));
        }
        if t.held_at.is_some() && t.held_at != held {
            stops += 1;
        }
        held = t.held_at;
        assert!(state.trains[chichibu].set_speed >= 190, "CHICHIBU is only ever set its service speed");
    }
    assert!(stops >= 5, "TAKAO came to {stops} stop rails");
    assert!(braking.iter().all(|&(d, _)| d < 600.0), "braking only near a stop point: {braking:?}");
    assert!(braking.iter().any(|&(_, v)| v <= 80), "down to a creep near the stop point: {braking:?}");
    assert!(braking.iter().all(|&(_, v)| v >= 60), "never below 30 % of 200 mm/s: {braking:?}");
}

/// A loop of three stop rails (`r1`, `r2`, `r3`) that two trains circulate on, and a yard track beside it whose
/// train can join the loop but, as every train's service keeps to the loop at `yard_b1`, nobody can leave it.
fn loop_with_a_yard() -> std::sync::Arc<sim::layout::Layout> {
    let stop = |name: &str, station: &str, segment: &str, pin: u32| {
        format!(
            r#"
[[device]]
name = "{name}"
kind = "stop_rail"
station = "{station}"
board = "servo"
pin = {pin}
on_angle = 30
off_angle = 90
initial = "ON"
segment = "{segment}"
offset_mm = 1200
"#
        )
    };
    let train = |name: &str, segment: &str, toward: &str| {
        format!(
            r#"
[[train]]
name = "{name}"
length_mm = 300
max_speed_mm_s = 300
speed_mm_s = 200
start = {{ segment = "{segment}", offset_mm = 1150, toward = "{toward}" }}
service = {{ dwell_s = 1, ways = {{ yard_b1 = "straight" }} }}
"#
        )
    };
    let mut text = String::from(
        r#"
name = "loop-with-a-yard"
canvas = { width = 400, height = 300 }

[[board]]
name = "servo"
address = "127.0.0.1:1"
kind = "servo"

[[node]]
id = "a"
x = 50
y = 50

[[node]]
id = "b"
x = 350
y = 50

[[node]]
id = "c"
x = 350
y = 200

[[node]]
id = "s"
x = 250
y = 200
kind = "switch"
trunk = "cs"
straight = "sj"
diverging = "yard"

[[node]]
id = "j"
x = 50
y = 200
kind = "spring"
normal = "straight"
trunk = "ja"
straight = "sj"
diverging = "yard"

[[segment]]
id = "ab"
from = "a"
to = "b"
length_mm = 1500

[[segment]]
id = "bc"
from = "b"
to = "c"
length_mm = 1500

[[segment]]
id = "cs"
from = "c"
to = "s"
length_mm = 500

[[segment]]
id = "sj"
from = "s"
to = "j"
length_mm = 1000

[[segment]]
id = "yard"
from = "s"
to = "j"
length_mm = 1500
points = [[250, 280], [50, 280]]

[[segment]]
id = "ja"
from = "j"
to = "a"
length_mm = 1500

[[device]]
name = "yard_b1"
kind = "switch"
station = "yard"
board = "servo"
pin = 13
on_angle = 90
off_angle = 0
initial = "OFF"
node = "s"
"#,
    );
    for (id, en) in [("one", "One"), ("two", "Two"), ("three", "Three"), ("yard", "Yard")] {
        text += &format!("\n[[station]]\nid = \"{id}\"\nname_ja = \"{en}\"\nname_en = \"{en}\"\n");
    }
    text += &stop("r1", "one", "ab", 14);
    text += &stop("r2", "two", "bc", 15);
    text += &stop("r3", "three", "ja", 16);
    text += &stop("y1", "yard", "yard", 17);
    text += &train("A", "ab", "b");
    text += &train("B", "bc", "c");
    text += &train("C", "yard", "j");
    std::sync::Arc::new(sim::layout::Layout::from_toml(&text).unwrap_or_else(|e| panic!("{e}")))
}

/// A deadlock built on purpose: the yard's train C joining the loop would take its last free stop, and the
/// three trains would wait on each other for ever. Automatic operation sees it coming and holds C back (an
/// event, and C's plan says why), while A and B keep running round; C sent into the loop all the same (by hand,
/// as the interlocking allows it), the deadlock forms and is reported within 10 s, naming all three.
#[test]
fn a_deadlock_built_on_purpose_is_avoided_by_holding_a_train_back() {
    use sim::auto::{Auto, AutoConfig, AutoEvent, NoHolds, Wait};
    use sim::interlocking::guarded::Guarded;
    use sim::interlocking::{Interlocking, Request};
    use sim::layout::OnOff;
    use sim::twin::{EventKind, Simulation};

    let layout = loop_with_a_yard();
    let y1 = layout.device_id("y1").unwrap();
    let (a, b, c) = (0, 1, 2);
    let mut track = Guarded::new(Simulation::new(layout.clone(), 10).unwrap(), Interlocking::new(layout.clone(), true));
    let mut auto = Auto::new(layout.clone(), AutoConfig::default());
    let (mut events, mut departures, mut held_back, mut deadlocks) = (Vec::new(), [0; 3], Vec::new(), Vec::new());
    let (mut released_at, mut plan_held_back) = (None, false);
    while track.sim().time_ms() < 10 * 60_000 {
        let now = track.sim().time_ms();
        // After five minutes C is sent into the loop by hand, as soon as the interlocking lets it go.
        if now >= 5 * 60_000 && released_at.is_none() {
            let lower = Request::Device { device: y1, state: OnOff::Off };
            if track.request(&lower, &mut events).is_ok() {
                released_at = Some(now);
            }
        }
        if now.is_multiple_of(sim::auto::AUTO_EVERY_MS) {
            let (requests, found) = auto.tick(&track.sim().state(), track.interlocking(), &NoHolds);
            for r in requests {
                track.request(&r, &mut events).expect("automatic operation asks only what the interlocking allows");
            }
            for e in found {
                match e {
                    AutoEvent::Departed { train, .. } if released_at.is_none() => departures[train] += 1,
                    AutoEvent::HeldBack { train, with } => held_back.push((train, with)),
                    AutoEvent::Deadlock { trains } => deadlocks.push((now, trains)),
                    _ => {}
                }
            }
            // C's plan says why it waits whenever it could go but for the lock (at other times A or B is in its
            // way).
            plan_held_back |= auto.plans()[c].wait == Some(Wait::HeldBack { with: vec![a, b] });
        }
        track.step(&mut events);
        for e in events.drain(..) {
            assert!(!matches!(e.kind, EventKind::Collision { .. } | EventKind::Derailment { .. }), "{e:?}");
        }
    }
    assert_eq!(held_back, vec![(c, vec![a, b])], "told once, while it stands");
    assert!(plan_held_back);
    assert!(departures[a] >= 20 && departures[b] >= 20 && departures[c] == 0, "{departures:?}");
    let released = released_at.expect("C was sent into the loop");
    assert_eq!(deadlocks.len(), 1, "{deadlocks:?}");
    let (at, trains) = &deadlocks[0];
    assert_eq!(trains, &vec![a, b, c]);
    assert!(*at - released <= 30_000, "reported {} s after C was sent", (*at - released) / 1000);
    assert_eq!(
        AutoEvent::HeldBack { train: c, with: vec![a, b] }.describe(&layout),
        "C held back: going on would lock it with A, B (a deadlock avoided)"
    );
}
