//! What a visitor holds in mixed operation: stations and trains, until a quiet period passes.

use crate::interlocking::Request;
use crate::layout::{Layout, StationId, TrainId};

/// What a visitor holds in mixed operation.
pub trait Holds {
    /// Whether a visitor holds the devices of `station`.
    fn station(&self, station: StationId) -> bool;
    /// Whether a visitor holds `train`.
    fn train(&self, train: TrainId) -> bool;
}

/// What visitors hold in mixed operation: a station whose device a visitor commanded, a train whose speed a
/// visitor set, each until a time (`T`: simulation ms, or a wall-clock instant).
#[derive(Debug, Clone)]
pub struct VisitorHolds<T> {
    stations: Vec<Option<T>>,
    trains: Vec<Option<T>>,
}

impl<T: Copy + PartialOrd> VisitorHolds<T> {
    /// Nothing held on `layout`.
    pub fn new(layout: &Layout) -> VisitorHolds<T> {
        VisitorHolds { stations: vec![None; layout.stations.len()], trains: vec![None; layout.trains.len()] }
    }

    /// A visitor's `request`: its station or train is theirs until `until` (a request naming nothing the
    /// layout has holds nothing).
    pub fn commanded(&mut self, layout: &Layout, request: &Request, until: T) {
        match *request {
            Request::Device { device, .. } if device < layout.devices.len() => {
                self.stations[layout.devices[device].station] = Some(until);
            }
            Request::Speed { train, .. } if train < layout.trains.len() => self.trains[train] = Some(until),
            _ => {}
        }
    }

    /// What is held at `now`.
    pub fn at(&self, now: T) -> HeldAt<'_, T> {
        HeldAt { holds: self, now }
    }
}

/// [`VisitorHolds`] at one instant.
pub struct HeldAt<'a, T> {
    holds: &'a VisitorHolds<T>,
    now: T,
}

impl<T: Copy + PartialOrd> Holds for HeldAt<'_, T> {
    fn station(&self, station: StationId) -> bool {
        self.holds.stations[station].is_some_and(|until| self.now < until)
    }
    fn train(&self, train: TrainId) -> bool {
        self.holds.trains[train].is_some_and(|until| self.now < until)
    }
}

/// Nobody holds anything (automatic operation).
pub struct NoHolds;

impl Holds for NoHolds {
    fn station(&self, _: StationId) -> bool {
        false
    }
    fn train(&self, _: TrainId) -> bool {
        false
    }
}
