//! The `bi-agent` binary: parse the command line, run the command, exit with
//! its code (0 ok, 1 runtime failure, 2 bad config or usage).
#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = bi_agent::cli::Cli::parse();
    bi_agent::cli::main(cli)
}
