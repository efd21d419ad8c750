//! Track geometry as plain functions: how a train passes a node, and a train's body on the track.
//!
//! The simulation and the interlocking both route trains with [`pass_node`], so what the interlocking
//! predicts is exactly what the simulation does.

use std::collections::VecDeque;

use crate::layout::{
    Branch, DeviceId, Dir, Layout, NodeId, NodeRole, OnOff, Placement, PointKind, Port, SegId, Segment,
};

/// Where a servo device is: at its ON or OFF angle, or stuck between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevicePosition {
    /// At the ON angle.
    On,
    /// At the OFF angle.
    Off,
    /// At an angle that is neither (the angle is kept); unsafe for trains.
    Between(u32),
}

impl DevicePosition {
    /// The ON/OFF state, or `None` when between.
    pub fn state(self) -> Option<OnOff> {
        match self {
            DevicePosition::On => Some(OnOff::On),
            DevicePosition::Off => Some(OnOff::Off),
            DevicePosition::Between(_) => None,
        }
    }
}

impl From<OnOff> for DevicePosition {
    fn from(s: OnOff) -> Self {
        match s {
            OnOff::On => DevicePosition::On,
            OnOff::Off => DevicePosition::Off,
        }
    }
}

/// Why a train cannot pass a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blocked {
    /// The switch's servo is between its ON and OFF angles.
    SwitchBetween(DeviceId),
    /// A non-trailable switch is set against a trailing train.
    TrailedAgainst(DeviceId),
}

/// The port a train leaves `node` by when it arrives through `entered`, given device positions.
pub fn pass_node(layout: &Layout, node: NodeId, entered: Port, devices: &[DevicePosition]) -> Result<Port, Blocked> {
    match layout.nodes[node].role {
        NodeRole::Joint([a, b]) => Ok(if a == entered { b } else { a }),
        NodeRole::Point { trunk, straight, diverging, kind } => {
            let set = match kind {
                PointKind::Spring { normal } => Some(normal),
                PointKind::Switch { device, .. } => match devices[device] {
                    DevicePosition::On => Some(Branch::Diverging),
                    DevicePosition::Off => Some(Branch::Straight),
                    DevicePosition::Between(_) => return Err(Blocked::SwitchBetween(device)),
                },
            };
            let branch_port = |b: Branch| {
                if b == Branch::Straight { straight } else { diverging }
            };
            if entered == trunk {
                // Facing: follow the set branch.
                return Ok(branch_port(set.expect("springs and set switches have a branch")));
            }
            // Trailing: always to the trunk, unless a rigid switch is set against the train.
            let from = if entered == straight { Branch::Straight } else { Branch::Diverging };
            match kind {
                PointKind::Switch { device, trailable: false } if set != Some(from) => {
                    Err(Blocked::TrailedAgainst(device))
                }
                _ => Ok(trunk),
            }
        }
    }
}

/// The segment and direction a train enters after leaving `seg` in direction `dir`.
pub fn next_segment(
    layout: &Layout,
    seg: SegId,
    dir: Dir,
    devices: &[DevicePosition],
) -> Result<(SegId, Dir), Blocked> {
    let node = layout.segments[seg].node_ahead(dir);
    let out = pass_node(layout, node, Port { seg, end: Segment::exit_end(dir) }, devices)?;
    Ok((out.seg, out.leaving_dir()))
}

/// Distance travelled into a segment (from its entry end in `dir`) converted to an offset from `from`.
pub fn offset_of(seg: &Segment, dir: Dir, travelled: f64) -> f64 {
    match dir {
        Dir::Forward => travelled,
        Dir::Backward => seg.length - travelled,
    }
}

/// An interval of one segment, in offsets from its `from` end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Segment.
    pub seg: SegId,
    /// Lower offset.
    pub lo: f64,
    /// Upper offset.
    pub hi: f64,
}

impl Span {
    /// The span of `seg` between two distances travelled in `dir`.
    pub fn between(seg: &Segment, id: SegId, dir: Dir, a: f64, b: f64) -> Span {
        let (x, y) = (offset_of(seg, dir, a), offset_of(seg, dir, b));
        Span { seg: id, lo: x.min(y), hi: x.max(y) }
    }

    /// Whether the span covers the offset `at` on its segment.
    pub fn contains(&self, at: f64) -> bool {
        self.lo <= at && at <= self.hi
    }

    /// Whether two spans overlap by more than nothing.
    pub fn overlaps(&self, other: &Span) -> bool {
        self.seg == other.seg && self.lo < other.hi && other.lo < self.hi
    }
}

/// A train's body: the segments it covers from rear to front, with how far it is into the first and last.
#[derive(Debug, PartialEq)]
pub struct Body {
    /// Segments from rear to front, each with the train's direction on it.
    pub segs: VecDeque<(SegId, Dir)>,
    /// Distance the rear has travelled into the first segment.
    pub tail: f64,
    /// Distance the front has travelled into the last segment.
    pub head: f64,
}

impl Clone for Body {
    fn clone(&self) -> Body {
        Body { segs: self.segs.clone(), tail: self.tail, head: self.head }
    }

    /// Reuses `self`'s buffer (a copy of the track's state every few steps allocates nothing).
    fn clone_from(&mut self, source: &Body) {
        self.segs.clone_from(&source.segs);
        (self.tail, self.head) = (source.tail, source.head);
    }
}

/// Why a body cannot be placed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot place a {length} mm train there: the track behind it is blocked ({blocked:?})")]
pub struct PlacementError {
    /// Train length.
    pub length: f64,
    /// What blocks the track behind.
    pub blocked: Blocked,
}

impl Body {
    /// Places a train of `length` with its front at `front`, extending back along the track.
    pub fn place(
        layout: &Layout,
        front: Placement,
        length: f64,
        devices: &[DevicePosition],
    ) -> Result<Body, PlacementError> {
        let seg = &layout.segments[front.seg];
        let head = match front.dir {
            Dir::Forward => front.offset,
            Dir::Backward => seg.length - front.offset,
        };
        // Build the body reversed (front first, walking backwards), then flip it.
        let mut rev = Body {
            segs: VecDeque::from([(front.seg, front.dir.flip())]),
            tail: seg.length - head,
            head: seg.length - head,
        };
        rev.extend_head(layout, length, devices).map_err(|blocked| PlacementError { length, blocked })?;
        Ok(rev.reversed(layout))
    }

    /// Moves the front `d` further along the track, following nodes (the rear does not move).
    fn extend_head(&mut self, layout: &Layout, mut d: f64, devices: &[DevicePosition]) -> Result<(), Blocked> {
        loop {
            let (seg, dir) = *self.segs.back().expect("a body covers a segment");
            let room = layout.segments[seg].length - self.head;
            if d <= room {
                self.head += d;
                return Ok(());
            }
            d -= room;
            let next = next_segment(layout, seg, dir, devices)?;
            self.segs.push_back(next);
            self.head = 0.0;
        }
    }

    /// The same body seen travelling the other way (front and rear swapped).
    pub fn reversed(&self, layout: &Layout) -> Body {
        let first = self.segs.front().expect("non-empty").0;
        let last = self.segs.back().expect("non-empty").0;
        Body {
            segs: self.segs.iter().rev().map(|&(s, d)| (s, d.flip())).collect(),
            head: layout.segments[first].length - self.tail,
            tail: layout.segments[last].length - self.head,
        }
    }

    /// Moves the rear `d` forward, dropping segments it leaves.
    pub fn advance_tail(&mut self, layout: &Layout, d: f64) {
        self.tail += d;
        while self.segs.len() > 1 {
            let len = layout.segments[self.segs[0].0].length;
            if self.tail < len {
                break;
            }
            self.tail -= len;
            self.segs.pop_front();
        }
    }

    /// The front's segment, direction and offset.
    pub fn front(&self, layout: &Layout) -> Placement {
        let (seg, dir) = *self.segs.back().expect("non-empty");
        Placement { seg, offset: offset_of(&layout.segments[seg], dir, self.head), dir }
    }

    /// Whether the body covers offset `at` of segment `seg`.
    pub fn covers(&self, layout: &Layout, seg: SegId, at: f64) -> bool {
        self.spans(layout).any(|s| s.seg == seg && s.contains(at))
    }

    /// The spans the body covers, rear first.
    pub fn spans<'a>(&'a self, layout: &'a Layout) -> impl Iterator<Item = Span> + 'a {
        let n = self.segs.len();
        self.segs.iter().enumerate().map(move |(i, &(seg, dir))| {
            let s = &layout.segments[seg];
            let a = if i == 0 { self.tail } else { 0.0 };
            let b = if i + 1 == n { self.head } else { s.length };
            Span::between(s, seg, dir, a, b)
        })
    }

    /// The nodes the body spans across (between two of its segments).
    pub fn inner_nodes<'a>(&'a self, layout: &'a Layout) -> impl Iterator<Item = NodeId> + 'a {
        self.segs.iter().take(self.segs.len().saturating_sub(1)).map(|&(s, d)| layout.segments[s].node_ahead(d))
    }

    /// Whether the body straddles the node that `device` (a switch) drives.
    pub fn straddles_switch(&self, layout: &Layout, device: DeviceId) -> bool {
        match layout.devices[device].place {
            crate::layout::DevicePlace::Switch { node } => self.inner_nodes(layout).any(|n| n == node),
            crate::layout::DevicePlace::StopRail { .. } => false,
        }
    }
}
