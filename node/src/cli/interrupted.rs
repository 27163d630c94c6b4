//! Ctrl-C, SIGTERM or a closed terminal during a verb that leaves something on disk until it
//! ends (`liaise open`'s staging folder and the output folder it created): the verb's
//! clean-up runs, one line says so, and the process ends with [`EXIT_INTERRUPTED`].
//!
//! A verb arms the watcher with its clean-up while it works, and disarms it before a step that
//! must not be cut in half (linking the verified files into place): a signal that comes then
//! is ignored, and the step, which takes milliseconds, finishes. The clean-up runs under the
//! same lock that disarming takes, so the two never overlap.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};

/// Exit code after an interruption (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

type CleanUp = Box<dyn FnOnce() + Send>;

/// What a signal does now.
enum Phase {
    /// Runs these, in order, prints the message and ends the process.
    Armed(Vec<CleanUp>, String),
    /// Nothing: the verb is finishing a step that must not be cut short.
    Disarmed,
}

/// The watcher's state, shared with the verb.
#[derive(Clone)]
pub struct OnInterrupt(Arc<Mutex<Phase>>);

impl OnInterrupt {
    /// Starts watching for SIGINT, SIGTERM and SIGHUP; until disarmed, a signal runs the
    /// clean-ups added so far, prints `message` on stderr and ends the process.
    pub fn watch(message: String) -> Result<Self> {
        let state = Self(Arc::new(Mutex::new(Phase::Armed(Vec::new(), message))));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("cannot watch for Ctrl-C")?;
        // Registered here, on the caller's thread, so that no signal from now on is missed.
        let mut signals = runtime
            .block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                Ok::<_, std::io::Error>([
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                    signal(SignalKind::hangup())?,
                ])
            })
            .context("cannot watch for Ctrl-C")?;
        let watched = state.clone();
        std::thread::spawn(move || {
            loop {
                runtime.block_on(async {
                    let [interrupt, terminate, hangup] = &mut signals;
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                        _ = hangup.recv() => {}
                    }
                });
                watched.interrupted();
            }
        });
        Ok(state)
    }

    /// Adds a clean-up, run after those added before it.
    pub fn add(&self, clean_up: impl FnOnce() + Send + 'static) {
        if let Phase::Armed(clean_ups, _) = &mut *self.lock() {
            clean_ups.push(Box::new(clean_up));
        }
    }

    /// From now on a signal does nothing; waits for a clean-up already running (which ends
    /// the process). Before a step that must not be cut short, and before the verb cleans up
    /// after a failure itself (so that the two never run at once).
    pub fn disarm(&self) {
        *self.lock() = Phase::Disarmed;
    }

    /// On a signal: if armed, cleans up and exits, holding the lock so that the verb cannot
    /// disarm and go on meanwhile.
    fn interrupted(&self) {
        let mut phase = self.lock();
        if let Phase::Armed(clean_ups, message) = &mut *phase {
            // Whatever happens on the way, the process ends here: a clean-up or the message
            // that panics (stderr on a terminal that hung up fails with EIO, and `eprintln!`
            // panics on that) must not leave the verb running, unwatched, after its clean-up.
            for clean_up in clean_ups.drain(..) {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(clean_up));
            }
            let _ = writeln!(std::io::stderr(), "\n{message}");
            std::process::exit(EXIT_INTERRUPTED);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
