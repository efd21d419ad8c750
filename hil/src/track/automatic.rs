//! Automatic operation on a running track: [`sim::auto::Auto`] looks at the track's state every
//! [`AUTO_EVERY`] (the simulation's, or in live mode the mirror's) and its requests are carried out through the
//! same path as a visitor's (the interlocking, then the boards or the simulation). The operation (manual, auto,
//! mixed) and what visitors hold are kept here: in `auto` a visitor's command is refused with the reason
//! "automatic operation"; in `mixed` a visitor who commands a station's device or a train holds that station or
//! train until a quiet period has passed, and automatic operation plans around it.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sim::auto::{Auto, AutoConfig, AutoEvent, Operation, TrainPlan, VisitorHolds};
use sim::interlocking::{RejectKind, Rejection, Request};
use sim::layout::Layout;

use super::{Inner, Outcome, TrackEvent, carry_out, try_state};

/// How often automatic operation looks at the track.
pub const AUTO_EVERY: Duration = Duration::from_millis(sim::auto::AUTO_EVERY_MS);

/// The operation and its bookkeeping.
pub(super) struct Automatic {
    operation: Operation,
    auto: Auto,
    quiet: Duration,
    holds: VisitorHolds<Instant>,
    plans: Vec<TrainPlan>,
}

impl Automatic {
    /// Automatic operation of `layout`, starting in `operation`; a visitor's hold lasts `quiet`.
    pub(super) fn new(layout: Arc<Layout>, operation: Operation, quiet: Duration) -> Automatic {
        Automatic {
            operation,
            holds: VisitorHolds::new(&layout),
            plans: vec![TrainPlan::default(); layout.trains.len()],
            auto: Auto::new(layout, AutoConfig::default()),
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

    /// One round on `state`: the requests to carry out, what happened, and the plans if they changed.
    fn tick(
        &mut self,
        state: &sim::twin::TrackState,
        interlocking: &sim::interlocking::Interlocking,
        now: Instant,
    ) -> (Vec<Request>, Vec<AutoEvent>, Option<Vec<TrainPlan>>) {
        if self.operation == Operation::Manual {
            return (Vec::new(), Vec::new(), None);
        }
        let (requests, events) = self.auto.tick(state, interlocking, &self.holds.at(now));
        let plans = self.auto.plans();
        let changed = (plans != self.plans).then(|| plans.clone());
        self.plans = plans;
        (requests, events, changed)
    }
}

/// The track's automatic operation, every [`AUTO_EVERY`] until the track is dropped: a round's requests are
/// carried out in order, and the rest of the round is dropped at the first one not applied (the next round
/// plans again from the track as it is).
pub(super) async fn run(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(AUTO_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.automatic.lock().expect("automatic").operation() == Operation::Manual {
            continue;
        }
        let Some(state) = try_state(&inner).await else { return };
        let (requests, events, plans) =
            inner.automatic.lock().expect("automatic").tick(&state, &inner.interlocking, Instant::now());
        if let Some(plans) = plans {
            let _ = inner.events.send(TrackEvent::Plans { time_ms: state.time_ms, plans });
        }
        for e in events {
            let _ = inner.events.send(TrackEvent::Auto(e));
        }
        for r in requests {
            let outcome = carry_out(&inner, r).await;
            let _ = inner.events.send(TrackEvent::AutoRequest { request: r, outcome: outcome.clone() });
            if let Outcome::Failed(_) = outcome {
                inner.automatic.lock().expect("automatic").auto.failed(&r, state.time_ms);
            }
            if outcome != Outcome::Applied {
                tracing::debug!("automatic operation: {r:?}: {outcome:?}");
                break;
            }
        }
    }
}
