//! Helpers shared by the cli_cmds tests: a connected repository in a temp dir.

// Each test binary uses some of these helpers.
#![allow(dead_code)]

use kopr_testkit::cli::CliEnv;

pub const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// The shared CLI test setup: repository, connection, source tree.
pub type Env = CliEnv;
