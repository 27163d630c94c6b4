//! Running `liaise` as a subprocess and narrating it: each command is shown before its
//! output, the way a person would type it.

use std::fs;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

use super::{DEMO_PASSPHRASE, Demo};

impl Demo {
    /// `liaise ARGS` in the demo folder, with the demo passphrase and no inherited home.
    pub(super) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.root)
            .args(args)
            .env(crate::passphrase::PASSPHRASE_ENV, DEMO_PASSPHRASE)
            .env_remove(crate::home::HOME_ENV)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Shows and runs `liaise ARGS`, prints its output; fails if it fails. An interruption
    /// stops the command with the nodes.
    pub(super) fn liaise(&self, args: &[&str]) -> Result<Output> {
        self.not_interrupted()?;
        show(&format!("liaise {}", quoted(args)));
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run liaise")?;
        let pid = child.id();
        if !self.children.add(pid) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        let output = child.wait_with_output();
        self.children.remove(pid);
        let output = output.context("cannot run liaise")?;
        print_output(&output);
        if !output.status.success() {
            bail!("`liaise {}` failed", quoted(args));
        }
        Ok(output)
    }

    /// Like [`Self::liaise`], parsing what it printed as JSON.
    pub(super) fn liaise_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.liaise(args)?;
        serde_json::from_slice(&out.stdout).context("liaise printed malformed JSON")
    }

    /// Shows and writes a file in the demo folder.
    pub(super) fn write(&self, name: &str, text: &str) -> Result<()> {
        self.not_interrupted()?;
        show(&format!("cat > {name}    # {} bytes", text.len()));
        fs::write(self.root.join(name), text).with_context(|| format!("cannot write {name}"))
    }

    /// Fails once Ctrl-C or SIGTERM came: the next step must not start while the folder
    /// is being removed.
    pub(super) fn not_interrupted(&self) -> Result<()> {
        if self.children.stopping() {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Lists a folder (as `ls -1` would) and returns the file names.
    pub(super) fn list(&self, rel_dir: &str) -> Result<Vec<String>> {
        show(&format!("ls {rel_dir}"));
        let mut names: Vec<String> = fs::read_dir(self.root.join(rel_dir))
            .with_context(|| format!("cannot list {rel_dir}"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            say(name);
        }
        Ok(names)
    }
}

/// A step's number and title, and why it matters.
pub(super) fn step(n: u32, title: &str, why: &str) {
    println!("\n[{n}] {title}");
    println!("    {why}");
}

/// A command, as typed at a prompt.
pub(super) fn show(command: &str) {
    println!("  $ {command}");
}

/// A line of output, indented under its command.
pub(super) fn say(line: &str) {
    println!("      {line}");
}

/// A command's standard output, then its standard error.
pub(super) fn print_output(output: &Output) {
    for text in [&output.stdout, &output.stderr] {
        for line in String::from_utf8_lossy(text).lines() {
            say(line);
        }
    }
}

/// Arguments as a shell would need them typed.
fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\'', '$', '&', ';', '<', '>']) {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
