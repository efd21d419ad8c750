//! HAProxy (Debian's) on a free loopback port with `deploy/haproxy/haproxy.cfg` as shipped: only the addresses
//! substituted (its port, and the edges' for `edge1:8080`...).

use std::process::{Child, Command, Stdio};

use super::layouts::repo;
use super::net::{free_port, listening};

/// HAProxy in front of some edges, stopped when dropped.
pub struct Haproxy {
    child: Child,
    /// The visitors' port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts it in front of the gateways on `edges` (loopback ports), in the shipped file's order.
    pub fn before(edges: &[u16]) -> Haproxy {
        let port = free_port();
        let shipped = std::fs::read_to_string(repo("deploy/haproxy/haproxy.cfg")).unwrap();
        let mut servers = edges.iter();
        let text: Vec<String> = shipped
            .lines()
            .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                ["bind", _] => format!("    bind 127.0.0.1:{port}"),
                ["server", name, _, ref rest @ ..] => {
                    let edge = servers.next().expect("as many edges as the file has servers");
                    format!("    server {name} 127.0.0.1:{edge} {}", rest.join(" "))
                }
                _ => l.to_string(),
            })
            .collect();
        assert!(servers.next().is_none(), "more edges than the shipped file has servers");
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("haproxy.cfg");
        std::fs::write(&conf, text.join("\n") + "\n").unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy runs (apt-get install haproxy)");
        listening("haproxy", port);
        Haproxy { child, port, _dir: dir }
    }

    /// Its address.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
