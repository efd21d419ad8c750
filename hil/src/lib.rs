//! HIL bridge: the ESP32 boards protocol, virtual boards and live mode (not built yet; see issue 3).
