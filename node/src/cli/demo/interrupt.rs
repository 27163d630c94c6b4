//! Ctrl-C or SIGTERM during the demo: the nodes stop and the demo folder (demo keys and
//! stores) goes, as at the end of a normal run, instead of nodes left running in a folder
//! left behind.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Exit code after an interruption (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: i32 = 130;
/// How long the demo's processes may take to stop after SIGTERM before they are killed: a
/// node gives its running deliveries up to 3 s and its connections up to 2 s more, then
/// signs a last log checkpoint.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a killed process may take to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the demo keeps trying to remove its folder (a step that was running when the
/// signal came may still write a file into it).
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The process ids of the demo's running children (its nodes and the step command running
/// now), shared with the signal watcher; once it has taken them, none may be added (one
/// started after that would be left running).
#[derive(Debug, Clone, Default)]
pub(super) struct ChildPids(Arc<Mutex<(bool, Vec<u32>)>>);

impl ChildPids {
    /// Records a started child; false (and the caller stops it) once the demo is stopping.
    pub(super) fn add(&self, pid: u32) -> bool {
        match self.0.lock() {
            Ok(mut guard) if !guard.0 => {
                guard.1.push(pid);
                true
            }
            _ => false,
        }
    }

    /// Forgets a child that has ended (or is being stopped by the demo itself).
    pub(super) fn remove(&self, pid: u32) {
        if let Ok(mut guard) = self.0.lock() {
            guard.1.retain(|p| *p != pid);
        }
    }

    /// Whether an interruption is being cleaned up.
    pub(super) fn stopping(&self) -> bool {
        self.0.lock().map(|guard| guard.0).unwrap_or(true)
    }

    /// The nodes to stop; from now on none is added.
    fn take(&self) -> Vec<u32> {
        self.0
            .lock()
            .map(|mut guard| {
                guard.0 = true;
                std::mem::take(&mut guard.1)
            })
            .unwrap_or_default()
    }
}

/// Starts a thread that, on SIGINT or SIGTERM, stops the running nodes and step command,
/// removes `root` (unless `keep`) and exits.
pub(super) fn on_signal_clean_up(root: PathBuf, keep: bool, children: ChildPids) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot watch for Ctrl-C")?;
    // Registered now, on this thread, so a signal from here on is never missed.
    let (mut interrupt, mut terminate) = runtime
        .block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .context("cannot watch for Ctrl-C")?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        let pids = children.take();
        signal_all(&pids, "-TERM");
        if !wait_until_gone(&pids, STOP_TIMEOUT) {
            // A node that cannot stop in time (a busy machine) must not be left running,
            // nor write into the folder while it is removed.
            signal_all(&pids, "-KILL");
            if !wait_until_gone(&pids, KILL_TIMEOUT) {
                eprintln!("\ninterrupted: a node did not stop; see `ps` for `liaise node run`");
            }
        }
        if keep {
            eprintln!(
                "\ninterrupted: the nodes are stopped; the demo folder is kept: {}",
                root.display()
            );
        } else {
            if remove_folder(&root) {
                eprintln!("\ninterrupted: the nodes are stopped and the demo folder is removed");
            } else {
                eprintln!(
                    "\ninterrupted: the nodes are stopped; the demo folder could not be \
                     removed, delete it by hand: {}",
                    root.display()
                );
            }
        }
        std::process::exit(EXIT_INTERRUPTED);
    });
    Ok(())
}

/// Waits for the watcher, which is cleaning up after a signal, to end the process: a step
/// that failed because its nodes were stopped must not end the demo first with its own error.
pub(super) fn wait_for_clean_up() -> ! {
    loop {
        std::thread::park();
    }
}

/// Sends `signal` (as `kill` names it) to each process.
fn signal_all(pids: &[u32], signal: &str) {
    for pid in pids {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }
}

/// Waits up to `timeout` for every process to be gone; whether they all are.
fn wait_until_gone(pids: &[u32], timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        if !pids.iter().any(|pid| running(*pid)) {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes `root`, again while a file written at the same moment makes it fail; whether it
/// is gone.
fn remove_folder(root: &std::path::Path) -> bool {
    let start = Instant::now();
    loop {
        match std::fs::remove_dir_all(root) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) if start.elapsed() < REMOVE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => return false,
        }
    }
}

/// Whether process `pid` still exists (and is not a zombie waiting for the demo to reap it).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}
