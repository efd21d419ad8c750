//! `plarail-twin`: the digital twin of the festival Plarail layout. Its modules, beside the commands here:
//!
//! - `serve`: `serve`'s settings (flags, environment, config file, defaults) and the server;
//! - `edge`: a public edge gateway over the core's broker;
//! - `load`: many WebSocket clients against a running gateway, or many WHEP viewers of one camera;
//! - `measure`: what the load tools share (durations, metrics read from `/metrics`);
//! - `recording`: a recorded session read back (a data directory or an export), and `journal export`;
//! - `replay`: a recorded session re-run against the simulation, compared, and what-if runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sim::layout::Layout;

mod edge;
mod load;
mod measure;
mod recording;
mod replay;
mod serve;

#[derive(Parser)]
#[command(name = "plarail-twin", version, about = "Digital twin of the remotely operated Plarail festival layout")]
struct Cli {
    /// What to do; without one, `serve`.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the twin (the default): the gateway over a track, simulated or live, on the 2021 layout by default.
    Serve(serve::ServeArgs),
    /// A public edge gateway: the page, WebSockets, API, metrics and gRPC of a track whose on-site core
    /// (`serve --broker`) publishes it to an MQTT broker.
    Edge(edge::EdgeArgs),
    /// Run the twin live: the 2021 layout at real time with festival visitors, events printed as they happen.
    Run {
        /// Scenario to run instead of the embedded festival hour on the 2021 layout.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Speed-up over real time.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Serve every board of a layout over HTTP on loopback, on top of a running simulation (virtual boards).
    Boards {
        /// Layout file, or an embedded layout by name: chofufes2021 (the default), chofufes2023.
        #[arg(long)]
        layout: Option<PathBuf>,
        /// Where a board listens, as NAME=HOST:PORT by board name or layout address (repeatable), e.g.
        /// `--board 192.168.100.107:80=127.0.0.1:19107`. Other boards take a free loopback port.
        #[arg(long = "board", value_parser = parse_listen)]
        boards: Vec<(String, std::net::SocketAddr)>,
        /// URL the virtual sensor boards post their reports to, e.g. http://127.0.0.1:8080/registerPosition.
        #[arg(long)]
        ingest: Option<String>,
        /// Speed-up over real time.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// The desktop window: the layout drawn live, operated through panels (needs `--features window`).
    Window(WindowArgs),
    /// Load a running gateway with many WebSocket clients: command latency, messages/s, lost updates, memory
    /// (`load video`: many WHEP viewers of a camera).
    Load(load::LoadArgs),
    /// Layout files.
    Layout {
        #[command(subcommand)]
        action: LayoutAction,
    },
    /// Scenarios: a layout, trains, simulated visitors and expectations.
    Scenario {
        #[command(subcommand)]
        action: ScenarioAction,
    },
    /// The journal a gateway keeps under --data-dir.
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Replay a recorded session (a data directory, or a `journal export` file) against the simulation, compare,
    /// and try what-ifs (`--layout`, `--operation`, `--no-interlocking`).
    Replay(replay::ReplayArgs),
    /// Benchmarks (build with --release for meaningful figures).
    Bench {
        #[command(subcommand)]
        action: BenchAction,
    },
}

/// Flags of `window`.
#[derive(clap::Args)]
struct WindowArgs {
    /// Attach to a running gateway (e.g. http://127.0.0.1:8080) instead of simulating the layout standalone.
    #[arg(long)]
    connect: Option<String>,
    /// Operator token for operator actions (emergency stop, live toggle) on an attached gateway.
    #[arg(long, env = "PLARAIL_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// Layout file, or an embedded layout by name: chofufes2021 (the default), chofufes2023.
    #[arg(long)]
    layout: Option<PathBuf>,
    /// Render `--frames` frames, save a PNG of the window here, and exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Frames rendered before the screenshot.
    #[arg(long, default_value_t = 60)]
    frames: u32,
    /// With --screenshot: then toggle this device as a click would, and save a second screenshot (FILE-after.png).
    #[arg(long, requires = "screenshot")]
    toggle: Option<String>,
    /// Play a recording back instead (a gateway's data directory, or a `journal export` file): play, pause and
    /// seek on its timeline, its refusals, divergences and accidents marked.
    #[arg(long, conflicts_with_all = ["connect", "layout"])]
    replay: Option<PathBuf>,
    /// With --replay: start this far into the recording (`90s`, `2m`).
    #[arg(long, requires = "replay", value_parser = measure::parse_duration)]
    at: Option<std::time::Duration>,
}

#[derive(Subcommand)]
enum JournalAction {
    /// Write the recorded entries between two times as JSON lines on standard output.
    Export(recording::ExportArgs),
}

#[derive(Subcommand)]
enum BenchAction {
    /// Real-time factor of the festival hour, and step cost with 8, 64 and 512 trains on a generated ring.
    Sim {
        /// The scenario whose real-time factor is measured.
        #[arg(long, default_value = "scenarios/festival-hour.toml")]
        scenario: PathBuf,
        /// Steps timed per train count.
        #[arg(long, default_value_t = 20_000)]
        steps: u64,
    },
}

#[derive(Subcommand)]
enum ScenarioAction {
    /// Run a scenario headless as fast as possible; exits non-zero when an expectation fails.
    Run {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum LayoutAction {
    /// Validate a layout file and print what it holds.
    Check {
        /// The layout file (TOML).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The festival hour, built into the binary (with the 2021 layout, `sim::layout::festival`) so that it runs from
/// anywhere.
const FESTIVAL_HOUR: &str = include_str!("../scenarios/festival-hour.toml");

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // No subcommand: `serve`, with its flags from the environment and their defaults.
    let command = match cli.command {
        Some(c) => c,
        None => Cli::parse_from(["plarail-twin", "serve"]).command.expect("serve was given"),
    };
    match command {
        Command::Serve(args) => serve::serve(args.settings()?),
        Command::Edge(args) => edge::run(args),
        Command::Window(args) => window(args),
        Command::Load(args) => Ok(if load::run(args)? { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Command::Run { scenario, speed } => run_live(scenario, speed),
        Command::Boards { layout, boards, ingest, speed } => serve_boards(layout, boards, ingest, speed),
        Command::Layout { action: LayoutAction::Check { file } } => {
            let layout = load_layout(Some(file.clone()))?;
            println!("{}: layout `{}` is valid", file.display(), layout.name);
            println!("{}", layout.summary());
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario { action: ScenarioAction::Run { file, quiet } } => scenario_run(&file, quiet),
        Command::Bench { action: BenchAction::Sim { scenario, steps } } => bench_sim(&scenario, steps),
        Command::Journal { action: JournalAction::Export(args) } => {
            Ok(if recording::export(args)? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Replay(args) => replay::run(args),
    }
}

fn scenario_run(file: &std::path::Path, quiet: bool) -> anyhow::Result<ExitCode> {
    let scenario = sim::scenario::Scenario::load(file)?;
    let spec = &scenario.spec;
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(spec.duration_s) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} sim-s ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(spec.name.clone());
    let report = sim::scenario::run_scenario(&scenario, None, |ms, _| bar.set_position(ms / 1000))?;
    bar.finish_and_clear();
    println!(
        "scenario {} ({} trains, interlocking {})",
        spec.name,
        scenario.layout.trains.len(),
        if spec.interlocking { "on" } else { "off" }
    );
    println!("{report}");
    let failures = scenario.failures(&report);
    if failures.is_empty() {
        println!("all expectations hold");
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn bench_sim(scenario: &std::path::Path, steps: u64) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        println!("note: this is a debug build; run `cargo run --release -- bench sim` for real figures");
    }
    let scenario = sim::scenario::Scenario::load(scenario)?;
    let report = sim::scenario::run_scenario(&scenario, None, |_, _| {})?;
    println!(
        "{}: {:.0} s simulated in {:.3} s: {:.0}x real time ({} commands, {} collisions)",
        scenario.spec.name,
        report.sim_ms as f64 / 1000.0,
        report.wall.as_secs_f64(),
        report.real_time_factor(),
        report.commands,
        report.collisions.len()
    );
    println!("step cost on a generated ring ({steps} steps of 10 ms each):");
    println!("  trains    us/step    ns/train-step");
    for trains in [8, 64, 512] {
        let layout = std::sync::Arc::new(sim::generated::ring(trains)?);
        let mut twin = sim::twin::Simulation::new(layout, 10)?;
        let mut events = Vec::new();
        let started = std::time::Instant::now();
        for _ in 0..steps {
            twin.step(&mut events);
            events.clear();
        }
        let per_step = started.elapsed().as_secs_f64() / steps as f64;
        println!("  {trains:>6} {:>10.2} {:>16.1}", per_step * 1e6, per_step * 1e9 / trains as f64);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_live(scenario: Option<PathBuf>, speed: f64) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(speed.is_finite() && speed > 0.0, "--speed must be a positive number, not {speed}");
    let scenario = match scenario {
        Some(path) => sim::scenario::Scenario::load(&path)?,
        None => sim::scenario::Scenario::from_texts(
            std::path::Path::new("scenarios/festival-hour.toml"),
            FESTIVAL_HOUR,
            sim::layout::festival::CHOFUFES2021,
        )?,
    };
    let layout = scenario.layout.clone();
    println!(
        "running {} on layout {} at {speed}x real time (interlocking {}); Ctrl-C stops",
        scenario.spec.name,
        layout.name,
        if scenario.spec.interlocking { "on" } else { "off" }
    );
    // Printing stops quietly if stdout closes (e.g. piped into `head`); the run goes on.
    let mut out = Some(std::io::stdout().lock());
    let report = sim::scenario::run_scenario(&scenario, Some(speed), |_, events| {
        for e in events.iter().filter(|e| !matches!(e.kind, sim::twin::EventKind::DeviceChanged { .. })) {
            if let Some(o) = out.as_mut()
                && writeln!(o, "{}", e.describe(&layout)).is_err()
            {
                out = None;
            }
        }
    })?;
    drop(out);
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// `NAME=IP:PORT`: where a virtual board listens.
fn parse_listen(s: &str) -> Result<(String, std::net::SocketAddr), String> {
    let (name, addr) = serve::parse_board(s)?;
    let addr = addr.parse().map_err(|e| format!("`{addr}` is not IP:PORT: {e}"))?;
    Ok((name, addr))
}

/// The layout file's text: the file's, an embedded layout's by its name (when no such file exists), or the
/// embedded 2021 layout's.
fn layout_file(path: Option<&std::path::Path>) -> anyhow::Result<String> {
    let Some(p) = path else { return Ok(sim::layout::festival::CHOFUFES2021.to_string()) };
    if let Some((_, text)) = sim::layout::festival::EMBEDDED.iter().find(|(name, _)| p.as_os_str() == *name)
        && !p.exists()
    {
        return Ok(text.to_string());
    }
    std::fs::read_to_string(p).with_context(|| {
        let names: Vec<&str> = sim::layout::festival::EMBEDDED.iter().map(|(n, _)| *n).collect();
        format!("cannot read the layout {} (a file, or one of the embedded layouts: {})", p.display(), names.join(", "))
    })
}

fn load_layout(path: Option<PathBuf>) -> anyhow::Result<Layout> {
    let text = layout_file(path.as_deref())?;
    Layout::from_toml(&text).with_context(|| match path {
        Some(p) => format!("{} is not a valid layout", p.display()),
        None => "the embedded 2021 layout".into(),
    })
}

fn serve_boards(
    layout: Option<PathBuf>,
    boards: Vec<(String, std::net::SocketAddr)>,
    ingest: Option<String>,
    speed: f64,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(speed.is_finite() && speed > 0.0, "--speed must be a positive number, not {speed}");
    let layout = std::sync::Arc::new(load_layout(layout)?);
    for (name, _) in &boards {
        serve::known_board(&layout, name)?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let rig = hil::virtual_devices::rig::Rig::start(layout.clone(), &boards.into_iter().collect(), speed).await?;
        println!("virtual boards of layout {} ({speed}x real time):", layout.name);
        let served = rig.boards.iter().map(|b| (&b.name, format!("http://{}", b.addr)));
        let controllers = rig.controllers.iter().map(|c| (&c.name, format!("gRPC {} (speed controller)", c.addr)));
        for (name, at) in served.chain(controllers) {
            let b = layout.boards.iter().find(|b| &b.name == name).expect("layout board");
            println!("  {name:<12} {:<22} -> {at}", b.address);
        }
        match &ingest {
            Some(url) => println!("sensor reports go to {url}"),
            None => println!("no --ingest URL: sensor reports are not sent"),
        }
        let counts =
            hil::virtual_devices::rig::post_sensor_reports(layout.clone(), rig.sim.outputs.clone(), ingest, |_| {});
        tokio::signal::ctrl_c().await?;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        println!("stopping: {} sensor reports accepted, {} failed", load(&counts.accepted), load(&counts.failed));
        rig.sim.stop();
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

#[cfg(feature = "window")]
fn window(args: WindowArgs) -> anyhow::Result<ExitCode> {
    let replay = match &args.replay {
        Some(source) => {
            let (scenario, marks) = replay::timeline(source)?;
            Some((scenario, marks, args.at.map_or(0, |d| d.as_millis() as u64)))
        }
        None => None,
    };
    let layout = match &replay {
        Some((scenario, ..)) => std::sync::Arc::new(scenario.layout.clone()),
        None => std::sync::Arc::new(load_layout(args.layout)?),
    };
    ::window::render::run(::window::render::Options {
        replay,
        layout,
        connect: args.connect,
        token: args.operator_token,
        screenshot: args.screenshot,
        frames: args.frames,
        toggle: args.toggle,
    })
    .map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "window"))]
fn window(_: WindowArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this build has no window: build with `--features window` (cargo run --release --features window -- window)"
    )
}
