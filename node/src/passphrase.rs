//! Where a passphrase comes from: `--passphrase-file`, `LIAISE_PASSPHRASE`, or a prompt on
//! the terminal, in that order.
//!
//! `LIAISE_PASSPHRASE` is for tests and development: the environment of a process can be read
//! by its user and by root (`/proc/PID/environ`) and is inherited by child processes. Services
//! use `--passphrase-file` with a systemd credential (see `deploy/`).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use liaise_keys::keyfile::Passphrase;

/// The environment variable services and tests use.
pub const PASSPHRASE_ENV: &str = "LIAISE_PASSPHRASE";
/// The environment variable for the new passphrase of `liaise keys passphrase`.
pub const NEW_PASSPHRASE_ENV: &str = "LIAISE_NEW_PASSPHRASE";

/// How to get the passphrase for a key file.
#[derive(Debug, Clone, Default)]
pub struct PassphraseSource {
    /// `--passphrase-file`.
    pub file: Option<std::path::PathBuf>,
}

impl PassphraseSource {
    /// Gets the passphrase to unlock an existing key file.
    pub fn unlock(&self, what: &str) -> Result<Passphrase> {
        self.get(what, false)
    }

    /// Gets a passphrase for a new key file (asked twice on a terminal).
    pub fn create(&self, what: &str) -> Result<Passphrase> {
        self.get(what, true)
    }

    /// Gets the new passphrase of a key file whose passphrase changes: from `file`, else
    /// [`NEW_PASSPHRASE_ENV`], else asked twice on the terminal.
    pub fn replacement(file: Option<&Path>, what: &str) -> Result<Passphrase> {
        Self {
            file: file.map(Path::to_path_buf),
        }
        .get_from(NEW_PASSPHRASE_ENV, "--new-passphrase-file", what, true)
    }

    fn get(&self, what: &str, confirm: bool) -> Result<Passphrase> {
        self.get_from(PASSPHRASE_ENV, "--passphrase-file", what, confirm)
    }

    fn get_from(&self, env: &str, flag: &str, what: &str, confirm: bool) -> Result<Passphrase> {
        if let Some(path) = &self.file {
            return read_file(path);
        }
        if let Ok(text) = std::env::var(env) {
            return Passphrase::new(text).with_context(|| format!("{env} is not usable"));
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "no passphrase for {what}: set {env}, pass {flag} FILE, \
                 or run on a terminal to be asked"
            );
        }
        // Wiped on every way out, a failed second prompt included.
        let mut first = zeroize::Zeroizing::new(
            rpassword::prompt_password(format!("Passphrase for {what}: "))
                .context("cannot read the passphrase from the terminal")?,
        );
        if confirm {
            let second = zeroize::Zeroizing::new(
                rpassword::prompt_password("Repeat the passphrase: ")
                    .context("cannot read the passphrase from the terminal")?,
            );
            if *first != *second {
                bail!("the two passphrases differ; nothing was written");
            }
        }
        Ok(Passphrase::new(std::mem::take(&mut *first))?)
    }
}

fn read_file(path: &Path) -> Result<Passphrase> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "{}warning: passphrase file {} can be read by other users (mode {:03o}); \
             `chmod 600` it, or use a systemd credential",
            crate::logging::stderr_prefix(tracing::Level::WARN),
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    Passphrase::from_file(path).map_err(|e| match e {
        // Its text names the file and the cause once (as context, its source would be
        // printed a second time).
        liaise_keys::keyfile::KeyFileError::Io { .. } => {
            anyhow::anyhow!("cannot use passphrase file {e}")
        }
        e => anyhow::anyhow!("cannot use passphrase file {}: {e}", path.display()),
    })
}
