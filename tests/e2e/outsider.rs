//! Outsiders: a node whose agency is not in the roster (its own federation, its own keys).
//!
//! The outsider pretends to be the prison: same agency id, listening at the address the
//! roster lists for the real prison (whose node is down), and its own federation lists the
//! real probation service (memberships are public), so its node does try to deliver there.
//! Neither way gets a document through: the member refuses the outsider's key in the TLS
//! handshake and logs it, and a member dialling the prison's address refuses the key that
//! answers. The member stays healthy: a legitimate delivery works afterwards.

use std::time::Duration;

use liaise_tests::Sandbox;

use super::nodes::{TestFederation, start_node, states};

const CITY: &str = "nl.city.utrecht";
const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

#[test]
fn an_outsider_can_neither_deliver_nor_receive() {
    let fed = TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    );
    let [city, probation, prison] = [&fed.agencies[0], &fed.agencies[1], &fed.agencies[2]];
    let _city_node = fed.start_with(city, &[], Some("city.log"));
    let _probation_node = fed.start_with(probation, &[], Some("probation.log"));
    let prison_address = fed.address(prison);

    // The outsider's own federation: an impostor "prison" and the real probation service.
    let evil = Sandbox::new();
    let fingerprint = evil.federation("fed", 1, 1);
    evil.agency("impostor", PRISON, "prison", &prison_address);
    std::fs::copy(
        fed.sandbox
            .path(&format!("{}/membership.toml", probation.home)),
        evil.path("probation-membership.toml"),
    )
    .unwrap();
    for membership in ["impostor/membership.toml", "probation-membership.toml"] {
        evil.liaise(&["federation", "add", "--dir", "fed", membership])
            .ok();
    }
    evil.publish("fed", "roster.liaise");
    evil.liaise(&[
        "roster",
        "import",
        "--home",
        "impostor",
        "roster.liaise",
        "--federation-fingerprint",
        &fingerprint,
    ])
    .ok();
    let _impostor_node = start_node(&evil, "impostor", &[], Some("impostor.log"));

    // The outsider tries to deliver to the probation service.
    std::fs::write(
        evil.path("fake.txt"),
        b"a document from outside the federation",
    )
    .unwrap();
    let fake = evil
        .liaise(&["send", "--home", "impostor", "--to", PROBATION, "fake.txt"])
        .ok()
        .trim()
        .to_owned();
    // The city sends to the "prison" and reaches the impostor's address.
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), b"for the real prison only").unwrap();
    let for_prison = sb
        .liaise(&["send", "--home", &city.home, "--to", PRISON, "report.txt"])
        .ok()
        .trim()
        .to_owned();

    let rows = fed.wait_outbox(city, Duration::from_secs(30), |rows| {
        rows.iter()
            .any(|r| r["doc_id"] == for_prison.as_str() && r["attempts"].as_u64() >= Some(2))
    });
    assert_eq!(states(&rows, &for_prison), vec!["queued"], "{rows:#?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = evil
            .liaise(&["outbox", "--home", "impostor", "--json"])
            .json();
        let rows = out.as_array().unwrap().clone();
        if rows
            .iter()
            .any(|r| r["doc_id"] == fake.as_str() && r["attempts"].as_u64() >= Some(2))
        {
            assert_eq!(states(&rows, &fake), vec!["queued"], "{rows:#?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let impostor_inbox = evil
        .liaise(&["inbox", "--home", "impostor", "--json"])
        .json();
    assert_eq!(impostor_inbox.as_array().unwrap().len(), 0);
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 0);

    // Both members logged the refusal of the unknown key.
    for log in ["probation.log", "city.log"] {
        let text = String::from_utf8_lossy(&sb.read(log)).into_owned();
        assert!(text.contains("refused peer"), "{log}:\n{text}");
    }

    // The probation node is still healthy: a legitimate delivery works.
    fed.deliver_text(city, PROBATION, "legit.txt", b"a real case document");
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 1);
}
