//! Step 10: anyone checks who signed each part with stock OpenSSH (`ssh-keygen -Y verify`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::narration::{print_output, say, show, step};
use super::{CITY, Demo};

impl Demo {
    /// Step 10, on the files the probation service opened into `opened`.
    pub(super) fn check_provenance(&self, opened: &str) -> Result<()> {
        step(
            10,
            "Anyone can check who signed each part, with stock OpenSSH",
            "The roster gives the signers' keys as an allowed-signers file for ssh-keygen.",
        );
        self.provenance(opened)
    }

    /// `ssh-keygen -Y verify` of every signature `open --with-signatures` wrote.
    fn provenance(&self, opened: &str) -> Result<()> {
        let signers = "allowed_signers";
        let has_keygen = Command::new("ssh-keygen")
            .arg("-?")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let dir = self.root.join(opened);
        if !has_keygen || !dir.is_dir() {
            say("skipped: ssh-keygen is not on PATH (Debian: openssh-client)");
            return Ok(());
        }
        self.liaise(&[
            "roster",
            "allowed-signers",
            "--home",
            "probation",
            "--out",
            signers,
        ])?;
        let mut sigs: Vec<PathBuf> = fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sig"))
            .collect();
        sigs.sort();
        for sig in sigs {
            let content = sig.with_extension("");
            let (Some(sig_name), Some(content_name)) =
                (rel(&self.root, &sig), rel(&self.root, &content))
            else {
                continue;
            };
            show(&format!(
                "ssh-keygen -Y verify -f {signers} -I {CITY} -n liaise-document -s {sig_name} < {content_name}"
            ));
            let input = fs::File::open(&content)
                .with_context(|| format!("cannot read {}", content.display()))?;
            let output = Command::new("ssh-keygen")
                .current_dir(&self.root)
                .args(["-Y", "verify", "-f", signers, "-I", CITY, "-n"])
                .args(["liaise-document", "-s", &sig_name])
                .stdin(input)
                .output()?;
            print_output(&output);
            if !output.status.success() {
                bail!("ssh-keygen did not confirm the signature on {content_name}");
            }
        }
        Ok(())
    }
}

/// `path` relative to `root`, as the demo's commands name it.
fn rel(root: &Path, path: &Path) -> Option<String> {
    path.strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}
