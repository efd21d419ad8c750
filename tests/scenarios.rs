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
            let failures = report.failures(&scenario.spec.expect);
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
