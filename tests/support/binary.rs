//! The `plarail-twin` binary as a child process: run to its end, or serving on a free loopback port until the
//! test kills it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::layouts::repo;
use super::net::free_port;

/// Runs `plarail-twin ARGS` from the repository's folder to its end: whether it succeeded, and its output.
pub fn twin(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plarail-twin")).args(args).current_dir(repo("")).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// [`twin`] from async code: the command run on a blocking thread.
pub async fn twin_async(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || twin(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

/// Waits for a child process to end, on a blocking thread.
pub async fn exit_of(mut child: Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap()
}

/// A `plarail-twin` serving on a free loopback port, killed with -9 (no shutdown, no flush) and reaped when
/// dropped or [`TwinProcess::kill`]ed.
pub struct TwinProcess {
    /// The process.
    pub child: Child,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
}

impl TwinProcess {
    /// Starts `plarail-twin serve` (gRPC on a port of its own, warnings only) with `args` and waits until it
    /// answers `/api/state`.
    pub async fn serve(args: &[&str]) -> TwinProcess {
        TwinProcess::start(&["serve", "--grpc-listen", "127.0.0.1:0"], args).await
    }

    /// Starts `plarail-twin edge --broker BROKER` and waits until it serves the track online (its core's
    /// heartbeat came).
    pub async fn edge(broker: &str) -> TwinProcess {
        TwinProcess::edge_with(broker, &[]).await
    }

    /// [`TwinProcess::edge`] with more `args`.
    pub async fn edge_with(broker: &str, args: &[&str]) -> TwinProcess {
        let edge = TwinProcess::start(&["edge", "--broker", broker], args).await;
        edge.answers("/api/state", |s| s["online"] == true).await;
        edge
    }

    async fn start(role: &[&str], args: &[&str]) -> TwinProcess {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_plarail-twin"))
            .args(role)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--log", "warn"])
            .args(args)
            .current_dir(repo(""))
            .stdout(Stdio::null())
            .spawn()
            .expect("start plarail-twin");
        let twin = TwinProcess { child, port };
        twin.answers("/api/state", |_| true).await;
        twin
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `path` until its JSON satisfies `ok` (within 30 s); returns it.
    pub async fn answers(&self, path: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let started = Instant::now();
        loop {
            if let Ok(answer) = reqwest::get(format!("{}{path}", self.base())).await
                && answer.status() == reqwest::StatusCode::OK
                && let Ok(text) = answer.text().await
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && ok(&v)
            {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{path} never satisfied the test");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills it with -9 and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TwinProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
