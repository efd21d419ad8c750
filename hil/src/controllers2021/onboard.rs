//! The 2021 onboard speed controller's behaviour as plain functions: what it does with a speed, and what the
//! motor does with the PWM duty it gets. No IO; the virtual controller ([`crate::controllers2021::virtual_controller`]) runs
//! this on top of the simulation.
//!
//! The 2021 controller (a Raspberry Pi on TAKAO) took `Speed.ControlSpeed(speed)` and set a PWM duty at 50 Hz
//! on the motor: speed 0 -> 0 %; 0 < speed <= 100 -> 60 % for 0.1 s (a kick that starts the motor), then
//! `17.5 + speed x 0.175` %. A negative speed or one over 100 changed nothing; it always answered `SUCCESS`.

use std::time::Duration;

/// Duty of the kick that starts the motor, percent.
pub const KICK_DUTY: f64 = 60.0;

/// How long the kick lasts.
pub const KICK: Duration = Duration::from_millis(100);

/// The duty below which the motor does not turn, percent; the top speed is reached at twice it.
pub const STALL_DUTY: f64 = 17.5;

/// The duty the controller holds for `speed` (after the kick), or `None` when it ignores the speed.
pub fn duty(speed: i32) -> Option<f64> {
    match speed {
        0 => Some(0.0),
        1..=100 => Some(STALL_DUTY + speed as f64 * STALL_DUTY / 100.0),
        _ => None,
    }
}

/// The duties the controller sets for `speed`, each with when it is set after the command arrives; `None`
/// when it ignores the speed.
pub fn plan(speed: i32) -> Option<Vec<(Duration, f64)>> {
    let hold = duty(speed)?;
    Some(if speed == 0 { vec![(Duration::ZERO, hold)] } else { vec![(Duration::ZERO, KICK_DUTY), (KICK, hold)] })
}

/// The speed in mm/s a train whose top speed is `max_mm_s` runs at with its motor at `duty` percent: nothing
/// up to [`STALL_DUTY`], then rising linearly to the top speed at twice it, and no faster above.
pub fn motor_mm_s(duty: f64, max_mm_s: u32) -> u32 {
    let share = ((duty - STALL_DUTY) / STALL_DUTY).clamp(0.0, 1.0);
    (max_mm_s as f64 * share).round() as u32
}
