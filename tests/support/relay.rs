//! A TCP relay standing for the venue's uplink: it passes bytes between a listening port and a target until
//! told to cut the link (every connection closed, new ones closed at once), to black-hole it (connections kept
//! open but every byte dropped, as a half-open link: no reset, no data) or to restore it. A connection that
//! lived through a fault is closed when the fault ends: its bytes were lost, as the peers' would be.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The state of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Cut,
    BlackHole,
}

/// A relay on a loopback port (see the module documentation); stops with the test's runtime.
pub struct Relay {
    /// The port it listens on.
    pub port: u16,
    link: watch::Sender<Link>,
}

impl Relay {
    /// A relay to `127.0.0.1:target`, the link up.
    pub async fn to(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, _) = watch::channel(Link::Up);
        let watching = link.clone();
        let target: SocketAddr = ([127, 0, 0, 1], target).into();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let link = watching.subscribe();
                if *link.borrow() != Link::Cut {
                    tokio::spawn(pass(inbound, target, link));
                }
            }
        });
        Relay { port, link }
    }

    /// Cuts the link: every connection closed, new ones closed at once.
    pub fn cut(&self) {
        self.link.send_replace(Link::Cut);
    }

    /// Black-holes the link: connections stay open and every byte is dropped; new ones are taken and hear
    /// nothing.
    pub fn black_hole(&self) {
        self.link.send_replace(Link::BlackHole);
    }

    /// Restores the link.
    pub fn restore(&self) {
        self.link.send_replace(Link::Up);
    }
}

/// Passes bytes between `inbound` and `target` while the link is up; drops them while it is black-holed; closes
/// at a cut, and at the end of a black hole it lived through.
async fn pass(mut inbound: TcpStream, target: SocketAddr, mut link: watch::Receiver<Link>) {
    let mut holed = *link.borrow_and_update() == Link::BlackHole;
    let mut outbound = match holed {
        true => None,
        false => match TcpStream::connect(target).await {
            Ok(s) => Some(s),
            Err(_) => return,
        },
    };
    let (mut a, mut b) = ([0u8; 16384], [0u8; 16384]);
    loop {
        tokio::select! {
            changed = link.changed() => {
                if changed.is_err() || holed || *link.borrow_and_update() != Link::BlackHole {
                    return;
                }
                holed = true;
            }
            n = inbound.read(&mut a) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let (false, Some(out)) = (holed, outbound.as_mut())
                        && out.write_all(&a[..n]).await.is_err()
                    {
                        return;
                    }
                }
            },
            n = async { outbound.as_mut().unwrap().read(&mut b).await }, if outbound.is_some() => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !holed && inbound.write_all(&b[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}
