//! `kopr`: Kopia's command line over the kopr repository.
//!
//! The command tree, flag names and environment variables follow Kopia's, so the commands of
//! Kopia's field guides run unchanged with `kopia` replaced by `kopr`.

mod alloc_count;
mod app;
mod commands;
mod config;
mod gojson;
mod logging;
mod progress;
mod storage;
mod test_hooks;
mod units;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, FromArgMatches as _};

#[global_allocator]
static ALLOCATOR: alloc_count::CountingAllocator = alloc_count::CountingAllocator;

fn main() -> ExitCode {
    alloc_count::tune_system_allocator();
    quiet_output_failures();
    let matches = match app::Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let cli = match app::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // The command's words as clap names them (`snapshot create`), for the logs.
    let mut words = Vec::new();
    let mut m = &matches;
    while let Some((name, sub)) = m.subcommand() {
        words.push(name.to_string());
        m = sub;
    }
    let settings = match commands::log_settings(&cli.global) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kopr: error: {}, try --help", one_line(&e));
            return ExitCode::from(2);
        }
    };
    logging::init(&settings, &words.join("-"));
    tracing::debug!(target: "cli", "running {}", words.join(" "));
    let result = commands::run(cli, &words.join(" "));
    if let Err(e) = &result {
        tracing::error!(target: logging::QUIET_TARGET, "{}", one_line(e));
    }
    logging::close_repo_log();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if output_pipe_closed(&e) {
                die_of_sigpipe();
            }
            let msg = commands::read_only_refusal(&e).unwrap_or_else(|| one_line(&e));
            eprintln!("ERROR: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: a cause whose text an outer message
/// already includes (`open X: Not a directory` over `Not a directory`) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg.replace('\n', " ")
}

/// Output that cannot be written ends the process as Kopia's does, without a backtrace: a
/// closed pipe (`kopr snapshot ls | head -1`) kills it with SIGPIPE, silently (status 141 in a
/// shell), and any other failure to write stdout (`> /dev/full`) prints one error line and
/// exits with status 1. SIGPIPE itself stays ignored (Rust's default), so that a network peer
/// closing a socket is an error kopr reports, not a silent death; only a write to a standard
/// output whose reader is gone re-raises it.
fn quiet_output_failures() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(cause) = msg.strip_prefix("failed printing to stdout: ") {
            if stdout_reader_gone() {
                die_of_sigpipe();
            }
            eprintln!("ERROR: cannot write to standard output: {cause}");
            std::process::exit(1);
        }
        default_hook(info);
    }));
}

/// Whether standard output is a pipe whose reading end is closed (poll reports an error on
/// the writing end of such a pipe).
fn stdout_reader_gone() -> bool {
    #[cfg(unix)]
    {
        let mut p = libc::pollfd {
            fd: 1,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & libc::POLLERR != 0
    }
    #[cfg(not(unix))]
    false
}

/// Ends the process by SIGPIPE, as a program that does not ignore it would die.
fn die_of_sigpipe() -> ! {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition and raising the signal; nothing runs after.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// A command that failed because its output pipe closed (an `io::Error` of kind BrokenPipe
/// while standard output's reader is gone).
fn output_pipe_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) && stdout_reader_gone()
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
