//! Tests of [`SignerKeys`] against the rules of `docs/spec/log.md`, "Which key checks a
//! signature", with real rosters signed by stewards and real signed checkpoints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use liaise_keys::roster::{
    Group, Member, RevokedKey, Roster, RosterBody, SignedRoster, StewardSet, certify,
};
use liaise_keys::{
    AgencyId, AgencyKind, AgencySecrets, Country, KemAlgorithm, SigningSecretKey, Timestamp,
};
use liaise_protocol::log::{CHECKPOINT_VERSION, CheckpointBody, SignedCheckpoint};

use super::{SignerKeys, SignerProblem};
use crate::home::Home;

pub(crate) const NOW: Timestamp = Timestamp(1_800_000_000);
const DAY: u64 = 86_400;
/// When the current roster revokes a key, in the tests that revoke one.
const REVOKED_AT: Timestamp = Timestamp(NOW.0 + 10 * DAY);

pub(crate) const CITY: &str = "nl.city.utrecht";
pub(crate) const PROBATION: &str = "nl.probation.utrecht";

/// One identity of an agency: its secret keys and its roster entry.
pub(crate) struct Identity {
    pub(crate) secrets: AgencySecrets,
    pub(crate) member: Member,
}

pub(crate) fn identity(id: &str) -> Identity {
    let secrets = AgencySecrets::generate(KemAlgorithm::X25519);
    let agency = AgencyId::new(id).unwrap();
    let (transport, encryption) = certify(
        &agency,
        &secrets,
        Timestamp(NOW.0 - DAY),
        Timestamp(NOW.0 + 365 * DAY),
    );
    let member = Member {
        id: agency,
        name: format!("Agency {id}"),
        kind: AgencyKind::Probation,
        country: Country::new("NL").unwrap(),
        signing_key: secrets.signing.public_key(),
        transport: vec![transport],
        encryption: encryption.into_iter().collect(),
        addresses: vec!["127.0.0.1:7000".into()],
    };
    Identity { secrets, member }
}

/// A steward set, two of three.
pub(crate) struct Stewards(Vec<SigningSecretKey>);

impl Stewards {
    pub(crate) fn generate() -> Self {
        Self((0..3).map(|_| SigningSecretKey::generate()).collect())
    }

    fn set(&self) -> StewardSet {
        StewardSet {
            threshold: 2,
            keys: self.0.iter().map(SigningSecretKey::public_key).collect(),
        }
    }

    /// The two keys that meet the threshold.
    pub(crate) fn quorum(&self) -> Vec<&SigningSecretKey> {
        self.0.iter().take(2).collect()
    }
}

/// A roster of `members` naming `stewards` as the next signers, signed by `signers`.
pub(crate) fn roster(
    serial: u64,
    stewards: &Stewards,
    signers: &[&SigningSecretKey],
    members: &[&Identity],
    revoked: Vec<RevokedKey>,
) -> Roster {
    let body = RosterBody {
        federation: "Utrecht safety house".into(),
        serial,
        issued_at: Timestamp(NOW.0 + serial * DAY),
        expires_at: Timestamp(NOW.0 + (serial + 30) * DAY),
        stewards: stewards.set(),
        members: members.iter().map(|i| i.member.clone()).collect(),
        groups: vec![Group {
            name: "case-conference".into(),
            members: members.iter().map(|i| i.member.id.clone()).collect(),
        }],
        revoked,
    };
    let file = SignedRoster::sign(&body, signers).to_bytes();
    Roster::load_stored_ignoring_expiry(&file).unwrap()
}

pub(crate) fn revocation(of: &Identity, at: Timestamp) -> RevokedKey {
    RevokedKey {
        fingerprint: of.secrets.signing.public_key().fingerprint(),
        agency: Some(of.member.id.clone()),
        revoked_at: at,
    }
}

/// A checkpoint of `by`'s log dated `time`, signed with `by`'s signing key.
pub(crate) fn checkpoint(by: &Identity, time: Timestamp) -> SignedCheckpoint {
    let body = CheckpointBody {
        version: CHECKPOINT_VERSION,
        agency: by.member.id.clone(),
        seq: 7,
        head: [0x5a; 32],
        time,
    };
    SignedCheckpoint::sign(&body, &by.secrets.signing)
}

/// What `log verify` does with a checkpoint: the signer and date it claims pick the keys.
fn check(keys: &SignerKeys, signed: &SignedCheckpoint) -> Result<(), SignerProblem> {
    let claimed = signed.body_unverified().unwrap();
    let body = keys.verify(&claimed.agency, claimed.time, |key| signed.verify(key))?;
    assert_eq!(body, claimed);
    Ok(())
}

/// The federation after the city was revoked and re-admitted with a new identity: roster 1
/// lists `old`, roster 2 lists `new` and revokes `old` at [`REVOKED_AT`].
pub(crate) struct Readmitted {
    pub(crate) stewards: Stewards,
    pub(crate) old: Identity,
    pub(crate) new: Identity,
    pub(crate) probation: Identity,
    pub(crate) first: Roster,
    pub(crate) current: Roster,
}

pub(crate) fn readmitted() -> Readmitted {
    let stewards = Stewards::generate();
    let (old, new, probation) = (identity(CITY), identity(CITY), identity(PROBATION));
    let first = roster(
        1,
        &stewards,
        &stewards.quorum(),
        &[&old, &probation],
        vec![],
    );
    let current = roster(
        2,
        &stewards,
        &stewards.quorum(),
        &[&new, &probation],
        vec![revocation(&old, REVOKED_AT)],
    );
    Readmitted {
        stewards,
        old,
        new,
        probation,
        first,
        current,
    }
}

#[test]
fn key_of_an_older_roster_is_accepted_before_its_revocation() {
    let fed = readmitted();
    let keys = SignerKeys::from_history(&fed.current, vec![fed.first.clone()]);
    for time in [NOW, Timestamp(REVOKED_AT.0 - 1)] {
        assert_eq!(
            check(&keys, &checkpoint(&fed.old, time)),
            Ok(()),
            "{time:?}"
        );
    }
    // Without the history the old key is not known at all.
    let current_only = SignerKeys::from_history(&fed.current, vec![]);
    assert_eq!(
        check(&current_only, &checkpoint(&fed.old, NOW)),
        Err(SignerProblem::DoesNotVerify)
    );
}

#[test]
fn key_revoked_by_the_current_roster_is_refused_at_and_after_its_revocation() {
    let fed = readmitted();
    let keys = SignerKeys::from_history(&fed.current, vec![fed.first.clone()]);
    for time in [REVOKED_AT, Timestamp(REVOKED_AT.0 + 1), Timestamp(u64::MAX)] {
        assert_eq!(
            check(&keys, &checkpoint(&fed.old, time)),
            Err(SignerProblem::DoesNotVerify),
            "{time:?}"
        );
    }
    // The re-admitted identity signs before and after the old key's revocation.
    for time in [NOW, REVOKED_AT, Timestamp(REVOKED_AT.0 + DAY)] {
        assert_eq!(
            check(&keys, &checkpoint(&fed.new, time)),
            Ok(()),
            "{time:?}"
        );
    }
    // A key is never accepted for another agency's checkpoint, however it is dated.
    let mut forged = checkpoint(&fed.probation, NOW).body_unverified().unwrap();
    forged.agency = AgencyId::new(CITY).unwrap();
    let forged = SignedCheckpoint::sign(&forged, &fed.probation.secrets.signing);
    assert_eq!(check(&keys, &forged), Err(SignerProblem::DoesNotVerify));
}

#[test]
fn history_is_read_from_the_rosters_the_node_stored() {
    let fed = readmitted();
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().to_path_buf());
    home.store_roster(&fed.first).unwrap();
    home.store_roster(&fed.current).unwrap();
    // Files that are not rosters are left out without failing the load.
    std::fs::write(dir.path().join("rosters/3.liaise"), b"not a roster").unwrap();
    std::fs::write(dir.path().join("rosters/notes.txt"), b"hello").unwrap();
    let keys = SignerKeys::load(&home, &fed.current).unwrap();
    assert_eq!(check(&keys, &checkpoint(&fed.old, NOW)), Ok(()));
    assert_eq!(
        check(&keys, &checkpoint(&fed.old, REVOKED_AT)),
        Err(SignerProblem::DoesNotVerify)
    );
    // A home without a history has only the current roster's keys.
    let empty = tempfile::tempdir().unwrap();
    let keys = SignerKeys::load(&Home::new(empty.path().to_path_buf()), &fed.current).unwrap();
    assert_eq!(
        check(&keys, &checkpoint(&fed.old, NOW)),
        Err(SignerProblem::DoesNotVerify)
    );
    assert_eq!(check(&keys, &checkpoint(&fed.new, NOW)), Ok(()));
}

#[test]
fn planted_roster_not_signed_by_the_stewards_adds_no_keys() {
    let fed = readmitted();
    // Someone with write access to the disk but no steward key plants an "older" roster,
    // signed by stewards of their own, giving the city a key they hold and adding a stranger.
    let intruders = Stewards::generate();
    let (fake_city, stranger) = (identity(CITY), identity("nl.prison.vught"));
    let planted = roster(
        1,
        &intruders,
        &intruders.quorum(),
        &[&fake_city, &stranger],
        vec![],
    );
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().to_path_buf());
    home.store_roster(&fed.current).unwrap();
    std::fs::write(dir.path().join("rosters/1.liaise"), planted.file_bytes()).unwrap();

    let keys = SignerKeys::load(&home, &fed.current).unwrap();
    assert_eq!(
        check(&keys, &checkpoint(&fake_city, NOW)),
        Err(SignerProblem::DoesNotVerify)
    );
    assert_eq!(
        check(&keys, &checkpoint(&stranger, NOW)),
        Err(SignerProblem::NotInRoster)
    );
    assert_eq!(check(&keys, &checkpoint(&fed.new, NOW)), Ok(()));

    // Beside the genuine roster of the same serial, it still adds nothing, in any order.
    std::fs::write(dir.path().join("rosters/1.liaise"), fed.first.file_bytes()).unwrap();
    std::fs::write(
        dir.path().join("rosters/1-copy.liaise"),
        planted.file_bytes(),
    )
    .unwrap();
    let keys = SignerKeys::load(&home, &fed.current).unwrap();
    assert_eq!(
        check(&keys, &checkpoint(&fake_city, NOW)),
        Err(SignerProblem::DoesNotVerify)
    );
    for older in [
        vec![fed.first.clone(), planted.clone()],
        vec![planted.clone(), fed.first.clone()],
    ] {
        let keys = SignerKeys::from_history(&fed.current, older);
        assert_eq!(
            check(&keys, &checkpoint(&fake_city, NOW)),
            Err(SignerProblem::DoesNotVerify)
        );
    }
}

#[test]
fn walk_stops_at_the_first_roster_that_does_not_chain() {
    let fed = readmitted();
    // Roster 4 is genuine and chains to roster 2; a planted roster takes serial 3 between them.
    let fourth = roster(
        4,
        &fed.stewards,
        &fed.stewards.quorum(),
        &[&fed.new, &fed.probation],
        vec![revocation(&fed.old, REVOKED_AT)],
    );
    let intruders = Stewards::generate();
    let fake_city = identity(CITY);
    let planted = roster(3, &intruders, &intruders.quorum(), &[&fake_city], vec![]);
    let keys = SignerKeys::from_history(&fourth, vec![fed.first.clone(), planted, fed.current]);
    assert_eq!(
        check(&keys, &checkpoint(&fake_city, NOW)),
        Err(SignerProblem::DoesNotVerify)
    );
    // As the spec says, rosters behind the planted one are not read: roster 1's key is lost.
    assert_eq!(
        check(&keys, &checkpoint(&fed.old, NOW)),
        Err(SignerProblem::DoesNotVerify)
    );
    assert_eq!(check(&keys, &checkpoint(&fed.new, NOW)), Ok(()));
}

#[test]
fn roster_signed_by_too_few_of_the_previous_stewards_does_not_chain() {
    // Roster 2 hands over to new stewards but carries only one signature of the old ones: it
    // is not what `accept_update` took, so roster 1 does not count behind it.
    let (old_stewards, new_stewards) = (Stewards::generate(), Stewards::generate());
    let (city, probation) = (identity(CITY), identity(PROBATION));
    let first = roster(
        1,
        &old_stewards,
        &old_stewards.quorum(),
        &[&city, &probation],
        vec![],
    );
    let mut signers = new_stewards.quorum();
    signers.push(&old_stewards.0[0]);
    let current = roster(2, &new_stewards, &signers, &[&city], vec![]);
    let keys = SignerKeys::from_history(&current, vec![first.clone()]);
    assert_eq!(
        check(&keys, &checkpoint(&probation, NOW)),
        Err(SignerProblem::NotInRoster)
    );

    // With the old stewards' threshold as well, the hand-over chains and roster 1 counts.
    signers.push(&old_stewards.0[1]);
    let current = roster(2, &new_stewards, &signers, &[&city], vec![]);
    let keys = SignerKeys::from_history(&current, vec![first]);
    assert_eq!(check(&keys, &checkpoint(&probation, NOW)), Ok(()));
}

#[test]
fn agency_that_left_the_federation_keeps_its_earlier_signatures() {
    let stewards = Stewards::generate();
    let (city, probation) = (identity(CITY), identity(PROBATION));
    let first = roster(
        1,
        &stewards,
        &stewards.quorum(),
        &[&city, &probation],
        vec![],
    );
    // The probation service leaves: it drops out of roster 2 without a revocation.
    let left = roster(2, &stewards, &stewards.quorum(), &[&city], vec![]);
    let keys = SignerKeys::from_history(&left, vec![first.clone()]);
    assert_eq!(check(&keys, &checkpoint(&probation, NOW)), Ok(()));
    // Only the history knows it: without it the agency is in no roster.
    let keys = SignerKeys::from_history(&left, vec![]);
    assert_eq!(
        check(&keys, &checkpoint(&probation, NOW)),
        Err(SignerProblem::NotInRoster)
    );

    // Removed and revoked: signatures before the revocation stay valid, later ones do not.
    let revoked = roster(
        2,
        &stewards,
        &stewards.quorum(),
        &[&city],
        vec![revocation(&probation, REVOKED_AT)],
    );
    let keys = SignerKeys::from_history(&revoked, vec![first]);
    assert_eq!(
        check(&keys, &checkpoint(&probation, Timestamp(REVOKED_AT.0 - 1))),
        Ok(())
    );
    assert_eq!(
        check(&keys, &checkpoint(&probation, REVOKED_AT)),
        Err(SignerProblem::DoesNotVerify)
    );
}

#[test]
fn stored_rosters_newer_than_the_current_one_are_ignored() {
    let fed = readmitted();
    // Roster 2's successor, which this node never took, must not speak for roster 1's time.
    let newcomer = identity("nl.prison.vught");
    let later = roster(
        3,
        &fed.stewards,
        &fed.stewards.quorum(),
        &[&newcomer],
        vec![],
    );
    let keys = SignerKeys::from_history(&fed.first, vec![fed.current.clone(), later]);
    assert_eq!(
        check(&keys, &checkpoint(&newcomer, NOW)),
        Err(SignerProblem::NotInRoster)
    );
    assert_eq!(
        check(&keys, &checkpoint(&fed.new, NOW)),
        Err(SignerProblem::DoesNotVerify)
    );
    assert_eq!(check(&keys, &checkpoint(&fed.old, REVOKED_AT)), Ok(()));
}
