//! HIL bridge: everything between the gateway and a track, a folder per hardware family:
//!
//! - [`boards2021`]: the 2021 HTTP servo boards and sensor boards (protocol, firmware, client, virtual board);
//! - [`controllers2021`]: the 2021 onboard speed controllers (gRPC, the controller's behaviour, virtual one);
//! - [`boards2023`]: the 2023 MQTT boards (protocol, firmware, virtual board, the twin's link, presence, broker);
//! - [`virtual_devices`]: the virtual devices served over a simulation (`plarail-twin boards`, tests);
//! - [`track`]: the one track interface, in sim or live mode, with board health, restoration of desired
//!   states, automatic operation, the live-mode toggle and the live mirror.

pub mod boards2021;
pub mod boards2023;
pub mod controllers2021;
pub mod track;
pub mod virtual_devices;
