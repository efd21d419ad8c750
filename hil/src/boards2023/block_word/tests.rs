//! The block word over time: holds, faulty detectors, phantoms, put-backs and supplied OPENs, on the 2023 layout.

use sim::layout::festival::layout_2023;

use super::*;

fn live() -> (Layout, BlockWord) {
    let layout = layout_2023();
    let mut word = BlockWord::new(&layout, vec![false; layout.blocks.len()]);
    assert!(word.set_live(true).is_empty());
    (layout, word)
}

#[test]
fn a_block_shows_its_last_report_and_is_held_if_either_says_so() {
    let (layout, mut word) = live();
    let b = 0;
    let t = word.report(&layout, b, true, 1_000);
    assert!(t.follow && t.detector.is_some());
    assert_eq!(t.notes, vec![Note::Block { block: b, occupied: true }]);
    assert!(word.held(b));
    let t = word.report(&layout, b, false, 9_000);
    assert_eq!(t.notes, vec![Note::Block { block: b, occupied: false }]);
    assert!(!word.held(b));
    // The mirror still has a train there: shown as the hardware says, held.
    assert!(word.mirror_changed(b, true, 9_500).is_empty());
    assert!(!word.shown()[b] && word.held(b));
    // Ten seconds on, still there: a phantom, named once.
    assert!(word.phantoms(18_000).is_empty());
    assert_eq!(word.phantoms(19_000), vec![b]);
    assert!(word.phantoms(30_000).is_empty());
    assert_eq!(word.counts().phantoms, 1);
}

#[test]
fn sim_mode_shows_the_mirror() {
    let layout = layout_2023();
    let mut word = BlockWord::new(&layout, vec![false; layout.blocks.len()]);
    assert_eq!(word.mirror_changed(1, true, 0), vec![Note::Block { block: 1, occupied: true }]);
    word.report(&layout, 2, true, 0);
    assert!(!word.shown()[2] && !word.held(2));
    // Live: a block not reported yet shows the mirror's.
    assert!(word.set_live(true).is_empty());
    assert!(word.shown()[1]);
}

#[test]
fn a_detector_re_reported_for_30_s_is_stuck_and_keeps_its_block_until_silent() {
    let (layout, mut word) = live();
    let b = 3;
    let mut notes = Vec::new();
    for i in 0..=10 {
        notes.extend(word.report(&layout, b, true, 3_000 * i).notes);
    }
    let d = detector_id(&layout, &format!("{}/close", layout.blocks[b].id)).unwrap();
    assert!(notes.contains(&Note::Detector { detector: d, health: DetectorHealth::Stuck }), "{notes:?}");
    // Its block's exit reports OPEN: kept occupied, and the mirror does not follow the stuck one.
    assert!(word.report(&layout, b, false, 31_000).notes.is_empty());
    assert!(word.shown()[b] && word.held(b));
    assert!(!word.report(&layout, b, true, 33_000).follow);
    // Silent for 10 s: healthy again, the block as last reported.
    assert!(word.tick(40_000).is_empty());
    let notes = word.tick(43_000);
    assert!(notes.contains(&Note::Detector { detector: d, health: DetectorHealth::Ok }), "{notes:?}");
    assert_eq!(word.counts().stuck, 1);
}

#[test]
fn a_chattering_detector_is_told_apart_and_the_operator_can_take_it_out_of_service() {
    let (layout, mut word) = live();
    let b = 2;
    for i in 0..CHATTER_COUNT as u64 {
        word.report(&layout, b, i % 2 == 0, 100 * i);
        word.report(&layout, b, i % 2 == 1, 100 * i + 50);
    }
    let health = word.health();
    let of_block: Vec<DetectorHealth> =
        (0..layout.detectors.len()).filter(|&d| layout.detectors[d].block == b).map(|d| health[d]).collect();
    assert_eq!(of_block, vec![DetectorHealth::Chattering; 2]);
    assert!(word.shown()[b] && word.held(b));
    for d in (0..layout.detectors.len()).filter(|&d| layout.detectors[d].block == b) {
        word.set_in_service(d, false);
    }
    // Out of service: ignored, the block as the mirror has it.
    assert!(!word.shown()[b] && !word.held(b));
    let t = word.report(&layout, b, true, 2_000);
    assert!(!t.follow && t.notes.is_empty());
    assert_eq!(word.counts().ignored, 1);
    let d = layout.detectors.iter().position(|x| x.block == b).unwrap();
    assert_eq!(word.set_in_service(d, true), vec![Note::Detector { detector: d, health: DetectorHealth::Ok }]);
}

#[test]
fn a_mirrored_train_entering_a_block_waits_for_its_entry_detector() {
    let (layout, mut word) = live();
    let wired = (0..layout.blocks.len())
        .find(|&b| {
            layout.detectors.iter().any(|d| d.block == b && d.target == DetectorTarget::Close && d.wiring.is_some())
        })
        .unwrap();
    word.mirror_changed(wired, true, 1_000);
    assert!(word.unconfirmed(6_999).is_empty());
    assert_eq!(word.unconfirmed(7_000), vec![wired]);
    assert!(word.unconfirmed(20_000).is_empty(), "named once");
    // Confirmed: the detector reports within the time.
    word.mirror_changed(wired, false, 21_000);
    word.mirror_changed(wired, true, 22_000);
    word.report(&layout, wired, true, 24_000);
    assert!(word.unconfirmed(40_000).is_empty());
    // The hardware first, the mirror following it: nothing to confirm.
    word.mirror_changed(wired, false, 41_000);
    word.report(&layout, wired, true, 42_000);
    word.mirror_changed(wired, true, 42_100);
    assert!(word.unconfirmed(60_000).is_empty());
    // The operator's word stands for the detector's.
    word.mirror_changed(wired, false, 61_000);
    word.placed(wired, 62_000);
    word.mirror_changed(wired, true, 62_010);
    assert!(word.unconfirmed(80_000).is_empty());
}

/// A block of the layout, by id.
fn block(layout: &Layout, id: &str) -> BlockId {
    layout.blocks.iter().position(|b| b.id == id).unwrap()
}

/// The blocks behind `block`, by name.
fn behind(layout: &Layout, word: &BlockWord, block_id: &str) -> Vec<String> {
    let c = block(layout, block_id);
    word.behind[c].iter().map(|&b| layout.blocks[b].id.clone()).collect()
}

#[test]
fn the_blocks_behind_a_block_are_those_its_trains_come_from() {
    let (layout, word) = live();
    assert_eq!(behind(&layout, &word, "chofu_down_b1"), vec!["sakurajosui_down_b1"]);
    // Hashimoto's down entry is not wired: a train confirmed past it may come from behind it.
    assert_eq!(behind(&layout, &word, "hashimoto_up_b1"), vec!["chofu_down_b2", "hashimoto_down_b1"]);
    for c in 0..layout.blocks.len() {
        assert!(!word.behind[c].is_empty() && !word.behind[c].contains(&c), "{}", layout.blocks[c].id);
    }
}

#[test]
fn a_train_that_left_is_held_behind_until_its_entry_ahead_is_confirmed() {
    let (layout, mut word) = live();
    let c = block(&layout, "chofu_down_b1");
    let b = word.behind[c][0];
    // The mirror's train departs into `c`: the block behind is held until the hardware confirms it.
    word.mirror_changed(c, true, 1_000);
    assert!(word.held(b) && !word.shown()[b]);
    word.report(&layout, c, true, 1_500);
    assert!(!word.held(b));
    // Not confirmed: held until put back.
    word.report(&layout, c, false, 9_000);
    word.mirror_changed(c, false, 10_000);
    word.mirror_changed(c, true, 20_000);
    assert!(word.held(b));
    assert_eq!(word.unconfirmed(26_000), vec![c]);
    assert!(!word.held(b));
    // Put back: the block itself stays held a while, the real train may have gone in after all ...
    word.put_back(c, 2, 26_000);
    word.mirror_changed(c, false, 26_100);
    assert!(word.held(c) && !word.shown()[c]);
    word.tick(26_000 + UNCERTAIN_MS - 1);
    assert!(word.held(c));
    word.tick(26_000 + UNCERTAIN_MS);
    assert!(!word.held(c));
    // ... and when a detector of it reports meanwhile, the train put back is found there.
    word.put_back(c, 2, 100_000);
    let exit = word.report(&layout, c, false, 110_000);
    assert_eq!(exit.found, Some(2));
    assert!(!word.held(c));
    assert_eq!(word.report(&layout, c, false, 113_000).found, None);
}

#[test]
fn a_missed_open_is_supplied_when_the_train_is_confirmed_ahead() {
    let (layout, mut word) = live();
    let c = block(&layout, "chofu_down_b1");
    let b = word.behind[c][0];
    // A train enters `b`; its OPEN is lost (the board restarting); the mirror's train leaves.
    word.mirror_changed(b, true, 1_000);
    word.report(&layout, b, true, 1_200);
    word.mirror_changed(b, false, 9_000);
    assert!(word.shown()[b] && word.held(b), "the hardware's word holds it");
    // Its entry into the block ahead is confirmed: the OPEN is supplied.
    word.mirror_changed(c, true, 30_000);
    let notes = word.report(&layout, c, true, 30_400).notes;
    assert!(notes.contains(&Note::Block { block: b, occupied: false }), "{notes:?}");
    assert!(notes.contains(&Note::Supplied { block: b, ahead: c }), "{notes:?}");
    assert!(!word.shown()[b] && !word.held(b));
    assert_eq!(word.counts().supplied, 1);
    // The report first, the mirror following: supplied alike; a block the mirror still holds is not.
    word.mirror_changed(c, false, 40_000);
    word.report(&layout, b, true, 41_000);
    word.report(&layout, c, true, 50_000);
    word.mirror_changed(c, true, 50_100);
    assert!(word.shown()[b], "the mirror never had a train leave it");
    word.mirror_changed(b, true, 51_000);
    word.mirror_changed(b, false, 52_000);
    word.mirror_changed(c, false, 53_000);
    word.report(&layout, c, true, 60_000);
    word.mirror_changed(c, true, 60_100);
    assert!(!word.shown()[b]);
    assert_eq!(word.counts().supplied, 2);
}

#[test]
fn detectors_are_named_by_block_and_word() {
    let layout = layout_2023();
    for d in 0..layout.detectors.len() {
        assert_eq!(detector_id(&layout, &detector_name(&layout, d)), Some(d));
    }
    assert_eq!(detector_id(&layout, "no_such_block/CLOSE"), None);
    assert_eq!(detector_id(&layout, &format!("{}/SHUT", layout.blocks[0].id)), None);
}
