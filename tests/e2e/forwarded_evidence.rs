//! Evidence bundles about a forwarded document verify offline: the forwarder's (with the
//! originator's consent for the copy it forwarded, and the new reader's receipt for it) and
//! the new reader's (the forwarded document itself: consent and sealed document).

use std::time::{Duration, Instant};

use liaise_keys::roster::Roster;
use liaise_protocol::evidence::{EvidenceMeta, bundle_prefix, verify_bundle};
use serde_json::Value;

use super::forwarding::{forward, send_forwardable, three};
use super::nodes::{Agency, TestFederation};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// `evidence export` of `doc` at `who` into `out`, once a signed checkpoint covers its log
/// entries (the node signs one within 30 s).
fn export(fed: &TestFederation, who: &Agency, doc: &str, out: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = fed
            .sandbox
            .liaise(&["evidence", "export", "--home", &who.home, doc, "--out", out]);
        if run.code == Some(0) {
            return;
        }
        assert!(
            run.stderr.contains("no signed checkpoint") && Instant::now() < deadline,
            "{}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn verify(fed: &TestFederation, bundle: &str) -> Value {
    fed.sandbox
        .liaise(&[
            "evidence",
            "verify",
            bundle,
            "--roster",
            "fed/roster.liaise",
            "--json",
        ])
        .json()
}

fn receipt_agencies(report: &Value) -> Vec<&str> {
    let receipts = report["receipts"].as_array().unwrap();
    receipts
        .iter()
        .map(|r| r["agency"].as_str().unwrap())
        .collect()
}

#[test]
fn evidence_about_a_forward_verifies_at_the_forwarder_and_the_new_reader() {
    let fed = three();
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(probation), fed.start(prison)];
    let doc = send_forwardable(&fed, city);
    assert_eq!(forward(&fed, probation, &doc)["outcome"], "delivered");

    // The forwarder's bundle: the city's document, probation's own receipt to the city, and
    // the prison's receipt for the forwarded copy, checked with the city's consent.
    export(&fed, probation, &doc, "probation.evidence");
    let report = verify(&fed, "probation.evidence");
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["exporter"], PROBATION);
    assert_eq!(report["document"]["signer"], CITY, "{report:#}");
    assert!(report["forwarded"].is_null(), "{report:#}");
    let mut agencies = receipt_agencies(&report);
    agencies.sort_unstable();
    assert_eq!(agencies, [PRISON, PROBATION], "{report:#}");
    let prison_receipt = report["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agency"] == PRISON)
        .unwrap();
    assert_eq!(prison_receipt["sender"], PROBATION, "{report:#}");
    assert_eq!(report["forwards"][0]["new_reader"], PRISON, "{report:#}");
    assert_eq!(report["forwards"][0]["consented_by"], CITY, "{report:#}");

    // The new reader's bundle: the forwarded document, its consent, and its own receipt to
    // the forwarder.
    export(&fed, prison, &doc, "prison.evidence");
    let report = verify(&fed, "prison.evidence");
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["exporter"], PRISON);
    assert_eq!(report["forwarded"]["forwarder"], PROBATION, "{report:#}");
    assert_eq!(report["forwarded"]["consented_by"], CITY, "{report:#}");
    assert_eq!(receipt_agencies(&report), [PRISON], "{report:#}");
    let text = fed
        .sandbox
        .liaise(&[
            "evidence",
            "verify",
            "prison.evidence",
            "--roster",
            "fed/roster.liaise",
        ])
        .ok()
        .to_owned();
    assert!(
        text.contains(&format!("forwarded by {PROBATION} with {CITY}'s consent")),
        "{text}"
    );

    // A consent given twice would make a verifier hash the document once more for each
    // copy: refused.
    let bundle = fed.sandbox.read("probation.evidence");
    let meta_len = u32::from_be_bytes(bundle[10..14].try_into().unwrap()) as usize;
    let mut meta: EvidenceMeta =
        liaise_keys::codec::decode("evidence meta", &bundle[14..14 + meta_len], usize::MAX)
            .unwrap();
    let consent = meta.forward_consents[0].clone();
    meta.forward_consents.push(consent);
    let mut doubled = bundle_prefix(&meta);
    doubled.extend_from_slice(&bundle[14 + meta_len..]);
    let roster =
        Roster::load_stored_ignoring_expiry(&fed.sandbox.read("fed/roster.liaise")).unwrap();
    let e = verify_bundle(&doubled[..], &roster)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not one per new reader"), "{e}");

    // Only the forwarder's bundle needs the version with consents; a changed byte anywhere
    // in either (sampled) fails.
    let roster =
        Roster::load_stored_ignoring_expiry(&fed.sandbox.read("fed/roster.liaise")).unwrap();
    for (name, version) in [("probation.evidence", 2u8), ("prison.evidence", 1)] {
        let bundle = fed.sandbox.read(name);
        assert_eq!(bundle[8..10], [0, version], "{name}");
        assert!(verify_bundle(&bundle[..], &roster).is_ok());
        for i in (0..bundle.len()).step_by(7) {
            let mut bad = bundle.clone();
            bad[i] ^= 0x01;
            assert!(
                verify_bundle(&bad[..], &roster).is_err(),
                "{name}: flip at {i} of {} accepted",
                bundle.len()
            );
        }
    }
}
