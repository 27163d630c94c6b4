//! Steps 6 to 9: the city sends a case report whose annex only the probation service may
//! read, follows it, and the probation service and the prison open it.

use std::process::Output;

use anyhow::{Context, Result, bail};

use super::narration::{say, step};
use super::{Demo, PRISON, PROBATION};

impl Demo {
    /// Runs steps 6 to 9 and returns the folder the probation service opened the document
    /// into, with its signatures.
    pub(super) fn exchange_case_report(&self) -> Result<&'static str> {
        step(
            6,
            "The city sends a case report; its annex is for the probation service only",
            "The document is signed by the city and encrypted per section: the prison gets \
             a key for the main report, the probation service for both parts.",
        );
        self.write("case-report.txt", CASE_REPORT)?;
        self.write("annex.txt", ANNEX)?;
        let out = self.send()?;
        let doc_id = document_id(&out).context("liaise send printed no document id")?;

        step(
            7,
            "The city sees where its document stands, and the signed receipts",
            "Each receiving node stored the sealed bytes durably and signed a receipt over \
             their hash.",
        );
        self.liaise(&["outbox", "--home", "city"])?;
        self.liaise(&["receipts", "--home", "city", &doc_id])?;

        step(
            8,
            "The probation service verifies and opens the document",
            "Nothing is written before the signature, the recipient binding and every byte \
             verified. The city keeps control: each open asks the city's node for its key \
             share and states a reason, which both sides record. --with-signatures also \
             writes each part's OpenSSH signature.",
        );
        self.liaise(&["inbox", "--home", "probation"])?;
        let probation_out = "probation-opened";
        self.liaise(&["verify", "--home", "probation", &doc_id])?;
        self.liaise(&[
            "open",
            "--home",
            "probation",
            &doc_id,
            "--out-dir",
            probation_out,
            "--with-signatures",
            "--reason",
            "supervision plan for the case conference",
        ])?;
        self.list(probation_out)?;

        step(
            9,
            "The prison opens the same document: the report, but not the annex",
            "The prison was never given the annex's key, so no software can show it the annex.",
        );
        let prison_out = "prison-opened";
        self.liaise(&[
            "open",
            "--home",
            "prison",
            &doc_id,
            "--out-dir",
            prison_out,
            "--reason",
            "release date and housing",
        ])?;
        let names = self.list(prison_out)?;
        if names.iter().any(|n| n.contains("annex")) {
            bail!("the prison could open the annex; that must never happen");
        }
        say("-> no annex here: the prison holds no key for it");
        Ok(probation_out)
    }

    /// `liaise send`: the report as the main section, the annex for the probation service only.
    fn send(&self) -> Result<Output> {
        let to = format!("{PROBATION},{PRISON}");
        let annex_readers = format!("annex={PROBATION}");
        self.liaise(&[
            "send",
            "--home",
            "city",
            "--to",
            &to,
            "case-report.txt",
            "--section",
            "annex=annex.txt",
            "--section-readers",
            &annex_readers,
            "--label",
            "restricted",
            "--purpose",
            "release preparation: supervision plan",
            "--wait",
            "--timeout",
            "60s",
        ])
    }
}

const CASE_REPORT: &str = "Case 2024-017: release preparation\n\n\
    Release date: in three weeks. Housing: arranged by the city.\n\
    Supervision: weekly meetings with the probation officer.\n";
const ANNEX: &str = "Annex: psychological assessment (probation service only)\n\n\
    Risk factors and protective factors, as discussed in the case conference.\n";

/// The 32-hex-digit document id `liaise send` printed.
fn document_id(output: &Output) -> Option<String> {
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_owned)
}
