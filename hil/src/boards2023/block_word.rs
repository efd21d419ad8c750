//! The hardware's word on the 2023 blocks, beside the mirror's, as plain data over time passed in.
//!
//! In live mode a block is what its detectors last reported, as the 2023 state manager kept it (`CLOSE`: a
//! train entered, `OPEN`: it left): that is what every door shows ([`BlockWord::shown`]). The interlocking
//! takes the safe side ([`BlockWord::held`]): a block is occupied when the hardware or the mirror says so. A
//! block no detector has reported yet shows the mirror's. In sim mode the mirror is the track, and every door
//! shows it.
//!
//! Faulty detectors are told apart from trains by how they report (the firmware repeats a held detector every
//! 3 s, never faster):
//! - **stuck**: one re-reported without a break ([`REPORT_GAP_MS`]) for [`STUCK_AFTER_MS`] (a micro-switch
//!   stuck closed; no train stands on a detector that long);
//! - **chattering**: [`CHATTER_COUNT`] reports in a row closer than [`CHATTER_GAP_MS`], which the firmware
//!   never sends.
//!
//! A faulty detector keeps its block occupied, shown and held, until it has said nothing for
//! [`CLEAR_AFTER_MS`]; the operator can take a detector out of service, and its reports are then counted and
//! ignored (its block is then shown as the mirror has it, or occupied on a `CLOSE` from its other detector).
//!
//! A block the hardware reported `OPEN` while the mirror still holds it [`PHANTOM_AFTER_MS`] later holds a
//! phantom: [`BlockWord::phantoms`] names it once, and the track shows the mirror's trains there lost, so a
//! contradiction ends and never holds the layout. The other way round is the dangerous one: the mirror's train
//! entered a block whose wired entry detector never reported within [`CONFIRM_MS`] (the real train did not
//! leave: a stop rail's delta lost on its way to a board that was away): [`BlockWord::unconfirmed`] names the
//! block once, and the track puts the mirror's train back before it, where the real one still stands. Until
//! the entry detector has confirmed it, the blocks behind the station it left are held too
//! ([`BlockWord::held`]): no train is let in behind a train that may still stand there.
//!
//! A board that restarts says nothing for its first 3 s, so an `OPEN` can be missed and its block stays
//! `CLOSE` for good. When the mirror's train has left such a block and its entry into a block ahead is
//! confirmed by that block's entry detector, the train has evidently left: the missed `OPEN` is supplied and
//! counted ([`Counts::supplied`]).

use serde::Serialize;
use sim::layout::{BlockId, DetectorId, DetectorTarget, DevicePlace, Dir, Layout, NodeRole, Port, SegId, Segment};

/// A held detector's reports come at most this far apart (the firmware's 3 s, and some slack): a longer
/// silence ends a run of reports.
pub const REPORT_GAP_MS: u64 = 4_500;
/// A detector re-reported without a break for this long is stuck.
pub const STUCK_AFTER_MS: u64 = 30_000;
/// Reports of one detector closer than this are faster than the firmware sends...
pub const CHATTER_GAP_MS: u64 = 1_000;
/// ...and this many of them in a row make it chattering.
pub const CHATTER_COUNT: u32 = 5;
/// A faulty detector silent this long is taken as healthy again.
pub const CLEAR_AFTER_MS: u64 = 10_000;
/// A block reported `OPEN` that the mirror still holds this long after holds a phantom.
pub const PHANTOM_AFTER_MS: u64 = 10_000;
/// A block the mirror's train entered is confirmed by its wired entry detector within this long (the firmware
/// reports at once, or up to 3 s late after a report of its own), or its train did not really go.
pub const CONFIRM_MS: u64 = 6_000;
/// How long a block whose entry was never confirmed stays held after its train was put back, unless one of
/// its detectors reports first, ms: the real train may have gone in all the same (its entry report lost on
/// the way from a board that was away), and crosses a block well within this.
pub const UNCERTAIN_MS: u64 = 60_000;

/// How a detector is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorHealth {
    /// Reporting as the firmware does.
    Ok,
    /// Re-reported without a break for [`STUCK_AFTER_MS`] or more.
    Stuck,
    /// Reporting faster than the firmware can.
    Chattering,
    /// Taken out of service by the operator: its reports are ignored.
    OutOfService,
}

impl DetectorHealth {
    /// Whether its block is kept occupied for it (a faulty detector in service).
    pub fn faulty(self) -> bool {
        matches!(self, DetectorHealth::Stuck | DetectorHealth::Chattering)
    }

    /// In words.
    pub fn word(self) -> &'static str {
        match self {
            DetectorHealth::Ok => "ok",
            DetectorHealth::Stuck => "stuck",
            DetectorHealth::Chattering => "chattering",
            DetectorHealth::OutOfService => "out of service",
        }
    }
}

/// A detector's name: its block's id and its word, e.g. `chofu_down_b1/CLOSE`.
pub fn detector_name(layout: &Layout, detector: DetectorId) -> String {
    let d = &layout.detectors[detector];
    let word = match d.target {
        DetectorTarget::Close => "CLOSE",
        DetectorTarget::Open => "OPEN",
    };
    format!("{}/{word}", layout.blocks[d.block].id)
}

/// The detector a name (`BLOCK/CLOSE` or `BLOCK/OPEN`, the word in any case) names.
pub fn detector_id(layout: &Layout, name: &str) -> Option<DetectorId> {
    let (block, word) = name.rsplit_once('/')?;
    let block = layout.block_id(block)?;
    let target = match word.to_ascii_uppercase().as_str() {
        "CLOSE" => DetectorTarget::Close,
        "OPEN" => DetectorTarget::Open,
        _ => return None,
    };
    layout.detectors.iter().position(|d| d.block == block && d.target == target)
}

/// Something the doors should be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// What the doors show of a block changed.
    Block {
        /// The block.
        block: BlockId,
        /// Occupied.
        occupied: bool,
    },
    /// A detector's health changed.
    Detector {
        /// The detector.
        detector: DetectorId,
        /// Its health now.
        health: DetectorHealth,
    },
    /// A block's `OPEN` was missed and is supplied: the train that left it was confirmed in a block ahead.
    Supplied {
        /// The block.
        block: BlockId,
        /// The block ahead the train was confirmed in.
        ahead: BlockId,
    },
}

/// What came of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The detector that sent it, if the layout has one for its block and word.
    pub detector: Option<DetectorId>,
    /// Whether the mirror should follow it (a healthy detector in service).
    pub follow: bool,
    /// The train put back from the block while its entry was uncertain: the report shows it went in after
    /// all, and it belongs there.
    pub found: Option<usize>,
    /// What changed.
    pub notes: Vec<Note>,
}

/// What is known of one detector's reports.
#[derive(Debug, Clone, Copy)]
struct Watch {
    /// When the current run of reports began, and the last report, ms.
    run: Option<(u64, u64)>,
    /// Reports in a row closer than [`CHATTER_GAP_MS`].
    quick: u32,
    health: DetectorHealth,
}

/// Counts for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Reports taken.
    pub reports: u64,
    /// Reports of a detector out of service, ignored.
    pub ignored: u64,
    /// Reports for a block and word no detector of the layout has.
    pub unmatched: u64,
    /// Detectors found stuck.
    pub stuck: u64,
    /// Detectors found chattering.
    pub chattering: u64,
    /// Phantoms found (the mirror holding a block the hardware reported left).
    pub phantoms: u64,
    /// Missed `OPEN` reports supplied (the train that left the block confirmed in a block ahead).
    pub supplied: u64,
}

/// The hardware's word on every block (see the module documentation).
#[derive(Debug, Clone)]
pub struct BlockWord {
    live: bool,
    pace: f64,
    /// Each block's detectors.
    detectors_of: Vec<Vec<DetectorId>>,
    /// Each detector's block.
    block_of: Vec<BlockId>,
    /// Each block's wired entry detector, if it has one.
    wired_entry: Vec<Option<DetectorId>>,
    /// When the mirror's train entered each block, while its entry detector has not confirmed it.
    entered: Vec<Option<u64>>,
    /// The blocks a train comes from into each block (the first block behind each of its stop rails, on every
    /// way; through blocks with no wired entry detector).
    behind: Vec<Vec<BlockId>>,
    /// The blocks each block is behind (the inverse of `behind`).
    ahead: Vec<Vec<BlockId>>,
    /// Blocks the mirror's train left while their last report was still `CLOSE`.
    left: Vec<bool>,
    /// Blocks whose entry was never confirmed, held: the train put back from each, and since when (ms).
    uncertain: Vec<Option<(usize, u64)>>,
    /// When the operator last placed a train in each block (their word stands for the detector's).
    placed: Vec<Option<u64>>,
    /// The last report of each block: `CLOSE`, when (ms), and whether its phantom check was made.
    reported: Vec<Option<(bool, u64, bool)>>,
    mirror: Vec<bool>,
    watches: Vec<Watch>,
    shown: Vec<bool>,
    counts: Counts,
}

impl BlockWord {
    /// The word on `layout`'s blocks in sim mode, the mirror as `mirror` says.
    pub fn new(layout: &Layout, mirror: Vec<bool>) -> BlockWord {
        let detectors_of = (0..layout.blocks.len())
            .map(|b| (0..layout.detectors.len()).filter(|&d| layout.detectors[d].block == b).collect())
            .collect();
        let watch = Watch { run: None, quick: 0, health: DetectorHealth::Ok };
        let wired_entry: Vec<Option<DetectorId>> = (0..layout.blocks.len())
            .map(|b| {
                let entry = |d: &sim::layout::Detector| d.block == b && d.target == DetectorTarget::Close;
                layout.detectors.iter().position(|d| entry(d) && d.wiring.is_some())
            })
            .collect();
        let behind = blocks_behind(layout, &wired_entry);
        BlockWord {
            live: false,
            pace: 1.0,
            detectors_of,
            block_of: layout.detectors.iter().map(|d| d.block).collect(),
            wired_entry,
            entered: vec![None; layout.blocks.len()],
            ahead: (0..layout.blocks.len())
                .map(|b| (0..layout.blocks.len()).filter(|&c| behind[c].contains(&b)).collect())
                .collect(),
            behind,
            left: vec![false; layout.blocks.len()],
            uncertain: vec![None; layout.blocks.len()],
            placed: vec![None; layout.blocks.len()],
            reported: vec![None; layout.blocks.len()],
            shown: mirror.clone(),
            mirror,
            watches: vec![watch; layout.detectors.len()],
            counts: Counts::default(),
        }
    }

    /// What every door shows of each block.
    pub fn shown(&self) -> &[bool] {
        &self.shown
    }

    /// Whether the interlocking takes a block as occupied: the hardware or the mirror says so, a faulty
    /// detector keeps it, or a train that left it is not yet confirmed in a block ahead.
    pub fn held(&self, block: BlockId) -> bool {
        self.hold(block, self.mirror[block])
    }

    /// The simulation runs `pace` times real time (tests run live mode faster): the times that measure trains
    /// moving ([`CONFIRM_MS`], [`PHANTOM_AFTER_MS`], [`UNCERTAIN_MS`]) shrink with it; the firmware's own
    /// (its 3 s repeat, and what tells a faulty detector) do not.
    pub fn set_pace(&mut self, pace: f64) {
        self.pace = pace.max(0.01);
    }

    /// `ms` of train motion, in the word's clock (real time).
    fn on_track(&self, ms: u64) -> u64 {
        (ms as f64 / self.pace) as u64
    }

    /// What the doors show of every block, the mirror's blocks being `mirror` (a snapshot's).
    pub fn shown_view(&self, mirror: &[bool]) -> Vec<bool> {
        mirror.iter().enumerate().map(|(b, &m)| self.show(b, m)).collect()
    }

    /// What the interlocking takes of every block, the mirror's blocks being `mirror` (a snapshot's).
    pub fn held_view(&self, mirror: &[bool]) -> Vec<bool> {
        mirror.iter().enumerate().map(|(b, &m)| self.hold(b, m)).collect()
    }

    fn hold(&self, block: BlockId, mirror: bool) -> bool {
        let unconfirmed_ahead = || self.ahead[block].iter().any(|&c| self.entered[c].is_some());
        let word = || self.reported_close(block) || self.uncertain[block].is_some();
        mirror || (self.live && (word() || self.faulty(block) || unconfirmed_ahead()))
    }

    /// Each detector's health, by detector.
    pub fn health(&self) -> Vec<DetectorHealth> {
        self.watches.iter().map(|w| w.health).collect()
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Live mode (the hardware's word counts) or sim mode (the mirror is the track).
    pub fn set_live(&mut self, live: bool) -> Vec<Note> {
        self.live = live;
        if !live {
            self.reported.fill(None);
            self.entered.fill(None);
            self.left.fill(false);
            self.uncertain.fill(None);
        }
        self.refresh_all()
    }

    /// The mirror's block changed at `now_ms`: in live mode a train entering it waits for its entry detector
    /// (unless a detector of the block reported just before, or the operator placed a train there: the mirror
    /// following the hardware, or the operator's word).
    pub fn mirror_changed(&mut self, block: BlockId, occupied: bool, now_ms: u64) -> Vec<Note> {
        self.mirror[block] = occupied;
        let confirm_ms = self.on_track(CONFIRM_MS);
        let recent = |at: u64| now_ms.saturating_sub(at) <= confirm_ms;
        let reported = self.reported[block].is_some_and(|(_, at, _)| recent(at));
        let confirmed = reported || self.placed[block].is_some_and(recent);
        let watched = self.wired_entry[block].is_some_and(|d| self.watches[d].health == DetectorHealth::Ok);
        self.entered[block] = (self.live && occupied && watched && !confirmed).then_some(now_ms);
        self.left[block] = self.live && !occupied && self.reported_close(block);
        let mut notes: Vec<Note> = self.refresh(block).into_iter().collect();
        if self.live && occupied && reported && self.reported_close(block) {
            notes.extend(self.entry_confirmed(block, now_ms));
        }
        notes
    }

    /// A train's entry into `block` is confirmed (its entry detector and the mirror agree): a block behind it
    /// the mirror's train left while still reported `CLOSE` missed its `OPEN`, supplied now.
    fn entry_confirmed(&mut self, block: BlockId, now_ms: u64) -> Vec<Note> {
        let mut notes = Vec::new();
        for i in 0..self.behind[block].len() {
            let b = self.behind[block][i];
            if self.left[b] && !self.mirror[b] && !self.faulty(b) && self.reported_close(b) {
                self.left[b] = false;
                self.reported[b] = Some((false, now_ms, true));
                self.counts.supplied += 1;
                notes.push(Note::Supplied { block: b, ahead: block });
                notes.extend(self.refresh(b));
            }
        }
        notes
    }

    /// The operator placed a train in `block` at `now_ms`: the mirror's train there needs no detector's word.
    pub fn placed(&mut self, block: BlockId, now_ms: u64) {
        self.placed[block] = Some(now_ms);
        self.entered[block] = None;
    }

    /// Blocks the mirror's train entered [`CONFIRM_MS`] or more before `now_ms` that their entry detector has
    /// not confirmed since: each named once.
    pub fn unconfirmed(&mut self, now_ms: u64) -> Vec<BlockId> {
        let confirm_ms = self.on_track(CONFIRM_MS);
        let mut out = Vec::new();
        for (block, entered) in self.entered.iter_mut().enumerate() {
            if entered.is_some_and(|at| now_ms.saturating_sub(at) >= confirm_ms) {
                *entered = None;
                out.push(block);
            }
        }
        out
    }

    /// `train`, the mirror's train in `block` whose entry was never confirmed, was put back before it at
    /// `now_ms`: the block stays held for [`UNCERTAIN_MS`], or until one of its detectors reports (and the train
    /// is found there: [`Taken::found`]).
    pub fn put_back(&mut self, block: BlockId, train: usize, now_ms: u64) {
        if self.live {
            self.uncertain[block] = Some((train, now_ms));
        }
    }

    /// A detector's report (`CLOSE` or not) on `block` at `now_ms`, in live mode.
    pub fn report(&mut self, layout: &Layout, block: BlockId, close: bool, now_ms: u64) -> Taken {
        let target = if close { DetectorTarget::Close } else { DetectorTarget::Open };
        let detector = self.detectors_of[block].iter().copied().find(|&d| layout.detectors[d].target == target);
        let Some(d) = detector else {
            self.counts.unmatched += 1;
            return Taken { detector: None, follow: false, found: None, notes: Vec::new() };
        };
        if self.watches[d].health == DetectorHealth::OutOfService {
            self.counts.ignored += 1;
            return Taken { detector, follow: false, found: None, notes: Vec::new() };
        }
        self.counts.reports += 1;
        let mut notes = Vec::new();
        let w = &mut self.watches[d];
        let (begun, quick) = match w.run {
            Some((begun, last)) if now_ms.saturating_sub(last) <= REPORT_GAP_MS => {
                (begun, if now_ms.saturating_sub(last) < CHATTER_GAP_MS { w.quick + 1 } else { 0 })
            }
            _ => (now_ms, 0),
        };
        w.run = Some((begun, now_ms));
        w.quick = quick;
        let health = if quick + 1 >= CHATTER_COUNT {
            DetectorHealth::Chattering
        } else if now_ms - begun >= STUCK_AFTER_MS && w.health != DetectorHealth::Chattering {
            DetectorHealth::Stuck
        } else {
            w.health
        };
        if health != w.health {
            w.health = health;
            match health {
                DetectorHealth::Stuck => self.counts.stuck += 1,
                DetectorHealth::Chattering => self.counts.chattering += 1,
                _ => {}
            }
            notes.push(Note::Detector { detector: d, health });
        }
        if self.live {
            self.reported[block] = Some((close, now_ms, false));
            self.left[block] = false;
            if close && self.entered[block].take().is_some() && !health.faulty() {
                notes.extend(self.entry_confirmed(block, now_ms));
            }
        }
        notes.extend(self.refresh(block));
        let found = if self.live && !health.faulty() { self.uncertain[block].take().map(|u| u.0) } else { None };
        Taken { detector, follow: !health.faulty(), found, notes }
    }

    /// Time passes: faulty detectors silent for [`CLEAR_AFTER_MS`] are healthy again; a block uncertain for
    /// [`UNCERTAIN_MS`] is no longer held for it.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Note> {
        let uncertain_ms = self.on_track(UNCERTAIN_MS);
        for u in &mut self.uncertain {
            if u.is_some_and(|(_, since)| now_ms.saturating_sub(since) >= uncertain_ms) {
                *u = None;
            }
        }
        let mut notes = Vec::new();
        for d in 0..self.watches.len() {
            let w = &mut self.watches[d];
            if w.health.faulty() && w.run.is_none_or(|(_, last)| now_ms.saturating_sub(last) >= CLEAR_AFTER_MS) {
                *w = Watch { run: None, quick: 0, health: DetectorHealth::Ok };
                notes.push(Note::Detector { detector: d, health: DetectorHealth::Ok });
                notes.extend(self.refresh(self.block_of[d]));
            }
        }
        notes
    }

    /// Blocks whose last report, [`PHANTOM_AFTER_MS`] or more before `now_ms`, was `OPEN` while the mirror
    /// still holds them: each named once per report.
    pub fn phantoms(&mut self, now_ms: u64) -> Vec<BlockId> {
        if !self.live {
            return Vec::new();
        }
        let phantom_ms = self.on_track(PHANTOM_AFTER_MS);
        let mut out = Vec::new();
        for (block, r) in self.reported.iter_mut().enumerate() {
            if let Some((false, at, checked @ false)) = r
                && now_ms.saturating_sub(*at) >= phantom_ms
            {
                *checked = true;
                if self.mirror[block] && !self.detectors_of[block].iter().any(|&d| self.watches[d].health.faulty()) {
                    self.counts.phantoms += 1;
                    out.push(block);
                }
            }
        }
        out
    }

    /// The operator takes a detector out of service (its reports ignored) or back in.
    pub fn set_in_service(&mut self, detector: DetectorId, in_service: bool) -> Vec<Note> {
        let health = if in_service { DetectorHealth::Ok } else { DetectorHealth::OutOfService };
        let w = &mut self.watches[detector];
        if w.health == health || (in_service && w.health != DetectorHealth::OutOfService) {
            return Vec::new();
        }
        *w = Watch { run: None, quick: 0, health };
        let mut notes = vec![Note::Detector { detector, health }];
        notes.extend(self.refresh(self.block_of[detector]));
        notes
    }

    /// Whether the block's last report was `CLOSE`.
    fn reported_close(&self, block: BlockId) -> bool {
        self.reported[block].is_some_and(|r| r.0)
    }

    fn faulty(&self, block: BlockId) -> bool {
        self.detectors_of[block].iter().any(|&d| self.watches[d].health.faulty())
    }

    /// What the doors should show of a block, the mirror's being `mirror`.
    fn show(&self, block: BlockId, mirror: bool) -> bool {
        if !self.live {
            return mirror;
        }
        if self.faulty(block) {
            return true;
        }
        let reported = self.reported[block].map(|r| r.0);
        let partial = self.detectors_of[block].iter().any(|&d| self.watches[d].health == DetectorHealth::OutOfService);
        if partial {
            return mirror || reported == Some(true);
        }
        reported.unwrap_or(mirror)
    }

    fn refresh(&mut self, block: BlockId) -> Option<Note> {
        let occupied = self.show(block, self.mirror[block]);
        (std::mem::replace(&mut self.shown[block], occupied) != occupied).then_some(Note::Block { block, occupied })
    }

    fn refresh_all(&mut self) -> Vec<Note> {
        (0..self.shown.len()).filter_map(|b| self.refresh(b)).collect()
    }
}

/// For every block, the blocks a train comes from into it: walking back from each stop rail that departs into
/// it, along every way (both branches of a point), the first block on each; a block with no wired entry
/// detector (`wired_entry`) is walked through to the blocks behind it, since the hardware cannot have seen a
/// train confirmed there.
fn blocks_behind(layout: &Layout, wired_entry: &[Option<DetectorId>]) -> Vec<Vec<BlockId>> {
    let block_of_seg = |seg: SegId| layout.blocks.iter().position(|b| b.segs.contains(&seg));
    // Every way on from `seg` in `dir`: the segments reached first past its far node.
    let next = |seg: SegId, dir: Dir| -> Vec<(SegId, Dir)> {
        let node = layout.segments[seg].node_ahead(dir);
        let entered = Port { seg, end: Segment::exit_end(dir) };
        let out = match layout.nodes[node].role {
            NodeRole::Joint([a, b]) => vec![if a == entered { b } else { a }],
            NodeRole::Point { trunk, straight, diverging, .. } if entered == trunk => vec![straight, diverging],
            NodeRole::Point { trunk, .. } => vec![trunk],
        };
        out.into_iter().map(|p| (p.seg, p.leaving_dir())).collect()
    };
    // The first blocks met from `seg` going `dir` (the segment itself first), every way.
    let first_blocks = |seg: SegId, dir: Dir| -> Vec<BlockId> {
        let (mut found, mut seen, mut todo) = (Vec::new(), Vec::new(), vec![(seg, dir)]);
        while let Some((s, d)) = todo.pop() {
            if seen.contains(&(s, d)) {
                continue;
            }
            seen.push((s, d));
            match block_of_seg(s) {
                Some(b) if !found.contains(&b) => found.push(b),
                Some(_) => {}
                None => todo.extend(next(s, d)),
            }
        }
        found
    };
    let direct: Vec<Vec<BlockId>> = (0..layout.blocks.len())
        .map(|c| {
            let mut behind = Vec::new();
            for &stop in &layout.blocks[c].stops {
                let DevicePlace::StopRail { seg, .. } = layout.devices[stop].place else { continue };
                // The direction that reaches the block; behind is the other way.
                for dir in [Dir::Forward, Dir::Backward] {
                    let toward = next(seg, dir).into_iter().flat_map(|(s, d)| first_blocks(s, d)).any(|b| b == c);
                    if !toward {
                        continue;
                    }
                    let back = dir.flip();
                    let here = block_of_seg(seg)
                        .map(|b| vec![b])
                        .unwrap_or_else(|| next(seg, back).into_iter().flat_map(|(s, d)| first_blocks(s, d)).collect());
                    behind.extend(here.into_iter().filter(|&b| b != c));
                }
            }
            behind.sort_unstable();
            behind.dedup();
            behind
        })
        .collect();
    // Through the blocks the hardware is blind to.
    (0..layout.blocks.len())
        .map(|c| {
            let (mut out, mut todo) = (Vec::new(), direct[c].clone());
            while let Some(b) = todo.pop() {
                if b == c || out.contains(&b) {
                    continue;
                }
                out.push(b);
                if wired_entry[b].is_none() {
                    todo.extend(direct[b].iter().copied());
                }
            }
            out.sort_unstable();
            out
        })
        .collect()
}

#[cfg(test)]
mod tests;
