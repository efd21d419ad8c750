//! Routes and claims: the track a train occupies or may run over before a raised stop rail stops it.

use crate::layout::{DeviceId, Dir, Layout, NodeId, NodeRole, Placement};
use crate::track::{Blocked, DevicePosition, Span, offset_of};
use crate::twin::{TrainState, TrainStatus};

/// How far (mm) a claim reaches beyond a train's ends: the gap kept between trains, and the distance from a
/// point within which a train fouls the point's other branch.
pub const MARGIN_MM: f64 = 60.0;

/// Why a route ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteEnd {
    /// A raised stop rail.
    StopRail(DeviceId),
    /// The train would derail (switch between positions or set against it, stop rail between positions).
    Unsafe(UnsafeAt),
    /// No raised stop rail within the whole layout's length.
    Unbounded,
}

/// What makes a route unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeAt {
    /// A switch that blocks the way.
    Switch(Blocked),
    /// A stop rail stuck between positions.
    StopRail(DeviceId),
}

/// The track ahead of a train's front up to where it must stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Spans in travel order, each with the direction of travel.
    pub spans: Vec<(Span, Dir)>,
    /// Nodes passed, in order.
    pub nodes: Vec<NodeId>,
    /// Why it ends.
    pub end: RouteEnd,
}

/// Walks from `front` along the set route until a raised stop rail, an unsafe device, or the layout's length.
pub fn route_ahead(layout: &Layout, devices: &[DevicePosition], front: Placement) -> Route {
    let cap = layout.track_length();
    let mut route = Route { spans: Vec::new(), nodes: Vec::new(), end: RouteEnd::Unbounded };
    let (mut seg, mut dir) = (front.seg, front.dir);
    let s = &layout.segments[seg];
    let mut h = offset_of(s, dir, front.offset); // travelled distance of the front into `seg`
    let mut walked = 0.0;
    while walked <= cap {
        let s = &layout.segments[seg];
        let mut stop: Option<(f64, RouteEnd)> = None;
        for (device, offset) in layout.stop_rails_on(seg) {
            let p = offset_of(s, dir, offset);
            let end = match devices[device] {
                DevicePosition::On => RouteEnd::StopRail(device),
                DevicePosition::Between(_) => RouteEnd::Unsafe(UnsafeAt::StopRail(device)),
                DevicePosition::Off => continue,
            };
            if p >= h - 1e-9 && stop.is_none_or(|(q, _)| p < q) {
                stop = Some((p, end));
            }
        }
        let until = stop.map_or(s.length, |(p, _)| p);
        route.spans.push((Span::between(s, seg, dir, h, until), dir));
        walked += until - h;
        if let Some((_, end)) = stop {
            route.end = end;
            return route;
        }
        let node = s.node_ahead(dir);
        route.nodes.push(node);
        match crate::track::next_segment(layout, seg, dir, devices) {
            Ok((next, next_dir)) => (seg, dir, h) = (next, next_dir, 0.0),
            Err(blocked) => {
                route.end = RouteEnd::Unsafe(UnsafeAt::Switch(blocked));
                return route;
            }
        }
    }
    route
}

/// What one train holds: its body and its route, with the point nodes it passes or fouls.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The train.
    pub train: usize,
    /// Body and route spans, widened by [`MARGIN_MM`] at both extremities.
    pub spans: Vec<Span>,
    /// Point nodes (switches, springs) the claim runs through or comes within the margin of.
    pub points: Vec<NodeId>,
    /// Its route ahead.
    pub route: Route,
}

impl Claim {
    /// The claim of a train given device positions (nothing for a train taken off the track).
    pub fn of(layout: &Layout, devices: &[DevicePosition], train: &TrainState) -> Claim {
        if train.status == TrainStatus::Removed {
            let route = Route { spans: Vec::new(), nodes: Vec::new(), end: RouteEnd::Unbounded };
            return Claim { train: train.id, spans: Vec::new(), points: Vec::new(), route };
        }
        let route = route_ahead(layout, devices, train.body.front(layout));
        let mut spans: Vec<Span> = train.body.spans(layout).collect();
        spans.extend(route.spans.iter().map(|(s, _)| *s));
        let mut points: Vec<NodeId> = Vec::new();
        let is_point = |n: NodeId| matches!(layout.nodes[n].role, NodeRole::Point { .. });
        points.extend(train.body.inner_nodes(layout).chain(route.nodes.iter().copied()).filter(|&n| is_point(n)));
        // Widen the rear and the route's end, and note points within the margin of any span end.
        let tail_dir = train.body.segs.front().map(|x| x.1).expect("non-empty");
        widen(layout, &mut spans[0], tail_dir.flip());
        let last_dir = route.spans.last().map(|x| x.1).unwrap_or(tail_dir);
        let last = spans.len() - 1;
        widen(layout, &mut spans[last], last_dir);
        for sp in &spans {
            let seg = &layout.segments[sp.seg];
            if sp.lo < MARGIN_MM && is_point(seg.from) {
                points.push(seg.from);
            }
            if sp.hi > seg.length - MARGIN_MM && is_point(seg.to) {
                points.push(seg.to);
            }
        }
        points.sort_unstable();
        points.dedup();
        Claim { train: train.id, spans, points, route }
    }

    /// Whether two claims share track or a point.
    pub fn conflicts(&self, other: &Claim) -> bool {
        self.points.iter().any(|p| other.points.binary_search(p).is_ok())
            || self.spans.iter().any(|a| other.spans.iter().any(|b| a.overlaps(b)))
    }

    /// Whether the claim runs through or fouls `node`.
    pub fn holds_point(&self, node: NodeId) -> bool {
        self.points.binary_search(&node).is_ok()
    }
}

/// Widens a span by the margin at its end lying in direction `dir`, within its segment.
fn widen(layout: &Layout, span: &mut Span, dir: Dir) {
    let len = layout.segments[span.seg].length;
    match dir {
        Dir::Forward => span.hi = (span.hi + MARGIN_MM).min(len),
        Dir::Backward => span.lo = (span.lo - MARGIN_MM).max(0.0),
    }
}

/// The distance along a route from the front to the first span of `other` spans, if any lies on it.
pub fn gap_to(route: &Route, other: &[Span]) -> Option<f64> {
    let mut walked = 0.0;
    for (span, dir) in &route.spans {
        let hits = other.iter().filter(|o| o.overlaps(span) || touches(o, span));
        let first = match dir {
            Dir::Forward => hits.map(|o| o.lo.max(span.lo) - span.lo).reduce(f64::min),
            Dir::Backward => hits.map(|o| span.hi - o.hi.min(span.hi)).reduce(f64::min),
        };
        if let Some(d) = first {
            return Some(walked + d);
        }
        walked += span.hi - span.lo;
    }
    None
}

fn touches(a: &Span, b: &Span) -> bool {
    a.seg == b.seg && (a.lo == b.hi || a.hi == b.lo)
}
