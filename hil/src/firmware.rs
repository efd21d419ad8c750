//! The servo board firmware's behaviour as a plain state machine: what a board does with a command.
//!
//! Virtual boards serve this over HTTP on top of the simulation; tests drive it directly.

use std::collections::BTreeMap;

use sim::layout::{BoardId, Layout, SERVO_PINS};

use crate::protocol::{Answer, BoardCommand, ServoOp};

/// The angle a servo is at after power-on (neither ON nor OFF for most devices, so unsafe until driven).
pub const POWER_ON_ANGLE: u32 = 90;

/// The pins the firmware reads hall sensors on (the ESP32's input-only pins, which cannot drive a servo). No
/// hall sensor was wired to a 2021 servo board (the sensors reported through sensor boards), so they read 0.
pub const HALL_PINS: [u32; 4] = [34, 35, 36, 39];

/// ON and OFF angles of a pin with no device attached.
const UNATTACHED: (u32, u32) = (90, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Servo {
    angle: u32,
    on: u32,
    off: u32,
}

/// What handling a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The answer to send.
    pub answer: Answer,
    /// The servo that moved, as (pin, new angle).
    pub moved: Option<(u32, u32)>,
}

/// One servo board: a servo on every usable pin, and a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServoBoard {
    servos: BTreeMap<u32, Servo>,
    boot_ms: u64,
    clock_offset: Option<i64>,
    last_update: u64,
}

impl ServoBoard {
    /// A board just powered on at `now_ms`; `attached` gives (pin, ON angle, OFF angle) of its devices.
    pub fn new(attached: impl IntoIterator<Item = (u32, u32, u32)>, now_ms: u64) -> ServoBoard {
        let mut servos: BTreeMap<u32, Servo> = SERVO_PINS
            .iter()
            .map(|&pin| (pin, Servo { angle: POWER_ON_ANGLE, on: UNATTACHED.0, off: UNATTACHED.1 }))
            .collect();
        for (pin, on, off) in attached {
            servos.insert(pin, Servo { angle: POWER_ON_ANGLE, on, off });
        }
        let mut board = ServoBoard { servos, boot_ms: now_ms, clock_offset: None, last_update: 0 };
        board.last_update = board.clock(now_ms);
        board
    }

    /// The board of the layout named `board`, with its devices attached.
    pub fn for_board(layout: &Layout, board: BoardId, now_ms: u64) -> ServoBoard {
        let attached = layout.devices.iter().filter(|d| d.board == board).map(|d| (d.pin, d.on_angle, d.off_angle));
        ServoBoard::new(attached, now_ms)
    }

    /// The board's clock in unix seconds (seconds since boot until the clock is set).
    pub fn clock(&self, now_ms: u64) -> u64 {
        let uptime = (now_ms.saturating_sub(self.boot_ms) / 1000) as i64;
        (uptime + self.clock_offset.unwrap_or(0)).max(0) as u64
    }

    /// The angle of the servo on `pin`.
    pub fn angle(&self, pin: u32) -> Option<u32> {
        self.servos.get(&pin).map(|s| s.angle)
    }

    /// Handles one command at `now_ms`.
    pub fn handle(&mut self, cmd: &BoardCommand, now_ms: u64) -> Outcome {
        let moved = match *cmd {
            BoardCommand::SetClock { unix } => {
                let uptime = (now_ms.saturating_sub(self.boot_ms) / 1000) as i64;
                self.clock_offset = Some(unix as i64 - uptime);
                None
            }
            // `GET` reads a hall sensor; any other operation on a hall pin finds no servo there.
            BoardCommand::Servo { pin, op } if HALL_PINS.contains(&pin) => {
                let answer = match op {
                    ServoOp::Get => Answer::Hall { status: 0, last_update: self.last_update },
                    _ => Answer::InvalidPin,
                };
                return Outcome { answer, moved: None };
            }
            BoardCommand::Servo { pin, op } => {
                let Some(servo) = self.servos.get_mut(&pin) else {
                    return Outcome { answer: Answer::InvalidPin, moved: None };
                };
                let angle = match op {
                    ServoOp::On => servo.on,
                    ServoOp::Off => servo.off,
                    ServoOp::Angle(a) => a,
                    // `GET` is for hall-sensor pins only: on a servo pin it is an unknown operation.
                    ServoOp::Get => return Outcome { answer: Answer::InvalidOperation, moved: None },
                };
                servo.angle = angle;
                Some((pin, angle))
            }
        };
        if moved.is_some() {
            self.last_update = self.clock(now_ms);
        }
        Outcome { answer: Answer::Ok { last_update: self.last_update }, moved }
    }

    /// Power-cycles the board at `now_ms`: every servo back to its power-on angle, the clock lost.
    pub fn reboot(&mut self, now_ms: u64) {
        for s in self.servos.values_mut() {
            s.angle = POWER_ON_ANGLE;
        }
        self.boot_ms = now_ms;
        self.clock_offset = None;
        self.last_update = 0;
    }
}
