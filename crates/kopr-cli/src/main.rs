//! `kopr`: Kopia's command line over the kopr repository.
//!
//! The command tree, flag names and environment variables follow Kopia's, so the commands of
//! Kopia's field guides run unchanged with `kopia` replaced by `kopr`.

mod alloc_count;
mod app;
mod commands;
mod config;
mod progress;
mod storage;
mod test_hooks;
mod units;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

#[global_allocator]
static ALLOCATOR: alloc_count::CountingAllocator = alloc_count::CountingAllocator;

fn main() -> ExitCode {
    alloc_count::tune_system_allocator();
    let cli = match app::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("ERROR: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go out as clap prints them; a bad command line is reported on one line,
/// as Kopia does (`kopr: error: …, try --help`), with clap's exit code.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // The message is the first paragraph (a list of missing flags follows on its own lines).
    let rendered = e.render().to_string();
    let msg = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    eprintln!("kopr: error: {msg}, try --help");
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}
