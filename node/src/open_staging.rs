//! The private staging folders of `liaise open`, where sections are decrypted before they
//! have all verified, and the clean-up after an open that was killed.
//!
//! Each open holds an exclusive lock (`flock`) on its staging folder for as long as it runs;
//! the kernel releases it when the process ends, however it ends. A staging folder nobody
//! holds is left over from a killed open: the next open removes it, and a running node looks
//! for such folders every [`SWEEP_INTERVAL`]. So the plaintext of a killed open lasts
//! minutes, not the hour it took before. A folder younger than [`LOCK_GRACE`] is left alone
//! (an open between creating its folder and locking it). A held lock keeps a folder however
//! long its open runs; on a file system without locks, a folder goes once it is older than
//! [`STALE_AFTER`]. What the node cannot reach (under its systemd unit, output folders are
//! read-only to it) stays, with its link, for the next open to remove.
//!
//! Where the file system allows it, a section is decrypted into a file with no name at all
//! (`O_TMPFILE`), which is given its final name in the output folder only once everything
//! verified: a power cut or a kill mid-open then leaves no plaintext behind, not even for the
//! next open to find. Where it does not, the section goes to a named part file (`N.part`) in
//! the staging folder, and the clean-up below is what removes a killed open's plaintext.
//!
//! A staging folder may sit in a shared output folder, where other staff can rename and
//! replace entries. So every step after its creation goes through the open folder (a file
//! descriptor), never again through its path: parts are created in it, linked out of it and
//! removed from it by name relative to it. Clean-up removes only what a staging folder can
//! hold: a folder of this user's, mode 0700, holding nothing but `N.part` files. Nothing is
//! opened in a way that could block (a FIFO put in a staging folder's place).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::fsutil::create_private_dir;
use crate::home::Home;

/// How old an unlocked staging folder must be to count as left over.
pub const LOCK_GRACE: Duration = Duration::from_secs(60);
/// How old a staging folder must be to be removed where locks do not work.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);
/// How often a running node removes staging folders left by killed opens.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// What every staging folder's name starts with.
const PREFIX: &str = ".liaise-open-";

/// A staging folder in use, and the link to it under HOME/run if it is elsewhere.
#[derive(Debug)]
pub struct Staging {
    /// Where it is (for messages; never used to reach it again).
    pub dir: PathBuf,
    /// Its name in `parent`.
    name: PathBuf,
    /// The folder it was made in.
    parent: File,
    /// The folder itself, open and locked while this open runs.
    folder: File,
    link: Option<PathBuf>,
    /// The parts made without a name (`O_TMPFILE`), by section index: a descriptor of each,
    /// kept to give it its name when it is linked into place.
    anonymous: std::sync::Mutex<Vec<(usize, File)>>,
    /// Whether parts may be made without a name (the tests of named parts turn it off).
    unnamed_parts: bool,
}

/// Where the running process's open files can be named for `linkat` (an unnamed file is
/// linked into a folder through its entry there, as `open(2)` describes for `O_TMPFILE`).
const OWN_FDS: &str = "/proc/self/fd";

impl Staging {
    /// Creates (new, 0600, never through a link) the part file of section `index`: without a
    /// name where the file system allows it, else `N.part` in the staging folder.
    pub fn create_part(&self, index: usize) -> io::Result<File> {
        if let Some(file) = self.create_anonymous()? {
            let kept = file.try_clone()?;
            self.anonymous
                .lock()
                .map_err(|_| io::Error::other("staging state poisoned"))?
                .push((index, kept));
            return Ok(file);
        }
        let fd = rustix::fs::openat(
            &self.folder,
            part_name(index),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }

    /// An unnamed file (`O_TMPFILE`, 0600) in the staging folder, or `None` where they
    /// cannot be made and named there (see [`unnamed_files_work`]).
    fn create_anonymous(&self) -> io::Result<Option<File>> {
        if !self.unnamed_parts {
            return Ok(None);
        }
        match open_unnamed(&self.folder) {
            Ok(file) => Ok(Some(file)),
            Err(e) if unnamed_unsupported(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Links the part file of section `index` into the folder `out` as `name`; fails if
    /// `name` exists there.
    pub fn link_part(&self, index: usize, out: &File, name: &str) -> io::Result<()> {
        let anonymous = self
            .anonymous
            .lock()
            .map_err(|_| io::Error::other("staging state poisoned"))?;
        if let Some((_, file)) = anonymous.iter().find(|(i, _)| *i == index) {
            use std::os::fd::AsRawFd;
            let own = format!("{OWN_FDS}/{}", file.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                own.as_str(),
                out,
                name,
                AtFlags::SYMLINK_FOLLOW,
            )?;
            return Ok(());
        }
        rustix::fs::linkat(&self.folder, part_name(index), out, name, AtFlags::empty())?;
        Ok(())
    }

    /// Removes what it holds, the folder, and its link.
    pub fn remove(&self) {
        let _ = empty_folder(&self.folder);
        let _ = rustix::fs::unlinkat(&self.parent, &self.name, AtFlags::REMOVEDIR);
        if let Some(link) = &self.link {
            let _ = fs::remove_file(link);
        }
    }
}

/// An unnamed file (`O_TMPFILE`, 0600) in `folder`.
fn open_unnamed(folder: &File) -> io::Result<File> {
    let fd = rustix::fs::openat(
        folder,
        ".",
        OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Whether `e`, from [`open_unnamed`], means unnamed files are not made there: not by this
/// file system (EOPNOTSUPP) or kernel (EISDIR, EINVAL).
fn unnamed_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(rustix::io::Errno::from_raw_os_error),
        Some(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL)
    )
}

/// Whether unnamed files can be made in `folder` and then given a name there through
/// [`OWN_FDS`]: tried once, before anything is decrypted (and before an originator releases
/// a key share), with an empty file linked under a part file's name and removed again. A
/// sandbox that refuses either step (a seccomp filter, a `/proc` of another namespace) gets
/// named parts, not a failed open.
fn unnamed_files_work(folder: &File) -> bool {
    use std::os::fd::AsRawFd;
    if !Path::new(OWN_FDS).is_dir() {
        return false;
    }
    let Ok(probe) = open_unnamed(folder) else {
        return false;
    };
    let name = part_name(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
    let own = format!("{OWN_FDS}/{}", probe.as_raw_fd());
    let linked = rustix::fs::linkat(
        rustix::fs::CWD,
        own.as_str(),
        folder,
        name.as_str(),
        AtFlags::SYMLINK_FOLLOW,
    )
    .is_ok();
    if linked {
        let _ = rustix::fs::unlinkat(folder, name.as_str(), AtFlags::empty());
    }
    linked
}

/// Whether `liaise open` decrypts into unnamed files in the folder `dir` (for tests that check
/// which way an open went).
pub fn unnamed_files_supported(dir: &Path) -> bool {
    open_folder(dir).is_ok_and(|folder| unnamed_files_work(&folder))
}

fn part_name(index: usize) -> String {
    format!("{index}.part")
}

/// Whether `name` is one a part file has (`N.part`).
fn is_part_name(name: &[u8]) -> bool {
    name.strip_suffix(b".part")
        .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
}

/// Opens the folder `name` in `parent` without following a link or blocking, only if it is a
/// folder of `owner`'s with mode 0700.
fn open_own_folder(parent: &File, name: &OsStr, owner: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let folder = File::from(fd);
    let meta = folder.metadata()?;
    if !meta.is_dir() || meta.uid() != owner || meta.mode() & 0o777 != 0o700 {
        return Err(io::Error::other("not a staging folder"));
    }
    Ok(folder)
}

/// Opens the folder at `path` (for reading its entries by name).
fn open_folder(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// What [`empty_folder`] did.
#[derive(Debug, PartialEq, Eq)]
enum Emptied {
    /// It holds nothing now.
    Yes,
    /// A part file could not be removed (a read-only view of the file system, say).
    Failed,
    /// It holds something a staging folder never does: left as it is.
    Foreign,
}

/// Removes the part files in `folder`, if it holds nothing else.
fn empty_folder(folder: &File) -> Emptied {
    let Ok(names) = entry_names(folder) else {
        return Emptied::Failed;
    };
    if !names.iter().all(|n| is_part_name(n.as_bytes())) {
        return Emptied::Foreign;
    }
    let removed = names.iter().all(|name| {
        match rustix::fs::unlinkat(folder, name.as_os_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => true,
            Err(_) => false,
        }
    });
    if removed {
        Emptied::Yes
    } else {
        Emptied::Failed
    }
}

/// The names in `folder`, without `.` and `..`.
fn entry_names(folder: &File) -> io::Result<Vec<std::ffi::OsString>> {
    let mut dir = rustix::fs::Dir::read_from(folder)?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// A private staging folder for decrypted sections: under HOME/run when that is on the same
/// file system as the output folder `out` (opened already, at `out_dir`), so the plaintext
/// never sits in the output folder before it verified; else a hidden folder in the output
/// folder, with a link to it under HOME/run. Left-over ones from killed opens are removed
/// first, wherever they are (HOME/run is swept on every open).
pub fn staging_dir(home: &Home, out: &File, out_dir: &Path, in_out_dir: bool) -> Result<Staging> {
    let run = home.root().join("run");
    create_private_dir(&run)?;
    let run_folder = open_folder(&run).with_context(|| format!("cannot read {}", run.display()))?;
    // HOME/run is this user's own: its owner is who may be cleaned up after elsewhere.
    let run_meta = run_folder.metadata()?;
    let owner = run_meta.uid();
    let same_fs = out.metadata().is_ok_and(|m| m.dev() == run_meta.dev());
    // Group-readable files are made inside the output folder, so that they take its group
    // (a set-group-id staff folder's), which a link from elsewhere would not change.
    let in_run = same_fs && !in_out_dir;
    remove_left_over(&run_folder, owner, Some(&run));
    if !in_run {
        remove_left_over(out, owner, None);
    }
    let (parent, parent_path) = if in_run {
        (run_folder, run.clone())
    } else {
        (out.try_clone()?, out_dir.to_path_buf())
    };
    let name = PathBuf::from(format!(
        "{PREFIX}{}",
        crate::store::hex(&liaise_keys::random::random_bytes::<8>())
    ));
    let dir = parent_path.join(&name);
    rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700))
        .map_err(io::Error::from)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let folder = match private_folder(&parent, &name, owner) {
        Ok(folder) => folder,
        Err(e) => {
            let _ = rustix::fs::unlinkat(&parent, &name, AtFlags::REMOVEDIR);
            return Err(e).with_context(|| {
                format!(
                    "cannot make a private staging folder in {} (a file system that does not \
                     keep owners and modes?); give an --out-dir on the file system of {} or \
                     on one with Unix permissions",
                    parent_path.display(),
                    home.root().display()
                )
            });
        }
    };
    // Held until this process ends. Without locks (some network file systems) the folder is
    // only removed by age.
    let _ = folder.try_lock();
    let link = if in_run {
        None
    } else {
        // So that a killed open's plaintext is found and removed by the next open anywhere.
        let link = run.join(&name);
        fs::canonicalize(&dir)
            .and_then(|target| std::os::unix::fs::symlink(target, &link))
            .ok()
            .map(|()| link)
    };
    let unnamed_parts = unnamed_files_work(&folder);
    Ok(Staging {
        dir,
        name,
        parent,
        folder,
        link,
        anonymous: std::sync::Mutex::new(Vec::new()),
        unnamed_parts,
    })
}

/// The folder `name` just made in `parent`, opened: this user's, and 0700 (the umask may have
/// taken bits away, never added any; a file system without Unix modes fails here).
fn private_folder(parent: &File, name: &Path, owner: u32) -> io::Result<File> {
    if let Ok(folder) = open_own_folder(parent, name.as_os_str(), owner) {
        return Ok(folder);
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let folder = File::from(rustix::fs::openat(parent, name, flags, Mode::empty())?);
    if folder.metadata()?.uid() != owner {
        return Err(io::Error::other("the new folder is not this user's"));
    }
    folder.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let meta = folder.metadata()?;
    if meta.mode() & 0o777 != 0o700 {
        return Err(io::Error::other("its mode cannot be made 0700"));
    }
    Ok(folder)
}

/// Removes the staging folders killed opens left (see the module's documentation), from
/// HOME/run and, through its links, from the output folders they were in, where the node can
/// reach and write them (under the systemd unit, other folders are read-only to it: the next
/// open removes what it left there). For a running node.
pub fn sweep(home: &Home) {
    let run = home.root().join("run");
    if let Ok(folder) = open_folder(&run)
        && let Ok(meta) = folder.metadata()
    {
        remove_left_over(&folder, meta.uid(), Some(&run));
    }
}

/// What became of a staging folder looked at.
#[derive(Debug, PartialEq, Eq)]
enum LeftOver {
    /// It was left over and is gone now (or was gone already).
    Removed,
    /// An open still holds it, it is too young to tell, or it could not be removed (now).
    Kept,
    /// Not a staging folder of this user's: left as it is.
    NotOurs,
}

/// Removes the staging folder `name` in `parent` if a killed open left it (see the module's
/// documentation).
fn remove_if_left_over(parent: &File, name: &OsStr, owner: u32) -> LeftOver {
    let folder = match open_own_folder(parent, name, owner) {
        Ok(folder) => folder,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return LeftOver::Removed,
        Err(e) if e.raw_os_error().is_some() && !is_not_ours(&e) => return LeftOver::Kept,
        Err(_) => return LeftOver::NotOurs,
    };
    let Some(age) = folder
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
    else {
        return LeftOver::Kept;
    };
    // An open that runs holds the lock, however long it takes; where there are no locks, an
    // hour. The test lock is let go when `folder` is closed.
    let left = match folder.try_lock() {
        Ok(()) => age > LOCK_GRACE,
        Err(fs::TryLockError::WouldBlock) => false,
        Err(fs::TryLockError::Error(_)) => age > STALE_AFTER,
    };
    if !left {
        return LeftOver::Kept;
    }
    match empty_folder(&folder) {
        Emptied::Yes => {}
        Emptied::Failed => return LeftOver::Kept,
        Emptied::Foreign => return LeftOver::NotOurs,
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => LeftOver::Removed,
        Err(_) => LeftOver::Kept,
    }
}

/// Whether opening a supposed staging folder failed because the entry is something else
/// (a link, a file, a FIFO, another user's or a wider folder).
fn is_not_ours(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(rustix::io::Errno::from_raw_os_error),
        Some(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
    )
}

/// Removes the `.liaise-open-*` staging folders in `folder` that killed opens left. In
/// HOME/run (`private`, its path given), also those that its links point to elsewhere, and
/// then the links. Elsewhere (an output folder others may write to) links are never followed.
fn remove_left_over(folder: &File, owner: u32, private: Option<&Path>) {
    let Ok(names) = entry_names(folder) else {
        return;
    };
    for name in names {
        if !name.as_bytes().starts_with(PREFIX.as_bytes()) {
            continue;
        }
        let is_link = rustix::fs::statat(folder, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
            });
        if !is_link {
            remove_if_left_over(folder, &name, owner);
            continue;
        }
        let Some(run) = private else { continue };
        // A link this program made points to a staging folder by its full path.
        let target = fs::read_link(run.join(&name)).ok();
        let outcome = match target
            .as_deref()
            .and_then(|t| Some((t.parent()?, t.file_name()?)))
        {
            Some((dir, staging)) if staging.as_bytes().starts_with(PREFIX.as_bytes()) => {
                match open_folder(dir) {
                    Ok(dir) => remove_if_left_over(&dir, staging, owner),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => LeftOver::Removed,
                    // Out of this process's view or reach (the node under its unit): kept
                    // for an open to remove.
                    Err(_) => LeftOver::Kept,
                }
            }
            _ => LeftOver::NotOurs,
        };
        if outcome != LeftOver::Kept {
            let _ = rustix::fs::unlinkat(folder, name.as_os_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

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

    /// A staging folder for an open into `out`, as `liaise open` makes it where unnamed files
    /// cannot be made: with named part files, which a killed open leaves behind.
    fn staging_dir(home: &Home, out: &Path, in_out_dir: bool) -> Result<Staging> {
        let folder = File::open(out).unwrap();
        super::staging_dir(home, &folder, out, in_out_dir).map(|staging| Staging {
            unnamed_parts: false,
            ..staging
        })
    }

    #[test]
    fn unnamed_parts_leave_nothing_behind_and_get_their_name_only_when_linked() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let out_dir = root.path().join("out");
        fs::create_dir_all(&out_dir).unwrap();
        let out = File::open(&out_dir).unwrap();
        let staging = super::staging_dir(&home, &out, &out_dir, false).unwrap();
        write_part(&staging, 0, b"decrypted, not yet verified");
        write_part(&staging, 1, b"the annex");
        // Where the file system makes them (every Linux file system a home is likely on), the
        // parts have no name; the probe says so independently of the staging's own choice.
        let supported = unnamed_files_supported(&staging.dir);
        assert_eq!(
            staging.anonymous.lock().unwrap().len(),
            if supported { 2 } else { 0 }
        );
        if !supported {
            eprintln!("SKIPPED: no O_TMPFILE on this file system; named parts are tested below");
            return;
        }
        // Written, but nowhere to be seen: the folder holds no entry.
        assert_eq!(fs::read_dir(&staging.dir).unwrap().count(), 0);
        staging.link_part(1, &out, "annex.txt").unwrap();
        assert_eq!(fs::read(out_dir.join("annex.txt")).unwrap(), b"the annex");
        // Never over an existing name.
        assert!(staging.link_part(0, &out, "annex.txt").is_err());
        // Killed before the first was linked: nothing of it is left anywhere.
        let dir = staging.dir.clone();
        drop(staging);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(fs::read_dir(&out_dir).unwrap().count(), 1);
    }

    fn write_part(staging: &Staging, index: usize, bytes: &[u8]) {
        staging
            .create_part(index)
            .unwrap()
            .write_all(bytes)
            .unwrap();
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
        write_part(&killed, 0, b"decrypted");
        let (dir, link) = (killed.dir.clone(), killed.link.clone().unwrap());
        assert!(link.starts_with(home.root().join("run")));
        drop(killed);
        // Within the grace it is left alone by the next open...
        let next = staging_dir(&home, root.path(), false).unwrap();
        assert!(dir.join("0.part").exists());
        next.remove();
        // ... after it, it is gone, with its link, whichever folder the next open uses.
        age(&dir, "2 minutes ago");
        let next = staging_dir(&home, root.path(), false).unwrap();
        assert!(!dir.exists());
        assert!(fs::symlink_metadata(&link).is_err());
        next.remove();
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
    }

    #[test]
    fn an_open_still_running_keeps_its_staging_however_old_it_is() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let running = staging_dir(&home, root.path(), false).unwrap();
        write_part(&running, 0, b"decrypted");
        age(&running.dir, "2 minutes ago");
        sweep(&home);
        assert!(running.dir.join("0.part").exists(), "a locked folder went");
        // A slow open (a large section on slow storage) holds its lock past the hour.
        age(&running.dir, "2 hours ago");
        sweep(&home);
        assert!(
            running.dir.join("0.part").exists(),
            "an old locked folder went"
        );
        // Once it ends (killed), the folder goes.
        let dir = running.dir.clone();
        drop(running);
        sweep(&home);
        assert!(!dir.exists());
    }

    #[test]
    fn a_running_node_sweeps_what_a_killed_open_left_in_its_home() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let killed = staging_dir(&home, root.path(), false).unwrap();
        write_part(&killed, 0, b"decrypted");
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
        fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        fs::write(victim.join("0.part"), b"someone else's").unwrap();
        age(&victim, "2 hours ago");
        let planted = out.join(".liaise-open-fedcba9876543210");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        age(&planted, "2 hours ago");
        // A left-over staging folder of this user's own in the same folder.
        let stale = out.join(".liaise-open-00000000000000aa");
        fs::create_dir_all(&stale).unwrap();
        fs::set_permissions(&stale, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        age(&stale, "2 minutes ago");
        let next = staging_dir(&home, &out, true).unwrap();
        assert!(
            victim.join("0.part").exists(),
            "the planted link was followed"
        );
        assert!(!stale.exists(), "this user's left-over staging stays");
        next.remove();
    }

    #[test]
    fn a_folder_put_where_a_link_points_is_emptied_only_if_it_holds_parts_alone() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let out = root.path().join("staff");
        fs::create_dir_all(&out).unwrap();
        let killed = staging_dir(&home, &out, true).unwrap();
        let dir = killed.dir.clone();
        drop(killed);
        // Someone who can rename in the shared folder moves the staging folder away and puts
        // a private case folder of this user's in its place.
        fs::rename(&dir, out.join("moved")).unwrap();
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        fs::write(dir.join("case-17.pdf"), b"not a part").unwrap();
        age(&dir, "2 hours ago");
        sweep(&home);
        assert!(
            dir.join("case-17.pdf").exists(),
            "a case folder was emptied"
        );
    }

    #[test]
    fn a_fifo_in_a_staging_folders_place_does_not_hang_the_sweep() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let out = root.path().join("staff");
        fs::create_dir_all(&out).unwrap();
        let killed = staging_dir(&home, &out, true).unwrap();
        let dir = killed.dir.clone();
        drop(killed);
        fs::remove_dir(&dir).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(made.success());
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            sweep(&home);
            let next = staging_dir(&home, &out, true).unwrap();
            next.remove();
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(20)).is_ok(),
            "the sweep hung on a FIFO"
        );
    }

    #[test]
    fn parts_go_into_the_folder_made_even_if_its_path_is_taken_over() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path().join("home"));
        let out = root.path().join("staff");
        fs::create_dir_all(&out).unwrap();
        let victim = root.path().join("victim.txt");
        fs::write(&victim, b"untouched").unwrap();
        let staging = staging_dir(&home, &out, true).unwrap();
        // The folder is renamed away; one with a link to the victim takes its name.
        fs::rename(&staging.dir, out.join("moved")).unwrap();
        fs::create_dir(&staging.dir).unwrap();
        std::os::unix::fs::symlink(&victim, staging.dir.join("0.part")).unwrap();
        write_part(&staging, 0, b"plaintext");
        let out_dir = File::open(&out).unwrap();
        staging.link_part(0, &out_dir, "report.txt").unwrap();
        let placed = out.join("report.txt");
        assert!(fs::symlink_metadata(&placed).unwrap().is_file());
        assert_eq!(fs::read(&placed).unwrap(), b"plaintext");
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        // Removing it removes the folder it made (now "moved"), not what took its name.
        staging.remove();
        assert!(!out.join("moved").join("0.part").exists());
        assert!(staging.dir.join("0.part").is_symlink());
    }
}
