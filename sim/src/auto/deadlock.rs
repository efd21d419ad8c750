//! Deadlocks: trains waiting on each other in a cycle, followed and reported once they last.

use super::{Auto, AutoEvent};
use crate::layout::TrainId;

impl Auto {
    /// Follows the cycle of trains waiting on each other: found, reported once it has lasted, broken.
    pub(super) fn follow_cycle(&mut self, waits_for: &[Option<TrainId>], now: u64) -> Vec<AutoEvent> {
        let found = cycle(waits_for);
        let mut events = Vec::new();
        match (&mut self.cycle, found) {
            (Some((trains, since, reported)), Some(found)) if *trains == found => {
                if !*reported && now - *since >= self.config.deadlock_report_ms {
                    *reported = true;
                    events.push(AutoEvent::Deadlock { trains: trains.clone() });
                }
            }
            (current, found) => {
                if let Some((trains, _, true)) = current.take() {
                    events.push(AutoEvent::DeadlockBroken { trains });
                }
                *current = found.map(|f| (f, now, false));
            }
        }
        events
    }
}

/// The first cycle in a waits-for graph (each train waits for at most one), as its trains in ascending order.
pub(super) fn cycle(waits_for: &[Option<TrainId>]) -> Option<Vec<TrainId>> {
    for start in 0..waits_for.len() {
        let mut seen = vec![start];
        let mut at = start;
        while let Some(next) = waits_for[at] {
            if next == start {
                seen.sort_unstable();
                return Some(seen);
            }
            if seen.contains(&next) {
                break;
            }
            seen.push(next);
            at = next;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::cycle;

    #[test]
    fn no_cycle_in_a_chain_of_waits() {
        assert_eq!(cycle(&[Some(1), Some(2), None]), None);
        assert_eq!(cycle(&[None, None]), None);
    }

    #[test]
    fn a_cycle_is_found_as_its_trains_in_ascending_order() {
        assert_eq!(cycle(&[Some(2), None, Some(0)]), Some(vec![0, 2]));
        // Train 3 waits on the cycle 0 -> 1 -> 2 -> 0 but is not part of it.
        assert_eq!(cycle(&[Some(1), Some(2), Some(0), Some(0)]), Some(vec![0, 1, 2]));
    }

    #[test]
    fn a_train_waiting_into_a_cycle_it_is_not_in_finds_the_cycle_from_its_members() {
        // 0 waits on 1, 1 and 2 wait on each other: the cycle is {1, 2}.
        assert_eq!(cycle(&[Some(1), Some(2), Some(1)]), Some(vec![1, 2]));
    }
}
