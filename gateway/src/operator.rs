//! Operator actions, behind the operator token: the festival live-mode toggle, emergency stop, reset to the
//! initial state, the operation, and in live mode with 2023 hardware a pass detector out of service (or back)
//! and a train placed in a block. Visitors need no login; operators send the token with each action. Plain functions: the
//! track's side (`crate::local`) carries the actions out.

use hil::track::{Outcome, SwitchError, SwitchReport};
use sim::interlocking::{Request, on_scale};
use sim::layout::{DeviceKind, Layout, OnOff};
use sim::twin::Mode;
use subtle::ConstantTimeEq;

use wire::v2::OperatorAction as Action;

/// The fewest characters an operator token may have: a short token is guessed (and an empty one would make
/// every visitor who sends `""` an operator).
pub const MIN_TOKEN_CHARS: usize = 16;

/// Whether `token` may be the operator token; else why not.
pub fn usable_token(token: &str) -> Result<(), String> {
    if token.trim() != token {
        return Err("the operator token must not begin or end with spaces".into());
    }
    let n = token.chars().count();
    if n < MIN_TOKEN_CHARS {
        return Err(format!(
            "the operator token is {n} characters long; it needs at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 16`)"
        ));
    }
    Ok(())
}

/// Whether `given` is the operator token, compared in constant time. With no token configured, nothing is.
pub fn authorised(configured: Option<&str>, given: &str) -> bool {
    configured.is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())))
}

/// The operation an action sets (`manual`, `auto`, `mixed`; manual for any other action).
pub fn operation(action: &Action) -> sim::auto::Operation {
    match action {
        Action::Auto => sim::auto::Operation::Auto,
        Action::Mixed => sim::auto::Operation::Mixed,
        _ => sim::auto::Operation::Manual,
    }
}

/// The mode an action switches to, and whether it switches even with boards not answering.
pub fn switch(action: &Action) -> (Mode, bool) {
    (if *action == Action::Sim { Mode::Sim } else { Mode::Live }, *action == Action::LiveForce)
}

/// What a switch of mode did, in words, or why it was not done.
pub fn switched(result: Result<SwitchReport, SwitchError>) -> Result<String, String> {
    match result {
        Ok(report) => {
            let checked: Vec<String> = report
                .checked
                .iter()
                .map(|(name, addr, alive)| format!("{name} at {addr} {}", if *alive { "answers" } else { "DOWN" }))
                .collect();
            Ok(format!("mode {:?}; checked: {}", report.mode, checked.join(", ")))
        }
        Err(SwitchError::Unhealthy(down)) => Err(format!("not switched: boards not answering: {}", down.join(", "))),
        Err(SwitchError::Unsupported(why)) => Err(format!("not switched: {why}")),
    }
}

/// The commands an emergency stop or a reset is made of, in the order they are carried out (none for the
/// switches of mode or operation).
pub fn requests(layout: &Layout, mode: Mode, action: &Action) -> Vec<Request> {
    let stop_rails = |state: Option<OnOff>| -> Vec<Request> {
        (0..layout.devices.len())
            .filter(|&d| layout.devices[d].kind == DeviceKind::StopRail)
            .filter(|&d| state.is_none_or(|s| layout.devices[d].initial == s))
            .map(|device| Request::Device { device, state: OnOff::On })
            .collect()
    };
    match action {
        Action::Live
        | Action::LiveForce
        | Action::Sim
        | Action::Manual
        | Action::Auto
        | Action::Mixed
        | Action::DetectorOutOfService(_)
        | Action::DetectorInService(_)
        | Action::PlaceTrain { .. } => Vec::new(),
        Action::EmergencyStop => {
            let mut requests = stop_rails(None);
            requests.extend(settable(layout, mode).map(|train| Request::Speed { train, speed: 0 }));
            requests
        }
        Action::Reset => {
            // Raise first, then set switches, then lower what starts lowered: each step keeps the track safe.
            let mut requests = stop_rails(Some(OnOff::On));
            requests.extend(
                (0..layout.devices.len())
                    .filter(|&d| layout.devices[d].kind == DeviceKind::Switch)
                    .map(|device| Request::Device { device, state: layout.devices[device].initial }),
            );
            requests.extend(
                (0..layout.devices.len())
                    .filter(|&d| {
                        layout.devices[d].kind == DeviceKind::StopRail && layout.devices[d].initial == OnOff::Off
                    })
                    .map(|device| Request::Device { device, state: OnOff::Off }),
            );
            requests.extend(
                settable(layout, mode)
                    .map(|train| Request::Speed { train, speed: on_scale(layout, train, layout.trains[train].speed) }),
            );
            requests
        }
    }
}

/// The trains whose speed can be set: every one in sim mode; in live mode those with an onboard controller
/// (the others run at their own speed, and only stop rails stop them).
fn settable(layout: &Layout, mode: Mode) -> impl Iterator<Item = usize> + '_ {
    (0..layout.trains.len()).filter(move |&t| mode != Mode::Live || layout.trains[t].controller.is_some())
}

/// What an emergency stop or reset did: `Ok` when every command was applied, else the list of what was not.
pub fn summarise(action: &Action, layout: &Layout, outcomes: &[(Request, Outcome)]) -> Result<String, String> {
    let what = if *action == Action::Reset { "reset" } else { "emergency stop" };
    let total = outcomes.len();
    let problems: Vec<String> = outcomes
        .iter()
        .filter_map(|(r, outcome)| {
            let target = match *r {
                Request::Device { device, .. } => &layout.devices[device].name,
                Request::Speed { train, .. } => &layout.trains[train].name,
            };
            match outcome {
                Outcome::Applied => None,
                Outcome::Rejected(x) => Some(format!("{target}: {}", x.message)),
                Outcome::Failed(reason) => Some(format!("{target}: {reason}")),
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(format!("{what}: {total} commands applied"))
    } else {
        Err(format!("{what}: {} of {total} commands not applied: {}", problems.len(), problems.join("; ")))
    }
}
