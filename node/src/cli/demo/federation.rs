//! Steps 1 to 4: the steward creates the federation, each agency creates its keys, the
//! steward publishes a signed roster, and each agency imports it.

use anyhow::{Context, Result};

use super::narration::step;
use super::nodes::free_udp_port;
use super::{AGENCIES, Demo};

impl Demo {
    /// Runs steps 1 to 4.
    pub(super) fn form_federation(&self) -> Result<()> {
        step(
            1,
            "The steward creates the federation",
            "The steward coordinates the federation and signs its roster. The fingerprint \
             of its keys is what every agency pins; in real life it is read out on the phone.",
        );
        let fed = self.liaise_json(&[
            "federation",
            "init",
            "--dir",
            "fed",
            "--name",
            "Utrecht safety house (demo)",
            "--stewards",
            "1",
            "--threshold",
            "1",
            "--json",
        ])?;
        let fingerprint = fed
            .get("federation_fingerprint")
            .and_then(serde_json::Value::as_str)
            .context("federation init printed no fingerprint")?
            .to_owned();

        step(
            2,
            "Each agency creates its keys",
            "A signing key (its identity), a transport key for its node and encryption keys, \
             all in a passphrase-protected key file. membership.toml is the public request it \
             hands to the steward.",
        );
        for (home, id, name, kind) in AGENCIES {
            let address = format!("127.0.0.1:{}", free_udp_port()?);
            self.liaise(&[
                "init",
                "--home",
                home,
                "--agency",
                id,
                "--name",
                name,
                "--kind",
                kind,
                "--country",
                "NL",
                "--address",
                &address,
            ])?;
        }

        step(
            3,
            "The steward adds the members and publishes a signed roster",
            "The roster is the only source of who is who: members, keys, addresses, groups.",
        );
        for (home, ..) in AGENCIES {
            let membership = format!("{home}/membership.toml");
            self.liaise(&[
                "federation",
                "add",
                "--dir",
                "fed",
                &membership,
                "--group",
                "case-conference",
            ])?;
        }
        self.liaise(&[
            "federation",
            "publish",
            "--dir",
            "fed",
            "--out",
            "roster.liaise",
            "--valid-for",
            "30d",
        ])?;

        step(
            4,
            "Each agency imports the roster, pinning the federation by its fingerprint",
            "From now on a node refuses rosters not signed by these stewards, older rosters \
             and expired ones.",
        );
        for (home, ..) in AGENCIES {
            self.liaise(&[
                "roster",
                "import",
                "--home",
                home,
                "roster.liaise",
                "--federation-fingerprint",
                &fingerprint,
            ])?;
        }
        Ok(())
    }
}
