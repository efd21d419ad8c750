//! An edge gateway's cameras: each camera's hub fed by one WHEP viewer of the same camera on the on-site core,
//! open only while someone watches it on this edge (an SFU cascade: the venue's uplink carries each watched
//! camera once per edge, however many viewers the edge has).
//!
//! Known limit: a keyframe request on the edge (a viewer joining, a loss) is not passed up to the core; a new
//! viewer waits for the core's next keyframe (at most 2 s for the simulated and board cameras, which the core
//! encodes).

use std::sync::Arc;
use std::time::Duration;

use crate::hub::Hub;
use crate::viewer::Client;

/// How long the upstream may send nothing before it is opened again.
pub const QUIET: Duration = Duration::from_secs(3);

/// Feeds `hub` from camera `hub.camera.id` on the core at `core` (`http://host:port`) while anyone watches,
/// binding `udp` for the upstream connection; for ever.
pub async fn run(hub: Arc<Hub>, core: String, udp: String) {
    // Whether the upstream failed last time (said once, not every second it stays down).
    let mut down = false;
    loop {
        if hub.viewers() == 0 {
            // Woken when viewers come or go; the timeout covers a notification between the check and the wait.
            let _ = tokio::time::timeout(Duration::from_millis(500), hub.changed.notified()).await;
            continue;
        }
        match relay(&hub, &core, &udp).await {
            Ok(()) => down = false,
            Err(e) => {
                if !std::mem::replace(&mut down, true) {
                    tracing::warn!(
                        camera = hub.camera.id,
                        "the core's camera at {core}: {e}; trying again every second"
                    );
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One upstream session: open, forward packets while anyone watches, close.
async fn relay(hub: &Arc<Hub>, core: &str, udp: &str) -> Result<(), String> {
    let mut client = Client::view(core, &hub.camera.id, udp).await.map_err(|e| e.to_string())?;
    if let Err(e) = client.connected(Duration::from_secs(10)).await {
        client.close().await;
        return Err(e.to_string());
    }
    let (tx, mut packets) = tokio::sync::mpsc::unbounded_channel();
    let receiving = tokio::spawn(client.packets(tx));
    let result = loop {
        if hub.viewers() == 0 {
            break Ok(());
        }
        match tokio::time::timeout(QUIET, packets.recv()).await {
            Ok(Some(packet)) => {
                hub.push(packet);
            }
            Ok(None) => break Err("the upstream session ended".to_string()),
            Err(_) => break Err(format!("nothing from upstream for {QUIET:?}")),
        }
    };
    receiving.abort();
    client.close().await;
    result
}
