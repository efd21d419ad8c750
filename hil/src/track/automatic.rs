//! Automatic operation on a running track: [`sim::auto::Auto`] looks at the track's state every
//! [`AUTO_EVERY`] (the simulation's, or in live mode the mirror's) and its requests are carried out through the
//! same path as a visitor's (the interlocking, then the boards or the simulation). The operation (manual, auto,
//! mixed) and what visitors hold are kept here: in `auto` a visitor's command is refused with the reason
//! "automatic operation"; in `mixed` a visitor who commands a station's device or a train holds that station or
//! train until a quiet period has passed, and automatic operation plans around it.
//!
//! The planner is off the visitors' path: it belongs to its task alone, and plans without any lock held; the
//! operation, the holds and the plans sit behind a mutex held only to read or set them, so a visitor's
//! command never waits for a round of planning.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sim::auto::{Auto, AutoConfig, Operation, TrainPlan, VisitorHolds};
use sim::interlocking::{RejectKind, Rejection, Request};
use sim::layout::Layout;

use super::command::carry_out;
use super::sim_link::try_state;
use super::{Inner, Outcome, TrackEvent};

/// How often automatic operation looks at the track.
pub const AUTO_EVERY: Duration = Duration::from_millis(sim::auto::AUTO_EVERY_MS);

/// The operation and what the doors read of automatic operation (the planner itself is its task's).
pub(super) struct Automatic {
    operation: Operation,
    quiet: Duration,
    holds: VisitorHolds<Instant>,
    plans: Vec<TrainPlan>,
}

impl Automatic {
    /// Automatic operation of `layout`, starting in `operation`; a visitor's hold lasts `quiet`.
    pub(super) fn new(layout: &Layout, operation: Operation, quiet: Duration) -> Automatic {
        Automatic {
            operation,
            holds: VisitorHolds::new(layout),
            plans: vec![TrainPlan::default(); layout.trains.len()],
            quiet,
        }
    }

    /// The operation.
    pub(super) fn operation(&self) -> Operation {
        self.operation
    }

    /// Sets the operation; whether it changed. In manual operation no train has a plan: the plans are cleared
    /// with the change (so that nobody sees manual operation with automatic plans in between).
    pub(super) fn set(&mut self, operation: Operation) -> bool {
        if operation == Operation::Manual {
            self.plans = vec![TrainPlan::default(); self.plans.len()];
        }
        std::mem::replace(&mut self.operation, operation) != operation
    }

    /// Each train's plan (none automatic in manual operation).
    pub(super) fn plans(&self) -> Vec<TrainPlan> {
        self.plans.clone()
    }

    /// A visitor's request: refused in `auto`; in `mixed` its station or train is the visitor's from `now`.
    pub(super) fn visitor(&mut self, layout: &Layout, request: &Request, now: Instant) -> Result<(), Rejection> {
        match self.operation {
            Operation::Manual => Ok(()),
            Operation::Auto => Err(Rejection {
                kind: RejectKind::Automatic,
                message: "the layout runs under automatic operation: the operator can switch to mixed or manual".into(),
            }),
            Operation::Mixed => {
                self.holds.commanded(layout, request, now + self.quiet);
                Ok(())
            }
        }
    }

    /// What a round plans around: the visitors' holds as they are now (`None` in manual operation: no round).
    fn round(&self) -> Option<VisitorHolds<Instant>> {
        (self.operation != Operation::Manual).then(|| self.holds.clone())
    }

    /// A round's plans: kept, and returned if they changed (dropped if the operation became manual meanwhile).
    fn planned(&mut self, plans: Vec<TrainPlan>) -> Option<Vec<TrainPlan>> {
        if self.operation == Operation::Manual || plans == self.plans {
            return None;
        }
        self.plans = plans.clone();
        Some(plans)
    }
}

/// The track's automatic operation, every [`AUTO_EVERY`] until the track is dropped: a round's requests are
/// carried out in order, and the rest of the round is dropped at the first one not applied (the next round
/// plans again from the track as it is).
pub(super) async fn run(inner: Weak<Inner>, layout: Arc<Layout>) {
    let mut auto = Auto::new(layout, AutoConfig::default());
    let mut tick = tokio::time::interval(AUTO_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let Some(holds) = inner.automatic.lock().expect("automatic").round() else { continue };
        let Some(state) = try_state(&inner).await else { return };
        let (requests, events) = auto.tick(&state, &inner.interlocking, &holds.at(Instant::now()));
        if let Some(plans) = inner.automatic.lock().expect("automatic").planned(auto.plans()) {
            let _ = inner.events.send(TrackEvent::Plans { time_ms: state.time_ms, plans });
        }
        for e in events {
            let _ = inner.events.send(TrackEvent::Auto(e));
        }
        for r in requests {
            let outcome = carry_out(&inner, r).await;
            let _ = inner.events.send(TrackEvent::AutoRequest { request: r, outcome: outcome.clone() });
            if let Outcome::Failed(_) = outcome {
                auto.failed(&r, state.time_ms);
            }
            if outcome != Outcome::Applied {
                tracing::debug!("automatic operation: {r:?}: {outcome:?}");
                break;
            }
        }
    }
}
