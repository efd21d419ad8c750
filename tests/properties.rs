//! Property tests: with the interlocking on, random visitor command sequences (adversarial ones included)
//! never cause a collision or derailment; with it off, the same generator finds one.
//!
//! Each case is 10 simulated minutes of the 2021 layout with its 8 trains and more than one command per
//! second. `PROPTEST_CASES` raises the number of cases (64 by default) for a soak run.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use sim::scenario::visitors::{Action, Timed};
use sim::scenario::{Report, RunConfig, run};

use crate::support::layout_2021;

const DURATION_MS: u64 = 10 * 60 * 1000;
/// One command every 0.9 s: 666 commands in 10 minutes.
const SPACING_MS: u64 = 900;

fn action() -> impl Strategy<Value = Action> {
    let n = 0usize..1024;
    prop_oneof![
        4 => (n.clone(), any::<bool>()).prop_map(|(n, on)| Action::StopRail { n, on }),
        3 => (n.clone(), any::<bool>()).prop_map(|(n, on)| Action::Switch { n, on }),
        2 => (n.clone(), 0u16..=1000).prop_map(|(train, permille)| Action::Speed { train, permille }),
        // Adversarial: aimed at the trains.
        2 => n.clone().prop_map(|train| Action::Release { train }),
        2 => n.clone().prop_map(|train| Action::ThrowAhead { train }),
        1 => n.prop_map(|train| Action::FullSpeed { train }),
    ]
}

fn visitors() -> impl Strategy<Value = Vec<Timed>> {
    let count = (DURATION_MS / SPACING_MS) as usize;
    proptest::collection::vec(action(), count).prop_map(|actions| {
        actions.into_iter().enumerate().map(|(i, action)| Timed { time_ms: i as u64 * SPACING_MS, action }).collect()
    })
}

fn run_case(actions: &[Timed], interlocking: bool) -> Report {
    let config = RunConfig {
        duration_ms: DURATION_MS,
        step_ms: 10,
        interlocking,
        pace: None,
        operation: Default::default(),
        quiet_ms: 0,
        board_failures: Vec::new(),
    };
    run(layout_2021(), &config, actions, |_, _| {}).expect("the 2021 layout starts")
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

#[test]
fn with_the_interlocking_no_visitor_sequence_causes_a_collision_or_derailment() {
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let commands = std::cell::Cell::new(0usize);
    let applied = std::cell::Cell::new(0usize);
    let result = runner.run(&visitors(), |actions| {
        let report = run_case(&actions, true);
        commands.set(commands.get() + report.commands);
        applied.set(applied.get() + report.applied);
        prop_assert!(report.collisions.is_empty(), "collisions: {:?}", report.collisions);
        prop_assert!(report.derailments.is_empty(), "derailments: {:?}", report.derailments);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (commands, applied) = (commands.get(), applied.get());
    eprintln!("interlocking property: {} cases, {commands} commands sent, {applied} applied", cases());
    assert!(applied > 0 && commands >= cases() as usize * 600);
}

#[test]
fn without_the_interlocking_the_same_generator_finds_a_collision_or_derailment() {
    let config = Config { cases: 64, max_shrink_iters: 0, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&visitors(), |actions| {
        let report = run_case(&actions, false);
        if report.collisions.is_empty() && report.derailments.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "{} collisions, {} derailments",
                report.collisions.len(),
                report.derailments.len()
            )))
        }
    });
    assert!(result.is_err(), "64 random sequences without the interlocking caused no accident");
}
