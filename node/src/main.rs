//! `liaise`: send, receive and verify sealed case documents between agencies.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// The exit code after a reader closed our standard output (128 + SIGPIPE, as shells report
/// a process that SIGPIPE ended).
const EXIT_BROKEN_PIPE: u8 = 141;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = liaise_node::cli::Cli::parse();
    liaise_node::logging::init(cli.log_verbosity());
    // A closed standard output unwinds (running every clean-up on the way, e.g. the demo's)
    // and ends here.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| liaise_node::cli::run(cli)));
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            // One line a person can act on: the context chain, outermost first.
            let prefix = liaise_node::logging::stderr_prefix(tracing::Level::ERROR);
            eprintln!(
                "{prefix}error: {}",
                liaise_node::cli::disk_full::error_line(&err)
            );
            ExitCode::from(1)
        }
        Err(panic) if is_closed_stdout(panic_message(&*panic)) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(panic) if is_failed_stdout(panic_message(&*panic)) => {
            // E.g. a full disk behind `> out.json`: an error like any other, in one line.
            let cause = panic_message(&*panic)
                .trim_start_matches("failed printing to stdout: ")
                .to_owned();
            eprintln!("error: cannot write the output: {cause}");
            ExitCode::from(1)
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// `liaise inbox --json | head -1`: once `head` has read its line and gone, the next write to
/// standard output fails. Rust ignores SIGPIPE, so `println!` panics on that failure: a
/// backtrace for something that is not an error. That one panic is not reported; the command
/// stops quietly, as a program that SIGPIPE ends would. Any other failure to write standard
/// output (a full disk) becomes an `error:` line in `main`. Any other panic is reported as before.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_failed_stdout(panic_message(info.payload())) {
            report(info);
        }
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default()
}

fn is_closed_stdout(message: &str) -> bool {
    is_failed_stdout(message) && message.contains("Broken pipe")
}

fn is_failed_stdout(message: &str) -> bool {
    message.starts_with("failed printing to stdout")
}
