//! `plarail-twin`: the digital twin of the festival Plarail layout.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sim::layout::Layout;

#[derive(Parser)]
#[command(
    name = "plarail-twin",
    version,
    about = "Digital twin of the remotely operated Plarail festival layout"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Layout {
            action: LayoutAction::Check { file },
        } => {
            let layout = Layout::load(&file)
                .with_context(|| format!("{} is not a valid layout", file.display()))?;
            println!("{}: layout `{}` is valid", file.display(), layout.name);
            println!("{}", layout.summary());
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario {
            action: ScenarioAction::Run { file, quiet },
        } => scenario_run(&file, quiet),
    }
}

fn scenario_run(file: &std::path::Path, quiet: bool) -> anyhow::Result<ExitCode> {
    let scenario = sim::scenario::Scenario::load(file)?;
    let spec = &scenario.spec;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(spec.duration_s)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} sim-s ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(spec.name.clone());
    let report = sim::scenario::run_scenario(&scenario, |ms| bar.set_position(ms / 1000))?;
    bar.finish_and_clear();
    println!(
        "scenario {} ({} trains, interlocking {})",
        spec.name,
        scenario.layout.trains.len(),
        if spec.interlocking { "on" } else { "off" }
    );
    println!("{report}");
    let failures = report.failures(&spec.expect);
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
