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
/// How long the nodes may take to stop after SIGTERM before the demo exits anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The process ids of the demo's running nodes, shared with the signal watcher; once it has
/// taken them, no node may be added (one started after that would be left running).
#[derive(Debug, Clone, Default)]
pub(super) struct NodePids(Arc<Mutex<(bool, Vec<u32>)>>);

impl NodePids {
    /// Records a started node; false (and the caller stops it) once the demo is stopping.
    pub(super) fn add(&self, pid: u32) -> bool {
        match self.0.lock() {
            Ok(mut guard) if !guard.0 => {
                guard.1.push(pid);
                true
            }
            _ => false,
        }
    }

    pub(super) fn clear(&self) {
        if let Ok(mut guard) = self.0.lock() {
            guard.1.clear();
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

/// Starts a thread that, on SIGINT or SIGTERM, stops the running nodes, removes `root`
/// (unless `keep`) and exits.
pub(super) fn on_signal_clean_up(root: PathBuf, keep: bool, nodes: NodePids) -> Result<()> {
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
        let pids = nodes.take();
        for pid in &pids {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let start = Instant::now();
        while pids.iter().any(|pid| running(*pid)) && start.elapsed() < STOP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(50));
        }
        if keep {
            eprintln!(
                "\ninterrupted: the nodes are stopped; the demo folder is kept: {}",
                root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&root);
            eprintln!("\ninterrupted: the nodes are stopped and the demo folder is removed");
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
