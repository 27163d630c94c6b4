//! `liaise`: send, receive and verify sealed case documents between agencies.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = liaise_node::cli::Cli::parse();
    liaise_node::logging::init(cli.verbose);
    match liaise_node::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line a person can act on: the context chain, outermost first.
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
