//! The `Examples:` sections of `--help`, taken from the README's walk-through.

/// `liaise send`.
pub const SEND: &str = "\
Examples:
  # A report for two agencies; its annex only for probation. Wait for both receipts.
  liaise send --home city --to nl.probation.utrecht,nl.prison.vught \\
      --section annex=annex.pdf --section-readers annex=nl.probation.utrecht \\
      --label restricted --purpose \"release planning\" report.pdf --wait --timeout 2m

  # The recipient may forward it to the prison; then see where it stands.
  liaise send --home city --to nl.probation.utrecht report.pdf --allow-forward-to nl.prison.vught
  liaise outbox --home city";

/// `liaise seal`.
pub const SEAL: &str = "\
Examples:
  # A file for the prison that opens without the sender's node, for 30 days.
  liaise seal --home city --offline --to nl.prison.vught --expires 30d \\
      report.pdf --out report.liaise";

/// `liaise open`.
pub const OPEN: &str = "\
Examples:
  # A received document, with a .sig beside each file for `ssh-keygen -Y verify`.
  liaise open --home probation DOC_ID --out-dir received/ --with-signatures \\
      --reason \"release planning meeting 12 March\"

  # A sealed file that came by another route.
  liaise open --home prison report.liaise --out-dir out/";

/// `liaise verify`.
pub const VERIFY: &str = "\
Examples:
  liaise verify --home probation DOC_ID                 # a received document
  liaise verify report.liaise --roster roster.liaise    # any sealed file, no private key";

/// `liaise forward`.
pub const FORWARD: &str = "\
Examples:
  liaise forward --home probation DOC_ID --to nl.prison.vught --reason \"joint case\" --wait
  liaise forward --home probation DOC_ID --to nl.prison.vught --reason \"joint case\" --out fwd.liaise";

/// `liaise revoke`.
pub const REVOKE: &str = "\
Examples:
  liaise revoke --home city DOC_ID                              # no further opens by anyone
  liaise revoke --home city DOC_ID --recipient nl.prison.vught  # by the prison only
  liaise custody --home city DOC_ID                             # who may still open it";

/// `liaise evidence`.
pub const EVIDENCE: &str = "\
Examples:
  liaise evidence export --home city DOC_ID --out case17.evidence
  liaise evidence verify case17.evidence --roster roster.liaise   # offline, no private key";

/// `liaise init`.
pub const INIT: &str = "\
Examples:
  # The keys of Utrecht's city office; its node will listen on port 7400.
  liaise init --home city --agency nl.city.utrecht --name \"Gemeente Utrecht\" \\
      --kind city --country NL --address node.utrecht.example:7400
  # Then send city/membership.toml to the steward and confirm its fingerprint by phone.";

/// `liaise roster import`.
pub const ROSTER_IMPORT: &str = "\
Examples:
  # The first import: type the fingerprint your steward read out on the phone.
  liaise roster import --home city roster-1.liaise \\
      --federation-fingerprint \"23246 23239 29986 91142 21213 92423 04643 81826\"
  # A later roster of the same federation needs no fingerprint.
  liaise roster import --home city roster-2.liaise";

/// `liaise federation`.
pub const FEDERATION: &str = "\
Examples:
  liaise federation init --dir fed --name \"Utrecht safety house\" --stewards 3 --threshold 2
  liaise federation add --dir fed city/membership.toml --group case-conference
  liaise federation publish --dir fed --out roster-1.liaise --valid-for 90d
  liaise federation revoke --dir fed nl.prison.vught";

/// `liaise status`.
pub const STATUS: &str = "\
Examples:
  liaise status --home city              # roster, peers, queues
  liaise status --home city --check      # dial every peer now
  liaise status --home city --json       # for monitoring: roster_expired, key_warnings, outbox";

/// `liaise log`.
pub const LOG: &str = "\
Examples:
  liaise log --home city --doc DOC_ID     # everything this node logged about one document
  liaise log verify --home city           # check the chain, checkpoints and countersignatures";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    /// The command lines of an examples section: `liaise ...` lines, continuations joined,
    /// comments dropped, split into words as a shell would (double quotes only).
    fn commands(section: &str) -> Vec<Vec<String>> {
        let mut joined = Vec::new();
        let mut current = String::new();
        for line in section.lines().map(str::trim) {
            let line = line.split("  #").next().unwrap_or("").trim();
            if line.starts_with("liaise ") || !current.is_empty() {
                current.push_str(line.trim_end_matches('\\'));
                current.push(' ');
                if !line.ends_with('\\') {
                    joined.push(std::mem::take(&mut current));
                }
            }
        }
        joined
            .iter()
            .map(|command| {
                let mut words = Vec::new();
                let (mut word, mut quoted) = (String::new(), false);
                for c in command.chars() {
                    match c {
                        '"' => quoted = !quoted,
                        ' ' if !quoted => {
                            if !word.is_empty() {
                                words.push(std::mem::take(&mut word));
                            }
                        }
                        c => word.push(c),
                    }
                }
                words
            })
            .collect()
    }

    #[test]
    fn every_example_is_a_valid_command_line() {
        let mut seen = 0;
        for section in [
            SEND,
            SEAL,
            OPEN,
            VERIFY,
            FORWARD,
            REVOKE,
            EVIDENCE,
            INIT,
            ROSTER_IMPORT,
            FEDERATION,
            STATUS,
            LOG,
        ] {
            for command in commands(section) {
                if let Err(e) = Cli::try_parse_from(&command) {
                    panic!("{command:?} does not parse: {e}");
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 27, "every example was read");
    }
}
