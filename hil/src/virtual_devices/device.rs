//! What every virtual device (a 2021 servo board, a speed controller, a 2023 board) shares: where it sends what
//! it does to the simulation, and where it listens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where virtual devices send what they do to the simulation: normally into the simulation thread's request
/// channel.
pub type SimSink = Arc<dyn Fn(sim::twin::SimCommand) + Send + Sync>;

/// Where a virtual board or controller listens: where `listen` says (by the board's name or layout address),
/// else on `127.0.0.1` with a port chosen by the system.
pub(crate) async fn listen(
    listen: &HashMap<String, SocketAddr>,
    board: &sim::layout::Board,
) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let want = listen.get(&board.name).or_else(|| listen.get(&board.address)).copied();
    let listener = tokio::net::TcpListener::bind(want.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
