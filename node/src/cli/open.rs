//! `liaise open`: decrypt the sections of a sealed document this agency may read.
//!
//! Nothing is written under the output folder before everything has verified: sections are
//! decrypted into a private staging folder and moved into place only after the signature,
//! the commitments and the OpenSSH signatures have all checked out. File names come from the
//! sender and are sanitised; they never become paths outside the folder.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use liaise_keys::Timestamp;
use liaise_protocol::sanitize_file_name;
use serde_json::json;

use super::interrupted::OnInterrupt;
use super::sealing::{CountingReader, progress_bar};
use super::verify::resolve_document;
use super::{HomeArg, JsonArg, print_json};
use crate::fsutil::create_private_dir;
use crate::open_staging::{Staging, staging_dir};
use crate::passphrase::PassphraseSource;
use crate::store::held::ReadSeek;
use crate::trust::RosterSignerCheck;

#[derive(Debug, Args)]
pub struct OpenArgs {
    #[command(flatten)]
    home: HomeArg,
    /// A sealed file, or the id of a document in this node's store.
    document: String,
    /// The folder to write the readable sections into (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Also write NAME.sig beside each file, for `ssh-keygen -Y verify` (see `liaise roster allowed-signers`).
    #[arg(long)]
    with_signatures: bool,
    /// Make the files readable by the folder's group too (0640; a new --out-dir 0770, so that
    /// staff can delete them), for staff who open through the node's account and read under
    /// their own (deploy/README.md).
    #[arg(long)]
    group_readable: bool,
    /// Why you open it. Required for documents under originator control: the sender's node
    /// records it with your agency's name before it releases its key share; so does yours.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: OpenArgs, passphrase: &PassphraseSource) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let profile = home.profile()?;
    let now = Timestamp::now();
    let roster = home.require_roster(now)?;
    let held = resolve_document(&args.document, Some(&home)).inspect_err(|e| {
        if let Some(deleted) = e.downcast_ref::<crate::store::DeletedCopy>() {
            record_refused_deleted(&home, deleted, args.reason.as_deref());
        }
    })?;
    let mut input = held.open()?;
    // A forwarded document: the originator's consent, checked, then the sealed document.
    let forwarded = super::forward::read_consent(&mut input, &roster)?;
    let secrets = home.unlock(passphrase)?;
    // The output folder is ready before the originator is asked: a key share is released
    // and logged on both nodes only for an open that can write its files. An existing folder
    // is used as it is (never re-permissioned); a missing one is created private (for its
    // group too with --group-readable) and removed again if the open fails.
    let created_dir = !args.out_dir.exists();
    if created_dir && args.group_readable {
        create_group_dir(&args.out_dir)?;
    } else if created_dir {
        create_private_dir(&args.out_dir)?;
    } else if !args.out_dir.is_dir() {
        bail!(
            "--out-dir {} is not a folder; give a folder to write the sections into",
            args.out_dir.display()
        );
    }
    // The folder is opened once: files are linked into the folder opened here, even if its
    // path is made to point elsewhere meanwhile (by staff who can rename in its parent).
    let prepared = open_out_dir(&args.out_dir).and_then(|out| {
        probe_writable(&out, &args.out_dir)?;
        let staging = staging_dir(&home, &out, &args.out_dir, args.group_readable)?;
        Ok((out, staging))
    });
    let (out, staging) = match prepared {
        Ok((out, staging)) => (out, Arc::new(staging)),
        Err(e) => {
            if created_dir {
                let _ = fs::remove_dir(&args.out_dir);
            }
            return Err(e);
        }
    };
    let abandon = {
        let (staging, out_dir) = (Arc::clone(&staging), args.out_dir.clone());
        move || {
            staging.remove();
            if created_dir {
                let _ = fs::remove_dir(&out_dir);
            }
        }
    };
    // Ctrl-C from here on: the same clean-up as a failure, before any file is in place.
    let interrupt = OnInterrupt::watch(format!(
        "interrupted: no file was written to {}",
        args.out_dir.display()
    ))?;
    interrupt.add(abandon.clone());
    let share = match super::originator::obtain_share(
        &home,
        &roster,
        &secrets,
        (&args.document, &held),
        args.reason.as_deref(),
    ) {
        Ok(share) => share,
        Err(e) if e.is::<super::originator::OriginatorUnreachable>() => {
            interrupt.disarm();
            abandon();
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(super::originator::EXIT_TEMPFAIL));
        }
        Err(e) if e.is::<super::originator::NotAdmittedByOriginator>() => {
            interrupt.disarm();
            abandon();
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(super::originator::EXIT_NOT_ADMITTED));
        }
        Err(e) => {
            interrupt.disarm();
            abandon();
            return Err(e);
        }
    };

    if let Some(released) = &share {
        let (home, id, originator) = (
            home.clone(),
            released.document_id,
            released.originator.clone(),
        );
        let reason = args.reason.clone();
        interrupt.add(move || {
            record_unwritten(
                &home,
                &id,
                &originator,
                reason.as_deref(),
                &Interrupted.into(),
            );
        });
    }
    let result = open_into(
        &args,
        &Reader {
            me: &profile.agency,
            secrets: &secrets,
            share: share.as_ref().map(|released| &released.share),
            forwarded: forwarded.as_ref(),
        },
        &roster,
        now,
        input,
        &Destination {
            staging: &staging,
            out: &out,
            interrupt: &interrupt,
        },
    );
    let written = match result {
        Ok(written) => {
            staging.remove();
            written
        }
        Err(e) => {
            interrupt.disarm();
            abandon();
            // No entry or key for this agency may be a tampered entry: said as tampering.
            let e = if super::verify::not_for_us(&e) {
                super::verify::tampering(&args.document, &held, &roster).unwrap_or(e)
            } else {
                e
            };
            if let Some(released) = &share {
                record_unwritten(
                    &home,
                    &released.document_id,
                    &released.originator,
                    args.reason.as_deref(),
                    &e,
                );
            }
            return Err(e);
        }
    };
    let (doc, files) = written;
    // Offline documents open without the sender's node; the reason, if given, is recorded here.
    if share.is_none()
        && let Some(reason) = &args.reason
    {
        let entry = crate::log::NewLogEntry::new(crate::log::LogKind::Open)
            .doc(doc.info.document_id.0)
            .agency(doc.info.sender.clone())
            .reason(reason.as_str());
        if let Err(e) = crate::log::append_in_home(&home, entry) {
            eprintln!("warning: the open was not recorded in this node's log: {e:#}");
        }
    }
    if args.json.json {
        return print_json(&json!({
            "doc_id": doc.info.document_id.to_string(),
            "signer": doc.info.sender.as_str(),
            "signed_at": doc.info.created.to_rfc3339(),
            "forwarded_by": forwarded.as_ref().map(|c| c.forwarder.as_str()),
            "files": files.iter().map(|(section, file, sig)| json!({
                "section": section, "path": file, "signature": sig,
            })).collect::<Vec<_>>(),
            "unreadable_sections": unreadable(&doc),
        }));
    }
    match &forwarded {
        Some(consent) => println!(
            "Verified: signed by {} at {}, {}.",
            doc.info.sender,
            doc.info.created,
            super::forward::describe(consent)
        ),
        None => println!(
            "Verified: signed by {} at {}.",
            doc.info.sender, doc.info.created
        ),
    }
    for (section, file, sig) in &files {
        match sig {
            Some(sig) => println!("  {section}: {} (+ {})", file.display(), sig.display()),
            None => println!("  {section}: {}", file.display()),
        }
    }
    for name in unreadable(&doc) {
        println!("  {name}: not for {} (no key)", profile.agency);
    }
    Ok(ExitCode::SUCCESS)
}

/// What kind of failure `error` is, in words that name no file: the log is kept for good and
/// goes into evidence bundles, and the error's own text may hold a file name from inside the
/// document, which never leaves the reader's machine.
fn error_class(error: &anyhow::Error) -> &'static str {
    for cause in error.chain() {
        if cause.is::<Interrupted>() {
            return "interrupted";
        }
        if let Some(open) = cause.downcast_ref::<liaise_protocol::OpenError>() {
            return open.kind().as_str();
        }
        if let Some(tampered) = cause.downcast_ref::<super::verify::Tampered>() {
            return tampered.kind;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    "a file of that name exists in the output folder"
                }
                std::io::ErrorKind::StorageFull => "no space left on the output folder's disk",
                std::io::ErrorKind::PermissionDenied => "no permission to write the output folder",
                std::io::ErrorKind::NotFound => "the output folder is not there",
                _ => "the files could not be written",
            };
        }
    }
    "the key share or the files could not be used"
}

/// An open stopped by Ctrl-C or SIGTERM before its files were in place.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// Records in this node's log that an open of a copy it deleted (revoked, expired) was
/// refused: every open of a document, refused or not, is in the log.
fn record_refused_deleted(
    home: &crate::home::Home,
    deleted: &crate::store::DeletedCopy,
    reason: Option<&str>,
) {
    let mut entry = crate::log::NewLogEntry::new(crate::log::LogKind::Open)
        .doc(deleted.document_id)
        .detail(json!({
            "refused": "copy deleted",
            "deleted_at": Timestamp(deleted.at).to_rfc3339(),
            "deletion": deleted.reason,
        }));
    if let Ok(sender) = liaise_keys::AgencyId::new(&deleted.sender) {
        entry = entry.agency(sender);
    }
    if let Some(reason) = reason {
        entry = entry.reason(reason);
    }
    if let Err(e) = crate::log::append_in_home(home, entry) {
        eprintln!("warning: the refused open was not recorded in this node's log: {e:#}");
    }
}

/// Records in this node's log that an open whose key share the originator released (and
/// both nodes logged) wrote no file, and why (its kind, naming no file): without it the log
/// would show the release as the last word on that open.
pub(super) fn record_unwritten(
    home: &crate::home::Home,
    document_id: &liaise_protocol::DocumentId,
    originator: &liaise_keys::AgencyId,
    reason: Option<&str>,
    error: &anyhow::Error,
) {
    let mut entry = crate::log::NewLogEntry::new(crate::log::LogKind::Open)
        .doc(document_id.0)
        .agency(originator.clone())
        .detail(json!({
            "share": "released",
            "written": false,
            "error": error_class(error),
        }));
    if let Some(reason) = reason {
        entry = entry.reason(reason);
    }
    if let Err(e) = crate::log::append_in_home(home, entry) {
        eprintln!("warning: the failed open was not recorded in this node's log: {e:#}");
    }
}

type Written = (
    liaise_protocol::OpenedDocument,
    Vec<(String, PathBuf, Option<PathBuf>)>,
);

/// Who opens: the agency, its keys, and the originator share released for this open.
struct Reader<'a> {
    me: &'a liaise_keys::AgencyId,
    secrets: &'a liaise_keys::AgencySecrets,
    share: Option<&'a liaise_protocol::OriginatorShare>,
    forwarded: Option<&'a liaise_protocol::wire::ForwardConsentBody>,
}

/// Where an open writes: its staging folder, the output folder (open), and the watcher to
/// disarm before files are linked into place.
struct Destination<'a> {
    staging: &'a Staging,
    out: &'a File,
    interrupt: &'a OnInterrupt,
}

fn open_into(
    args: &OpenArgs,
    reader: &Reader<'_>,
    roster: &liaise_keys::roster::Roster,
    now: Timestamp,
    mut input: Box<dyn ReadSeek + '_>,
    into: &Destination<'_>,
) -> Result<Written> {
    // What is left to read (a forwarded document's consent was read already), for the
    // progress bar of a large open on a terminal.
    let start = input.stream_position()?;
    let left = input.seek(SeekFrom::End(0))?.saturating_sub(start);
    input.seek(SeekFrom::Start(start))?;
    let progress = progress_bar(left, "opening");
    let Destination {
        staging,
        out,
        interrupt,
    } = *into;
    let Reader {
        me,
        secrets,
        share,
        forwarded,
    } = *reader;
    let mut staged = Vec::new();
    let opener = liaise_protocol::Opener {
        me,
        keys: &secrets.encryption,
        signer: &RosterSignerCheck(roster),
        now,
        share,
        forwarded,
    };
    let opened = liaise_protocol::open_with(
        BufReader::with_capacity(
            1 << 20,
            CountingReader {
                inner: input,
                progress: progress.clone(),
            },
        ),
        &opener,
        |section| {
            let file = staging.create_part(usize::from(section.index))?;
            staged.push(section.index);
            Ok(BufWriter::with_capacity(1 << 20, file))
        },
    )
    .with_context(|| format!("cannot open {}", args.document));
    progress.finish_and_clear();
    let (doc, writers) = opened?;
    // Verified. Flush, then choose final names and refuse to overwrite anything.
    for writer in writers {
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        // On the open file, not its path, which could lead elsewhere by now.
        if args.group_readable {
            file.set_permissions(fs::Permissions::from_mode(0o640))?;
        }
        file.sync_all()?;
    }
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut plan = Vec::with_capacity(doc.sections.len());
    for (section, staged) in doc.sections.iter().zip(&staged) {
        let name = unique_name(
            &sanitize_file_name(&section.metadata.file_name),
            &section.name,
            &taken,
            args.with_signatures,
        );
        taken.insert(name.clone());
        if args.with_signatures {
            taken.insert(format!("{name}.sig"));
        }
        let sig = args.with_signatures.then(|| format!("{name}.sig"));
        plan.push((
            section.name.clone(),
            *staged,
            name,
            sig,
            section.sshsig_armored.clone(),
        ));
    }
    // Link each file into place without replacing anything; on any failure, take back what
    // was placed, so the folder gains all of the files or none. A signal from now on is not
    // allowed to cut this short.
    interrupt.disarm();
    let mut placed: Vec<String> = Vec::new();
    let mut done = Vec::with_capacity(plan.len());
    let shown = |name: &str| args.out_dir.join(name);
    let outcome = (|| -> Result<()> {
        for (section, staged, name, sig, armored) in plan {
            if let Some(sig) = &sig {
                // As private as the file it signs: with it, anyone could confirm a guess of
                // the content (its hash is what the signature covers).
                let mode = if args.group_readable { 0o640 } else { 0o600 };
                let mut f =
                    create_new_in(out, sig, mode).map_err(|e| exists_error(&shown(sig), e))?;
                placed.push(sig.clone());
                f.write_all(armored.as_bytes())?;
                // Durable before the folder's fsync below, like the files it signs.
                f.sync_all()?;
            }
            staging
                .link_part(usize::from(staged), out, &name)
                .map_err(|e| exists_error(&shown(&name), e))?;
            placed.push(name.clone());
            done.push((section, shown(&name), sig.as_deref().map(shown)));
        }
        out.sync_all()?;
        Ok(())
    })();
    if let Err(e) = outcome {
        for name in &placed {
            let _ = rustix::fs::unlinkat(out, name.as_str(), rustix::fs::AtFlags::empty());
        }
        return Err(e);
    }
    Ok((doc, done))
}

/// The output folder, opened (never through a link as its last part, never blocking).
fn open_out_dir(dir: &Path) -> Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    rustix::fs::open(dir, flags, Mode::empty())
        .map(File::from)
        .map_err(std::io::Error::from)
        .with_context(|| format!("cannot open the folder {}", dir.display()))
}

/// Creates the file `name` in the folder `dir` (new, with `mode`, never through a link).
fn create_new_in(dir: &File, name: &str, mode: u32) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// Fails unless a file can be created in the folder `out` (at `shown`): checked with an
/// empty file, removed again.
fn probe_writable(out: &File, shown: &Path) -> Result<()> {
    let probe = format!(
        ".liaise-open-probe-{}",
        crate::store::hex(&liaise_keys::random::random_bytes::<8>())
    );
    create_new_in(out, &probe, 0o600).with_context(|| {
        format!(
            "cannot write into {}; give a folder you can write to as --out-dir",
            shown.display()
        )
    })?;
    let _ = rustix::fs::unlinkat(out, probe.as_str(), rustix::fs::AtFlags::empty());
    Ok(())
}

/// Creates `dir` (and missing parents) for owner and group (0770, keeping the set-group-id
/// bit it inherits from a staff folder), whatever the umask: staff read the files and delete
/// them when done.
fn create_group_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o770)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let inherited = fs::metadata(dir)?.permissions().mode() & 0o2000;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o770 | inherited))
        .with_context(|| format!("cannot open {} to its group", dir.display()))?;
    // Linux drops the set-group-id bit when a user outside the folder's group changes its
    // mode: the files would then get this user's group, which staff cannot read.
    if inherited != 0 && fs::metadata(dir)?.permissions().mode() & 0o2000 == 0 {
        let _ = fs::remove_dir(dir);
        bail!(
            "cannot give {} the staff folder's group: this user is not a member of it; add it \
             (e.g. `usermod -aG liaise-staff liaise`) or open into an existing folder",
            dir.display()
        );
    }
    Ok(())
}

fn exists_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        // The I/O error stays in the chain: `error_class` logs its kind, not this text.
        anyhow::Error::new(e).context(format!(
            "{} already exists; choose another --out-dir (nothing was written)",
            path.display()
        ))
    } else {
        anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
    }
}

/// `name`, or `SECTION-name`, `SECTION-2-name`, ... until neither it nor (with signatures) its
/// `.sig` clashes with a name already chosen.
fn unique_name(
    name: &str,
    section: &str,
    taken: &BTreeSet<String>,
    with_signatures: bool,
) -> String {
    let free =
        |n: &str| !(taken.contains(n) || (with_signatures && taken.contains(&format!("{n}.sig"))));
    if free(name) {
        return name.to_owned();
    }
    let mut candidate = format!("{section}-{name}");
    let mut i = 2u32;
    while !free(&candidate) {
        candidate = format!("{section}-{i}-{name}");
        i += 1;
    }
    candidate
}

fn unreadable(doc: &liaise_protocol::OpenedDocument) -> Vec<String> {
    doc.info
        .sections
        .iter()
        .enumerate()
        .filter(|(i, _)| !doc.policy.sections.iter().any(|s| usize::from(*s) == *i))
        .map(|(_, s)| s.name.clone())
        .collect()
}

#[cfg(test)]
mod error_class_tests {
    use super::error_class;

    #[test]
    fn a_failed_open_is_logged_without_the_file_name_in_its_error() {
        // As the open makes it.
        let exists = super::exists_error(
            std::path::Path::new("/srv/out/Risicotaxatie_J_de_Vries.pdf"),
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        );
        assert!(format!("{exists:#}").contains("already exists"));
        assert_eq!(
            error_class(&exists),
            "a file of that name exists in the output folder"
        );
        let other = anyhow::anyhow!("cannot write Risicotaxatie_J_de_Vries.pdf");
        assert!(!error_class(&other).contains("Vries"));
        let bad = anyhow::Error::new(liaise_protocol::OpenError::Truncated).context("file.pdf");
        assert_eq!(
            error_class(&bad),
            liaise_protocol::OpenError::Truncated.kind().as_str()
        );
        // A tampered recipient entry, found after the open said "not for us".
        let tampered = anyhow::Error::new(crate::cli::verify::Tampered {
            kind: "verification failed",
            message: "cannot open Risicotaxatie_J_de_Vries.liaise: verification failed".into(),
        });
        assert_eq!(error_class(&tampered), "verification failed");
    }
}
