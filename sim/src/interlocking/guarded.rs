//! A simulation behind its interlocking, stepped in one place: every request checked before it reaches the
//! track, stop rails raised behind passing trains after each step, and speed supervision every few steps.
//! The scenario runner and the desktop window's own twin both run the track this way.

use super::{Interlocking, Rejection, Request};
use crate::twin::{SimError, SimEvent, Simulation, TrackState};

/// Steps between two rounds of speed supervision.
pub const SUPERVISE_EVERY: u64 = 10;

/// Why a request did not reach the track.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The interlocking refused it.
    Rejected(Rejection),
    /// The simulation could not carry it out.
    Failed(SimError),
}

/// A simulation guarded by an interlocking.
pub struct Guarded {
    sim: Simulation,
    interlocking: Interlocking,
    steps: u64,
    /// The track's state as the interlocking last looked at it (its buffers kept from one look to the next).
    view: TrackState,
}

impl Guarded {
    /// Guards `sim` with `interlocking`.
    pub fn new(sim: Simulation, interlocking: Interlocking) -> Guarded {
        let view = sim.state();
        Guarded { sim, interlocking, steps: 0, view }
    }

    /// The simulation, to read.
    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    /// The interlocking.
    pub fn interlocking(&self) -> &Interlocking {
        &self.interlocking
    }

    /// Applies `request` without the interlocking (a baseline that had none).
    pub fn unguarded(&mut self, request: &Request, events: &mut Vec<SimEvent>) -> Result<(), SimError> {
        self.sim.apply(request.command(self.sim.layout()), events)
    }

    /// Checks `request` against the track as it is now and, if allowed, applies it.
    pub fn request(&mut self, request: &Request, events: &mut Vec<SimEvent>) -> Result<(), Refusal> {
        self.sim.state_into(&mut self.view);
        self.interlocking.check(request, &self.view).map_err(Refusal::Rejected)?;
        self.sim.apply(request.command(self.sim.layout()), events).map_err(Refusal::Failed)
    }

    /// One step, then the interlocking's protection over `events` (everything since they were last cleared);
    /// returns how many stop rails it raised.
    pub fn step(&mut self, events: &mut Vec<SimEvent>) -> usize {
        self.sim.step(events);
        let protections = self.interlocking.protect_after(events);
        let mut raised = protections.len();
        for cmd in protections {
            self.sim.apply(cmd, events).expect("protection commands name real devices");
        }
        if self.steps.is_multiple_of(SUPERVISE_EVERY) && self.interlocking.enabled() {
            self.sim.state_into(&mut self.view);
            for cmd in self.interlocking.supervise(&self.view) {
                raised += usize::from(matches!(cmd, crate::twin::SimCommand::SetDevice { .. }));
                self.sim.apply(cmd, events).expect("supervision commands name real trains and devices");
            }
        }
        self.steps += 1;
        raised
    }
}
