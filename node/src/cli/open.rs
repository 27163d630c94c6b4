//! `liaise open`: decrypt the sections of a sealed document this agency may read.
//!
//! Nothing is written under the output folder before everything has verified: sections are
//! decrypted into a private staging folder and moved into place only after the signature,
//! the commitments and the OpenSSH signatures have all checked out. File names come from the
//! sender and are sanitised; they never become paths outside the folder.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use liaise_keys::Timestamp;
use liaise_protocol::sanitize_file_name;
use serde_json::json;

use super::verify::resolve_document;
use super::{HomeArg, JsonArg, print_json};
use crate::fsutil::create_private_dir;
use crate::passphrase::PassphraseSource;
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
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: OpenArgs, passphrase: &PassphraseSource) -> Result<ExitCode> {
    let home = args.home.resolve()?;
    let profile = home.profile()?;
    let now = Timestamp::now();
    let roster = home.require_roster(now)?;
    let path = resolve_document(&args.document, Some(&home))?;
    let input = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let secrets = home.unlock(passphrase)?;

    let created_dir = !args.out_dir.exists();
    create_private_dir(&args.out_dir)?;
    let staging = args.out_dir.join(format!(
        ".liaise-open-{}",
        crate::store::hex(&liaise_keys::random::random_bytes::<8>())
    ));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let result = open_into(
        &args,
        &profile.agency,
        &secrets,
        &roster,
        now,
        &input,
        &staging,
    );
    let _ = fs::remove_dir_all(&staging);
    let written = match result {
        Ok(written) => written,
        Err(e) => {
            if created_dir {
                let _ = fs::remove_dir(&args.out_dir);
            }
            return Err(e);
        }
    };
    let (doc, files) = written;
    if args.json.json {
        return print_json(&json!({
            "doc_id": doc.info.document_id.to_string(),
            "signer": doc.info.sender.as_str(),
            "signed_at": doc.info.created.to_rfc3339(),
            "files": files.iter().map(|(section, file, sig)| json!({
                "section": section, "path": file, "signature": sig,
            })).collect::<Vec<_>>(),
            "unreadable_sections": unreadable(&doc),
        }));
    }
    println!(
        "Verified: signed by {} at {}.",
        doc.info.sender, doc.info.created
    );
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

type Written = (
    liaise_protocol::OpenedDocument,
    Vec<(String, PathBuf, Option<PathBuf>)>,
);

fn open_into(
    args: &OpenArgs,
    me: &liaise_keys::AgencyId,
    secrets: &liaise_keys::AgencySecrets,
    roster: &liaise_keys::roster::Roster,
    now: Timestamp,
    input: &File,
    staging: &Path,
) -> Result<Written> {
    let mut staged_paths = Vec::new();
    let (doc, writers) = liaise_protocol::open(
        BufReader::with_capacity(1 << 20, input),
        me,
        &secrets.encryption,
        &RosterSignerCheck(roster),
        now,
        |section| {
            let path = staging.join(format!("{}.part", section.index));
            staged_paths.push(path.clone());
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            Ok(BufWriter::with_capacity(1 << 20, file))
        },
    )
    .with_context(|| format!("cannot open {}", args.document))?;
    // Verified. Flush, then choose final names and refuse to overwrite anything.
    let mut files = Vec::with_capacity(writers.len());
    for writer in writers {
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
    }
    let mut targets: Vec<PathBuf> = Vec::new();
    for (section, staged) in doc.sections.iter().zip(&staged_paths) {
        let mut name = sanitize_file_name(&section.metadata.file_name);
        if targets.iter().any(|t| t.file_name() == Some(name.as_ref())) {
            name = format!("{}-{name}", section.name);
        }
        let target = args.out_dir.join(&name);
        let sig = args
            .with_signatures
            .then(|| args.out_dir.join(format!("{name}.sig")));
        for path in std::iter::once(&target).chain(sig.as_ref()) {
            if path.exists() {
                bail!(
                    "{} already exists; choose another --out-dir (nothing was written)",
                    path.display()
                );
            }
        }
        targets.push(target.clone());
        files.push((
            section.name.clone(),
            staged.clone(),
            target,
            sig,
            section.sshsig_armored.clone(),
        ));
    }
    let mut done = Vec::with_capacity(files.len());
    for (section, staged, target, sig, armored) in files {
        if let Some(sig) = &sig {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(sig)?;
            f.write_all(armored.as_bytes())?;
        }
        fs::rename(&staged, &target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        done.push((section, target, sig));
    }
    Ok((doc, done))
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
