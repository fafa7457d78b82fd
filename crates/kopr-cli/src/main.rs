//! `kopr`: Kopia's command line over the kopr repository.
//!
//! The command tree, flag names and environment variables follow Kopia's, so the commands of
//! Kopia's field guides run unchanged with `kopia` replaced by `kopr`.

mod app;
mod commands;
mod config;
mod progress;
mod storage;
mod units;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = app::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("ERROR: {msg}");
            ExitCode::FAILURE
        }
    }
}
