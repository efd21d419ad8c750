//! Gateway: the phone control page, 2021 protocols, gRPC and metrics (not built yet; see issue 4).
