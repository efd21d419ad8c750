//! mosquitto (Debian's), started on a free loopback port: stock, telling its clients, or as the festival runs it.

use std::process::{Child, Command, Stdio};

use gateway::broker::connect::Broker;

use super::net::{free_port, listening};

/// A mosquitto on a loopback port, stopped when dropped.
pub struct Mosquitto {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Its configuration's folder, if it has one.
    _dir: Option<tempfile::TempDir>,
}

impl Mosquitto {
    /// Starts one on a free port.
    pub fn start() -> Mosquitto {
        Mosquitto::on(free_port())
    }

    /// Starts one on `port` and waits until it takes connections.
    pub fn on(port: u16) -> Mosquitto {
        Mosquitto::with(&["-p", &port.to_string()], port)
    }

    /// Starts one on a free port that tells its clients' comings and goings: its log's notices on
    /// `$SYS/broker/log/N` (`log_dest topic`), as a festival's broker is set up for the 2023 boards' presence.
    pub fn telling_clients() -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let text = format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest topic\nlog_type notice\n");
        std::fs::write(&conf, text).unwrap();
        let mut mosquitto = Mosquitto::with(&["-c", conf.to_str().unwrap()], port);
        mosquitto._dir = Some(dir);
        mosquitto
    }

    /// Starts the venue's broker as `deploy/mosquitto/venue.conf` ships it, bridged to the cloud broker at
    /// `127.0.0.1:cloud` (through a relay standing for the uplink): the addresses substituted, and no logins
    /// or TLS (those the secure broker's test covers).
    pub fn venue(cloud: u16) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let shipped = std::fs::read_to_string(super::layouts::repo("deploy/mosquitto/venue.conf")).unwrap();
        let logins = ["password_file", "acl_file", "remote_username", "remote_password", "bridge_cafile"];
        let text: Vec<String> = shipped
            .lines()
            .filter(|l| !logins.iter().any(|k| l.starts_with(k)))
            .map(|l| match l.split_whitespace().next() {
                Some("listener") => format!("listener {port} 127.0.0.1"),
                Some("address") => format!("address 127.0.0.1:{cloud}"),
                Some("allow_anonymous") => "allow_anonymous true".to_string(),
                Some("log_dest") => "log_dest none".to_string(),
                _ => l.to_string(),
            })
            .collect();
        let conf = dir.path().join("venue.conf");
        std::fs::write(&conf, text.join("\n")).unwrap();
        let mut mosquitto = Mosquitto::with(&["-c", conf.to_str().unwrap()], port);
        mosquitto._dir = Some(dir);
        mosquitto
    }

    /// Starts one with `args` that listens on `port`, and waits until it takes connections.
    fn with(args: &[&str], port: u16) -> Mosquitto {
        let child = Command::new("mosquitto")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (apt-get install mosquitto)");
        listening("mosquitto", port);
        Mosquitto { child, port, _dir: None }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker it is.
    pub fn broker(&self) -> Broker {
        Broker::parse(&self.url()).unwrap()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mosquitto as the festival runs one: TLS with a CA of its own, logins (`core`, `edge`, `board`), the ACL
/// shipped in `deploy/mosquitto/acl`, its log's notices on `$SYS/broker/log/N` as `deploy/mosquitto` has them,
/// and a plain listener for the 2023 boards on the venue's network.
pub struct SecureBroker {
    /// The broker itself (its `port` is the TLS listener's).
    pub mosquitto: Mosquitto,
    dir: tempfile::TempDir,
    /// The plain listener's port (the boards'; same logins and ACL).
    pub plain_port: u16,
}

impl SecureBroker {
    /// Starts one on free ports.
    pub fn start() -> SecureBroker {
        let dir = tempfile::tempdir().unwrap();
        let run = |program: &str, args: &[&str]| {
            let out = Command::new(program).args(args).current_dir(dir.path()).output().expect(program);
            assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let subject = |cn: &str| format!("/CN={cn}");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                &subject("twin test CA"),
            ],
        );
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                &subject("localhost"),
            ],
        );
        std::fs::write(dir.path().join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                "server.crt",
                "-extfile",
                "san.ext",
            ],
        );
        run("mosquitto_passwd", &["-b", "-c", "passwd", "core", "core-secret"]);
        run("mosquitto_passwd", &["-b", "passwd", "edge", "edge-secret"]);
        run("mosquitto_passwd", &["-b", "passwd", "board", "board-secret"]);
        let (port, plain_port) = (free_port(), free_port());
        let acl = crate::support::repo("deploy/mosquitto/acl");
        let d = dir.path().display();
        let conf = format!(
            // Started as root, mosquitto would drop to its own user, which cannot read this private directory.
            "user root\nper_listener_settings false\nallow_anonymous false\npassword_file {d}/passwd\nacl_file {}\n\
             log_dest topic\nlog_type notice\nlistener {plain_port} 127.0.0.1\n\
             listener {port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n",
            acl.display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mosquitto = Mosquitto::with(&["-c", &format!("{d}/mosquitto.conf")], port);
        SecureBroker { mosquitto, dir, plain_port }
    }

    /// The broker over TLS with a login.
    pub fn broker(&self, user: &str, password: &str) -> Broker {
        let mut b = Broker::parse(&format!("mqtts://localhost:{}", self.mosquitto.port)).unwrap();
        b.login = Some((user.into(), password.into()));
        b.ca_file = Some(self.dir.path().join("ca.crt"));
        b
    }
}
