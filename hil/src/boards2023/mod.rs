//! The 2023 MQTT boards (`ueckoken/plarail2023`: servo boards with block detectors on one broker).
//!
//! - [`protocol`]: their topics and words as plain data;
//! - [`firmware`]: the board firmware's state machine, both builds;
//! - [`virtual_board`]: that firmware on a broker, on top of the simulation;
//! - [`link`]: the twin's link to the boards' broker (deltas, retained desired states, block reports);
//! - [`presence`]: which clients a broker says are connected (mosquitto's log, EMQX's events);
//! - [`embedded_broker`]: rumqttd in this process, with presence;
//! - [`block_word`]: the hardware's word on the blocks beside the mirror's (faulty detectors, phantoms).

pub mod block_word;
pub mod embedded_broker;
pub mod firmware;
pub mod link;
pub mod presence;
pub mod protocol;
pub mod virtual_board;
