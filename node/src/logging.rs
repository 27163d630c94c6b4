//! Logs with `tracing`, to stderr, filtered by `RUST_LOG` (default: warnings, or info with -v).
//! Under systemd, whose journal reads stderr, each line starts with its syslog priority
//! (`<3>` for errors, `<4>` warnings, ...), so that `journalctl -p err` and alerting see it.

use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Sets up the global subscriber once. `verbose` counts `-v` flags.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,quinn=warn",
        2 => "debug,quinn=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let format = JournalPriority {
        inner: tracing_subscriber::fmt::format().with_target(false),
        enabled: stderr_is_journal(),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not as escape codes in the journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(format)
        .try_init();
}

/// What goes before a line the CLI writes to stderr itself at `level` (its `error:` and
/// `warning:` lines): the journal's priority under systemd, so that a node that fails to
/// start shows in `journalctl -p err`; nothing elsewhere.
pub fn stderr_prefix(level: Level) -> String {
    static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *JOURNAL.get_or_init(stderr_is_journal) {
        format!("<{}>", priority(level))
    } else {
        String::new()
    }
}

/// Whether stderr is the journal's stream: systemd sets `$JOURNAL_STREAM` to its
/// `device:inode`, which a redirected stderr no longer matches.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| stream.to_string_lossy() == format!("{}:{}", m.dev(), m.ino()))
}

/// The syslog priority of a level (RFC 5424: 3 error, 4 warning, 6 informational, 7 debug).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// The usual line, after `<priority>` when `enabled`.
struct JournalPriority<F> {
    inner: F,
    enabled: bool,
}

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.enabled {
            write!(writer, "<{}>", priority(*event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}
