//! `plarail-twin`: the digital twin of the festival Plarail layout.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sim::layout::Layout;

#[derive(Parser)]
#[command(name = "plarail-twin", version, about = "Digital twin of the remotely operated Plarail festival layout")]
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
        Command::Layout { action: LayoutAction::Check { file } } => {
            let layout = Layout::load(&file).with_context(|| format!("{} is not a valid layout", file.display()))?;
            println!("{}: layout `{}` is valid", file.display(), layout.name);
            println!("{}", layout.summary());
            Ok(ExitCode::SUCCESS)
        }
    }
}
