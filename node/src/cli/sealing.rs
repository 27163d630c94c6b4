//! What `liaise seal` and `liaise send` share: the seal options, resolving recipients and
//! section readers against the roster, and streaming the sealed document to a private file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use liaise_keys::roster::Roster;
use liaise_keys::{AgencyId, AgencySecrets, Timestamp};

use crate::home::Home;
use crate::store::custody_key::CustodyKey;
use liaise_keys::signing::SigningSecretKey;
use liaise_protocol::{
    KeyCustody, RecipientPolicy, RecipientSpec, SealRequest, SealedSummary, SectionInput,
    SectionMetadata,
};

/// The name of the section that holds FILE.
pub const MAIN_SECTION: &str = "main";
/// Files at least this large get a progress bar on a terminal.
pub const PROGRESS_THRESHOLD: u64 = 8 * 1024 * 1024;

/// Who may read what, and what the clear header says. Shared by `seal` and `send`.
#[derive(Debug, Clone, Args)]
pub struct SealOptions {
    /// Recipient agencies (comma-separated, repeatable). Roster group names work too.
    #[arg(long, value_name = "AGENCY[,AGENCY...]", value_delimiter = ',')]
    pub to: Vec<String>,
    /// Every member of this roster group, except yourself (repeatable).
    #[arg(long = "to-group", value_name = "GROUP")]
    pub to_group: Vec<String>,
    /// A further section, e.g. `annex=annex.pdf` or `notes=speaker-notes.txt` (repeatable).
    /// FILE itself is the section `main`.
    #[arg(long = "section", value_name = "NAME=PATH")]
    pub sections: Vec<String>,
    /// Only these recipients may read section NAME (default: every recipient), e.g.
    /// `annex=nl.probation.utrecht`. Groups work too. Repeatable, one per section.
    #[arg(long = "section-readers", value_name = "NAME=AGENCY[,AGENCY...]")]
    pub section_readers: Vec<String>,
    /// Recipients may open it until then: a duration (`30d`, `12h`) or a date
    /// (`2026-12-31` or `2026-12-31T17:00:00Z`). Default: no limit.
    #[arg(long, value_name = "DURATION|DATE", value_parser = expiry_syntax)]
    pub expires: Option<String>,
    /// The handling label, readable by anyone holding the file (no personal data).
    #[arg(long, default_value = "restricted", value_name = "TEXT")]
    pub label: String,
    /// The stated purpose of the disclosure, readable by anyone holding the file (no personal data).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub purpose: String,
    /// A title for the main document (encrypted with it).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub title: String,
    /// Recipients may forward the document to these agencies (comma-separated, repeatable;
    /// groups work too), each time with this node's consent (`liaise forward`).
    #[arg(
        long = "allow-forward-to",
        value_name = "AGENCY[,AGENCY...]",
        value_delimiter = ','
    )]
    pub allow_forward_to: Vec<String>,
    /// Give recipients the whole key: they open it without this node (e.g. on an isolated
    /// network), but it can never be revoked and their opens are not recorded here. Default:
    /// originator control, where every open asks this node and states a reason.
    #[arg(long)]
    pub offline: bool,
}

impl SealOptions {
    /// Originator control unless `--offline`.
    pub fn custody(&self) -> KeyCustody {
        if self.offline {
            KeyCustody::Offline
        } else {
            KeyCustody::Originator
        }
    }
}

/// Records the originator share of a document sealed under originator control in the node's
/// store (nothing for offline documents). Without it nobody could ever open the document.
/// The share and masked keys are sealed at rest with the key derived from `signing`, the
/// agency's identity key ([`CustodyKey`]).
pub fn register_custody(
    home: &Home,
    summary: &SealedSummary,
    signing: &SigningSecretKey,
) -> Result<()> {
    if let Some(secrets) = &summary.originator {
        crate::store::custody::register_in_home(
            home,
            &summary.info,
            &summary.signed_header,
            secrets,
            &CustodyKey::derive(signing),
        )?;
    }
    Ok(())
}

/// A section to seal: its name in the header and the file it comes from.
#[derive(Debug, Clone)]
pub struct SectionSource {
    /// `main`, `annex`, ...
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

/// The options resolved against the roster: who gets what.
#[derive(Debug)]
pub struct SealPlan {
    /// Sections in order; `main` first.
    pub sections: Vec<SectionSource>,
    /// Recipients with keys and policies.
    pub recipients: Vec<RecipientSpec>,
}

impl SealPlan {
    /// The bytes of all sections' files together, as they are now.
    pub fn input_len(&self) -> Result<u64> {
        self.sections.iter().try_fold(0u64, |total, source| {
            let meta = std::fs::metadata(&source.path)
                .with_context(|| format!("cannot read {}", source.path.display()))?;
            Ok(total.saturating_add(meta.len()))
        })
    }
}

impl SealOptions {
    /// Resolves recipients, groups, sections and readers. Errors say which option is wrong.
    pub fn plan(
        &self,
        file: &Path,
        roster: &Roster,
        me: &AgencyId,
        now: Timestamp,
    ) -> Result<SealPlan> {
        let mut names: Vec<String> = self.to.clone();
        for group in &self.to_group {
            if roster.group(group).is_none() {
                bail!("--to-group {group}: no such group in the roster (see `liaise roster show`)");
            }
            names.push(group.clone());
        }
        let recipients = resolve_agencies(roster, &names, me)?;
        if recipients.is_empty() {
            bail!("no recipients: name at least one with --to AGENCY or --to-group GROUP");
        }

        let mut sections = vec![SectionSource {
            name: MAIN_SECTION.into(),
            path: file.to_path_buf(),
        }];
        for spec in &self.sections {
            let (name, path) = spec.split_once('=').with_context(|| {
                format!("--section `{spec}`: use NAME=PATH, e.g. annex=annex.pdf")
            })?;
            if !liaise_protocol::sealed::valid_section_name(name) {
                bail!(
                    "--section `{name}`: a section name is a-z, 0-9 and `-`, starts with a \
                     letter and has at most {} characters, e.g. annex or speaker-notes",
                    liaise_protocol::sealed::limits::MAX_SECTION_NAME_LEN
                );
            }
            if sections.iter().any(|s| s.name == name) {
                if name == "main" {
                    bail!("--section main: `main` is the FILE given last; name this one otherwise");
                }
                bail!("--section {name}: the section name is used twice");
            }
            sections.push(SectionSource {
                name: name.to_owned(),
                path: PathBuf::from(path),
            });
        }

        // A file name travels in the document and is shown to its readers: plain text only.
        for section in &sections {
            let name = section
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.chars().any(char::is_control) {
                bail!(
                    "{:?}: the file name holds a control character (such as a newline or tab); \
                     rename the file and send it again",
                    section.path
                );
            }
        }

        let mut readers: BTreeMap<usize, BTreeSet<AgencyId>> = BTreeMap::new();
        for spec in &self.section_readers {
            let (name, list) = spec.split_once('=').with_context(|| {
                format!("--section-readers `{spec}`: use NAME=AGENCY[,AGENCY...]")
            })?;
            let index = sections.iter().position(|s| s.name == name).with_context(|| {
                format!("--section-readers {name}: there is no section {name} (add --section {name}=PATH)")
            })?;
            if list.split(',').any(str::is_empty) {
                bail!(
                    "--section-readers `{spec}`: name the agencies that may read {name}, \
                     e.g. {name}=nl.probation.utrecht"
                );
            }
            let list: Vec<String> = list.split(',').map(str::to_owned).collect();
            let agencies = resolve_agencies(roster, &list, me)?;
            for agency in &agencies {
                if !recipients.contains(agency) {
                    bail!("--section-readers {name}: {agency} is not a recipient; add it to --to");
                }
            }
            if readers
                .insert(index, agencies.into_iter().collect())
                .is_some()
            {
                bail!("--section-readers {name} is given twice");
            }
        }

        if self.offline && !self.allow_forward_to.is_empty() {
            bail!("--allow-forward-to needs originator control; drop --offline");
        }
        let forward_targets = resolve_agencies(roster, &self.allow_forward_to, me)?;
        let expires = self
            .expires
            .as_deref()
            .map(|text| parse_expiry(text, now))
            .transpose()?;
        let mut specs = Vec::with_capacity(recipients.len());
        for agency in &recipients {
            let member = roster
                .member(agency)
                .with_context(|| format!("{agency} is not in the roster"))?;
            let key = member.current_encryption_key(now).with_context(|| {
                format!("{agency} has no valid encryption key in the roster; ask it to run `liaise keys rotate`")
            })?;
            let readable: Vec<u8> = (0..sections.len())
                .filter(|i| readers.get(i).is_none_or(|set| set.contains(agency)))
                .filter_map(|i| u8::try_from(i).ok())
                .collect();
            if readable.is_empty() {
                bail!("{agency} is a recipient but may read no section; check --section-readers");
            }
            specs.push(RecipientSpec {
                agency: agency.clone(),
                key: key.clone(),
                policy: RecipientPolicy {
                    sections: readable,
                    not_after: expires,
                    forward_to: forward_targets
                        .iter()
                        .filter(|a| *a != agency)
                        .cloned()
                        .collect(),
                },
            });
        }
        Ok(SealPlan {
            sections,
            recipients: specs,
        })
    }
}

/// Seals `plan` into a new private file at `out` (named only when complete: see
/// [`write_private`]). Shows a progress bar on a terminal for large inputs.
pub fn seal_to_file(
    plan: SealPlan,
    options: &SealOptions,
    me: &AgencyId,
    secrets: &AgencySecrets,
    now: Timestamp,
    out: &Path,
) -> Result<SealedSummary> {
    write_private(out, |writer| {
        seal_into(plan, options, me, secrets, now, writer)
    })
}

/// Seals `plan` into memory: for a small document handed to the node over its socket.
pub fn seal_to_memory(
    plan: SealPlan,
    options: &SealOptions,
    me: &AgencyId,
    secrets: &AgencySecrets,
    now: Timestamp,
) -> Result<(SealedSummary, Vec<u8>)> {
    let mut sealed = Vec::new();
    let summary = seal_into(plan, options, me, secrets, now, &mut sealed)?;
    Ok((summary, sealed))
}

/// Writes `bytes` (a sealed document) into a new private file at `out`, as `seal_to_file`.
pub fn write_sealed_file(bytes: &[u8], out: &Path) -> Result<()> {
    write_private(out, |writer| {
        writer
            .write_all(bytes)
            .context("cannot write the sealed document")
    })
}

/// Seals `plan` into `out`. Shows a progress bar on a terminal for large inputs.
fn seal_into(
    plan: SealPlan,
    options: &SealOptions,
    me: &AgencyId,
    secrets: &AgencySecrets,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<SealedSummary> {
    let mut files = Vec::with_capacity(plan.sections.len());
    let mut total = 0u64;
    for source in &plan.sections {
        let file = File::open(&source.path)
            .with_context(|| format!("cannot read {}", source.path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read {}", source.path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", source.path.display());
        }
        total += meta.len();
        files.push((file, meta.len()));
    }
    let progress = progress_bar(total, "sealing");
    let lengths: Vec<u64> = files.iter().map(|(_, len)| *len).collect();
    let mut readers: Vec<CountingReader> = files
        .into_iter()
        .map(|(file, _)| CountingReader {
            inner: file,
            progress: progress.clone(),
        })
        .collect();
    let sections: Vec<SectionInput<'_>> = plan
        .sections
        .iter()
        .zip(readers.iter_mut())
        .zip(lengths)
        .map(|((source, reader), len)| SectionInput {
            name: source.name.clone(),
            metadata: metadata_for(
                &source.path,
                if source.name == MAIN_SECTION {
                    &options.title
                } else {
                    ""
                },
            ),
            content_len: len,
            content: reader,
        })
        .collect();
    let request = SealRequest {
        sender: me.clone(),
        signing_key: &secrets.signing,
        created: now,
        label: options.label.clone(),
        purpose: options.purpose.clone(),
        custody: options.custody(),
        sections,
        recipients: plan.recipients,
    };
    let result = liaise_protocol::seal(request, out).context("cannot seal the document");
    progress.finish_and_clear();
    result
}

/// Writes the sealed document into `file` through a buffer, and syncs it.
fn write_synced<T>(
    file: File,
    write: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<(File, T)> {
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let value = write(&mut writer)?;
    let file = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the sealed document")?;
    file.sync_all()
        .context("cannot write the sealed document")?;
    Ok((file, value))
}

/// The error for a file that appeared at `out` while the document was sealed.
fn appeared(out: &Path, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "{} appeared while the document was sealed; choose another --out (nothing was \
             written there)",
            out.display()
        ),
        _ => anyhow::Error::new(e).context(format!("cannot write {}", out.display())),
    }
}

/// Creates the private file `out` with what `write` writes, named only once it is complete
/// and synced; nothing is left behind if `write` fails. A file that appeared at `out` while
/// the document was sealed (the check before sealing is long past) is never replaced.
///
/// The file has no name while it is written ([`crate::fsutil::unnamed_file`]), so that a
/// seal stopped by Ctrl-C or `kill` leaves nothing; where files cannot be unnamed, it is a
/// hidden temporary sibling, renamed once `out` is claimed with `create_new`.
fn write_private<T>(out: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    let dir = crate::fsutil::parent_dir(out);
    if let Some(file) = crate::fsutil::unnamed_file(dir, 0o600) {
        let (file, value) = write_synced(file, write)?;
        crate::fsutil::name_unnamed(&file, out).map_err(|e| appeared(out, e))?;
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot write {}", out.display()))?;
        return Ok(value);
    }
    let tmp = crate::fsutil::temporary_sibling(out)?;
    let result = (|| -> Result<T> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_private()
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let (_, value) = write_synced(file, write)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_private()
            .open(out)
            .map_err(|e| appeared(out, e))?;
        std::fs::rename(&tmp, out)
            .inspect_err(|_| {
                let _ = std::fs::remove_file(out);
            })
            .with_context(|| format!("cannot write {}", out.display()))?;
        File::open(crate::fsutil::parent_dir(out))
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot write {}", out.display()))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Counts bytes read into the progress bar.
pub(super) struct CountingReader<R = File> {
    pub(super) inner: R,
    pub(super) progress: ProgressBar,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// A progress bar of `total` bytes on stderr, headed `what` ("sealing"), for files of at
/// least [`PROGRESS_THRESHOLD`] and only on a terminal: hidden otherwise.
pub(super) fn progress_bar(total: u64, what: &str) -> ProgressBar {
    use std::io::IsTerminal;
    if total < PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template = format!("{what} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Agencies and group names to a sorted, de-duplicated list of agencies other than `me`.
pub fn resolve_agencies(roster: &Roster, names: &[String], me: &AgencyId) -> Result<Vec<AgencyId>> {
    let mut out = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if let Some(group) = roster.group(name) {
            out.extend(group.members.iter().filter(|m| *m != me).cloned());
            continue;
        }
        let agency = AgencyId::new(name)
            .with_context(|| format!("`{name}` is neither an agency nor a group"))?;
        if roster.member(&agency).is_none() {
            bail!("{agency} is not in the roster (see `liaise roster show`)");
        }
        if &agency == me {
            bail!("{agency} is yourself; documents go to other agencies");
        }
        out.push(agency);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What `--expires` says when it is neither a duration nor a date.
const EXPIRY_FORMS: &str = "use a duration (30d, 12h) or a date (2026-12-31, 2026-12-31T17:00:00Z)";

/// `--expires` as written: a usage error (exit 2) unless it is a duration or a date. Whether
/// that time is still ahead is [`parse_expiry`]'s to say, when sealing.
fn expiry_syntax(text: &str) -> Result<String, String> {
    let readable = liaise_keys::time::parse_duration(text).is_some()
        || Timestamp::parse_rfc3339(text).is_some();
    if readable {
        Ok(text.to_owned())
    } else {
        Err(EXPIRY_FORMS.to_owned())
    }
}

/// `30d` from now, or a date / RFC 3339 time.
pub fn parse_expiry(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Some(d) = liaise_keys::time::parse_duration(text) {
        // Timestamps count whole seconds: `500ms` would be now, already expired.
        if d.as_secs() == 0 {
            bail!("--expires {text} is less than a second from now; give a longer time, e.g. 30d");
        }
        return Ok(now.after(d));
    }
    let t = Timestamp::parse_rfc3339(text)
        .with_context(|| format!("--expires `{text}`: {EXPIRY_FORMS}"))?;
    if t <= now {
        bail!("--expires {text} is in the past");
    }
    Ok(t)
}

/// File name, a media type guessed from the extension, and a title.
pub fn metadata_for(path: &Path, title: &str) -> SectionMetadata {
    let mut file_name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    while file_name.len() > liaise_protocol::sealed::limits::MAX_FILE_NAME_LEN {
        file_name.pop();
    }
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let media_type = match extension.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("md") => "text/markdown",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("odt") => "application/vnd.oasis.opendocument.text",
        Some("odp") => "application/vnd.oasis.opendocument.presentation",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    };
    SectionMetadata {
        file_name,
        media_type: media_type.into(),
        title: title.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_in_the_future_by_at_least_a_second() {
        let now = Timestamp(1_800_000_000);
        assert_eq!(
            parse_expiry("30d", now).unwrap(),
            Timestamp(now.0 + 30 * 86_400)
        );
        assert_eq!(parse_expiry("1m30s", now).unwrap(), Timestamp(now.0 + 90));
        assert_eq!(parse_expiry("1s", now).unwrap(), Timestamp(now.0 + 1));
        // Timestamps count whole seconds: these would be expired at once.
        for too_soon in ["0s", "500ms"] {
            let err = parse_expiry(too_soon, now).unwrap_err().to_string();
            assert!(err.contains("less than a second"), "{too_soon}: {err}");
        }
        let err = parse_expiry("2020-01-01", now).unwrap_err().to_string();
        assert!(err.contains("in the past"), "{err}");
    }
}
