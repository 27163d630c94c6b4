//! Group install of complete documents into the blob folder: one thread renames every file
//! queued while it was busy and then fsyncs the blob folder once, so many small documents
//! arriving together share one directory fsync instead of two or three each.
//!
//! A caller's file must already be complete and fsynced; its answer comes only after the
//! rename and the folder fsyncs are done, so a receipt sent after it is for durable bytes.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, anyhow};
use tokio::sync::oneshot;

use super::blobs::sync_dir;

/// The most files installed together.
pub const MAX_INSTALL_BATCH: usize = 256;

struct Job {
    complete: PathBuf,
    target: PathBuf,
    done: oneshot::Sender<Result<PathBuf, String>>,
}

/// A handle to the install thread of one blob folder: cheap to clone.
#[derive(Clone)]
pub struct Installer {
    jobs: mpsc::Sender<Job>,
}

impl fmt::Debug for Installer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Installer(..)")
    }
}

impl Installer {
    /// Starts the install thread for the blob folder `blobs`. It ends when every handle is
    /// dropped.
    pub fn start(blobs: PathBuf) -> Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("liaise-installer".into())
            .spawn(move || install_loop(&blobs, &rx))
            .context("cannot start the blob installer")?;
        Ok(Self { jobs })
    }

    /// Moves the complete, fsynced file `complete` to `target` (keeping an existing
    /// identical blob) in the next group; returns once the rename and the fsync of the blob
    /// folder are done.
    pub async fn install(&self, complete: PathBuf, target: PathBuf) -> Result<PathBuf> {
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                complete,
                target,
                done,
            })
            .map_err(|_| anyhow!("the blob installer has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("the blob installer has stopped"))?
            .map_err(|e| anyhow!(e))
    }
}

fn install_loop(blobs: &Path, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_INSTALL_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        install_batch(blobs, batch);
    }
}

/// Renames every file of the batch, then fsyncs the blob folder once. A failed rename fails
/// only its own job; a failed folder fsync fails every job whose rename it was to make
/// durable.
fn install_batch(blobs: &Path, batch: Vec<Job>) {
    let mut renamed = Vec::with_capacity(batch.len());
    for job in batch {
        let moved = if job.target.exists() {
            fs::remove_file(&job.complete).ok();
            Ok(())
        } else {
            fs::rename(&job.complete, &job.target)
                .map_err(|e| format!("cannot move a document into {}: {e}", job.target.display()))
        };
        match moved {
            Ok(()) => renamed.push(job),
            Err(e) => {
                let _ = job.done.send(Err(e));
            }
        }
    }
    if renamed.is_empty() {
        return;
    }
    // Only the new names must be durable. A source name (in `staging` or `incoming`) that
    // comes back after a crash is harmless: staging is emptied at start, and an incoming
    // partial of a document already held is answered with the stored receipt or swept.
    let synced = sync_dir(blobs).map_err(|e| format!("{e:#}"));
    for job in renamed {
        let _ = job.done.send(synced.clone().map(|()| job.target));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_installs_all_land_and_a_failed_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, staging) = (dir.path().join("blobs"), dir.path().join("staging"));
        fs::create_dir(&blobs).unwrap();
        fs::create_dir(&staging).unwrap();
        let installer = Installer::start(blobs.clone()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let src = staging.join(format!("f{i}"));
            fs::write(&src, format!("doc {i}")).unwrap();
            let installer = installer.clone();
            let target = blobs.join(format!("b{i}"));
            tasks.push(tokio::spawn(
                async move { installer.install(src, target).await },
            ));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let path = t.await.unwrap().unwrap();
            assert_eq!(fs::read_to_string(path).unwrap(), format!("doc {i}"));
        }
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
        // The same blob again: the copy is dropped, the blob kept.
        let again = staging.join("again");
        fs::write(&again, "doc 0").unwrap();
        let kept = installer
            .install(again.clone(), blobs.join("b0"))
            .await
            .unwrap();
        assert_eq!(fs::read_to_string(kept).unwrap(), "doc 0");
        assert!(!again.exists());
        // A file that is not there fails alone.
        let missing = installer
            .install(staging.join("missing"), blobs.join("bx"))
            .await;
        assert!(missing.is_err());
    }
}
