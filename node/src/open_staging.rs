//! The private staging folders of `liaise open`, where sections are decrypted before they
//! have all verified, and the clean-up after an open that was killed.
//!
//! Each open holds an exclusive lock (`flock`) on its staging folder for as long as it runs;
//! the kernel releases it when the process ends, however it ends. A staging folder nobody
//! holds is left over from a killed open: the next open removes it, and a running node looks
//! for such folders every [`SWEEP_INTERVAL`]. So the plaintext of a killed open lasts
//! minutes, not the hour it took before. A folder younger than [`LOCK_GRACE`] is left alone
//! (an open between creating its folder and locking it), and one older than [`STALE_AFTER`]
//! is removed whatever its lock says (a file system without locks).

use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::fsutil::create_private_dir;
use crate::home::Home;

/// How old an unlocked staging folder must be to count as left over.
pub const LOCK_GRACE: Duration = Duration::from_secs(60);
/// How old a staging folder must be to be removed even if it seems in use.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);
/// How often a running node removes staging folders left by killed opens.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// What every staging folder's name starts with.
const PREFIX: &str = ".liaise-open-";

/// A staging folder in use, and the link to it under HOME/run if it is elsewhere.
#[derive(Debug)]
pub struct Staging {
    /// The folder the sections are decrypted into.
    pub dir: PathBuf,
    link: Option<PathBuf>,
    /// The folder, open and locked while this open runs.
    _lock: Option<File>,
}

impl Staging {
    /// Removes the folder, with whatever it holds, and its link.
    pub fn remove(&self) {
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(link) = &self.link {
            let _ = fs::remove_file(link);
        }
    }
}

/// A private staging folder for decrypted sections: under HOME/run when that is on the same
/// file system as the output folder (so the plaintext never sits in the output folder before it
/// verified), else a hidden folder in the output folder, with a link to it under HOME/run.
/// Left-over ones from killed opens are removed first, wherever they are (HOME/run is swept
/// on every open).
pub fn staging_dir(home: &Home, out_dir: &Path, in_out_dir: bool) -> Result<Staging> {
    use std::os::unix::fs::MetadataExt;
    let run = home.root().join("run");
    create_private_dir(&run)?;
    let same_fs = fs::metadata(out_dir)
        .ok()
        .zip(fs::metadata(home.root()).ok())
        .is_some_and(|(a, b)| a.dev() == b.dev());
    // Group-readable files are made inside the output folder, so that they take its group
    // (a set-group-id staff folder's), which a link from elsewhere would not change.
    let parent = if same_fs && !in_out_dir {
        run.clone()
    } else {
        out_dir.to_path_buf()
    };
    remove_left_over(&run, StagingIn::Private);
    // HOME/run is this user's own: its owner is who may be cleaned up after elsewhere.
    if parent != run
        && let Ok(run_meta) = fs::metadata(&run)
    {
        remove_left_over(
            &parent,
            StagingIn::Shared {
                owner: run_meta.uid(),
            },
        );
    }
    let name = format!(
        "{PREFIX}{}",
        crate::store::hex(&liaise_keys::random::random_bytes::<8>())
    );
    let dir = parent.join(&name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // Held until this process ends. Without locks (some network file systems) the folder is
    // only removed by age.
    let lock = File::open(&dir).ok().filter(|f| f.try_lock().is_ok());
    let link = if parent == run {
        None
    } else {
        // So that a killed open's plaintext is found and removed by the next open anywhere.
        let link = run.join(&name);
        fs::canonicalize(&dir)
            .and_then(|target| std::os::unix::fs::symlink(target, &link))
            .ok()
            .map(|()| link)
    };
    Ok(Staging {
        dir,
        link,
        _lock: lock,
    })
}

/// Removes the staging folders killed opens left (see the module's documentation), from
/// HOME/run and, through its links, from the output folders they were in. For a running node.
pub fn sweep(home: &Home) {
    remove_left_over(&home.root().join("run"), StagingIn::Private);
}

/// Which folder left-over staging is cleaned up in.
#[derive(Debug, Clone, Copy)]
enum StagingIn {
    /// HOME/run, private to this user: links to staging folders elsewhere are followed.
    Private,
    /// An output folder others may write to (a staff folder): a link is never followed, and
    /// only folders of `owner` (this user) are removed.
    Shared { owner: u32 },
}

/// Whether the staging folder or link `entry` was left by an open that no longer runs:
/// older than [`STALE_AFTER`], or older than [`LOCK_GRACE`] and `dir` (the folder itself)
/// locked by no one.
fn left_over(entry: &fs::DirEntry, dir: &Path) -> bool {
    let Some(age) = entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
    else {
        return false;
    };
    age > STALE_AFTER || (age > LOCK_GRACE && unlocked(dir))
}

/// Whether no process holds the lock on staging folder `dir` (or it is gone). The test lock
/// is let go at once.
fn unlocked(dir: &Path) -> bool {
    match File::open(dir) {
        Ok(folder) => folder.try_lock().is_ok(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Removes `.liaise-open-*` entries in `folder` that killed opens left: staging folders, and,
/// in HOME/run, links to staging folders elsewhere with what they point to. A link or folder
/// planted in a shared output folder must not make this open delete someone else's files.
fn remove_left_over(folder: &Path, within: StagingIn) {
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if let StagingIn::Shared { owner } = within {
            use std::os::unix::fs::MetadataExt;
            let mine = entry
                .metadata()
                .is_ok_and(|m| m.is_dir() && m.uid() == owner);
            if !is_link && mine && left_over(&entry, &path) {
                let _ = fs::remove_dir_all(&path);
            }
            continue;
        }
        if is_link {
            let target = fs::read_link(&path).ok().filter(|target| {
                target
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX))
            });
            let Some(target) = target else {
                // Not a link this program makes: only the link goes.
                let _ = fs::remove_file(&path);
                continue;
            };
            if left_over(&entry, &target) {
                let _ = fs::remove_dir_all(&target);
                let _ = fs::remove_file(&path);
            }
        } else if left_over(&entry, &path) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Backdates `path` (not following a link) by `ago` ("2 hours ago").
    fn age(path: &Path, ago: &str) {
        let touched = std::process::Command::new("touch")
            .args(["-h", "-d", ago])
            .arg(path)
            .status()
            .unwrap();
        assert!(touched.success());
    }

    #[test]
    fn a_killed_opens_staging_elsewhere_is_removed_by_the_next_open() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let out = root.path().join("staff");
        fs::create_dir_all(&out).unwrap();
        // An open staging in the output folder, then killed: its lock goes, its parts and
        // link stay.
        let killed = staging_dir(&home, &out, true).unwrap();
        fs::write(killed.dir.join("0.part"), b"decrypted").unwrap();
        let (dir, link) = (killed.dir.clone(), killed.link.clone().unwrap());
        assert!(link.starts_with(home.root().join("run")));
        drop(killed);
        // Within the grace it is left alone by the next open...
        let next = staging_dir(&home, root.path(), false).unwrap();
        assert!(dir.exists());
        next.remove();
        // ... after it, it is gone, with its link, whichever folder the next open uses.
        age(&link, "2 minutes ago");
        let next = staging_dir(&home, root.path(), false).unwrap();
        assert!(!dir.exists());
        assert!(fs::symlink_metadata(&link).is_err());
        next.remove();
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
    }

    #[test]
    fn an_open_still_running_keeps_its_staging_for_up_to_an_hour() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let running = staging_dir(&home, root.path(), false).unwrap();
        fs::write(running.dir.join("0.part"), b"decrypted").unwrap();
        age(&running.dir, "2 minutes ago");
        sweep(&home);
        assert!(running.dir.join("0.part").exists(), "a locked folder went");
        // Past the hour it goes whatever its lock says.
        age(&running.dir, "2 hours ago");
        sweep(&home);
        assert!(!running.dir.exists());
    }

    #[test]
    fn a_running_node_sweeps_what_a_killed_open_left_in_its_home() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let killed = staging_dir(&home, root.path(), false).unwrap();
        fs::write(killed.dir.join("0.part"), b"decrypted").unwrap();
        let dir = killed.dir.clone();
        assert!(dir.starts_with(home.root().join("run")));
        drop(killed);
        age(&dir, "2 minutes ago");
        sweep(&home);
        assert!(!dir.exists());
    }

    #[test]
    fn a_link_planted_in_a_shared_output_folder_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let out = root.path().join("staff");
        fs::create_dir_all(&out).unwrap();
        // Another user's open in progress elsewhere, and a backdated link to it planted in
        // the shared folder by a group member.
        let victim = root
            .path()
            .join("other")
            .join(".liaise-open-0123456789abcdef");
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("0.part"), b"someone else's").unwrap();
        let planted = out.join(".liaise-open-fedcba9876543210");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        age(&planted, "2 hours ago");
        // A left-over staging folder of this user's own in the same folder.
        let stale = out.join(".liaise-open-00000000000000aa");
        fs::create_dir_all(&stale).unwrap();
        age(&stale, "2 minutes ago");
        let next = staging_dir(&home, &out, true).unwrap();
        assert!(
            victim.join("0.part").exists(),
            "the planted link was followed"
        );
        assert!(!stale.exists(), "this user's left-over staging stays");
        next.remove();
    }
}
