//! The receiver's disk is full, before the offer or halfway through the transfer: the sender
//! is told so (the outbox shows the reason), keeps the document queued, and delivers it,
//! byte for byte, once space is freed.
//!
//! The receiver's store lives on its own small tmpfs, filled up by another file. Mounting
//! needs root (or CAP_SYS_ADMIN); where that is not permitted the test says it is skipped and
//! returns, or fails under `LIAISE_E2E_REQUIRE_PRIVILEGES=1` (as in CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::nodes::{TestFederation, states};

/// Why a test is skipped where it cannot mount its tmpfs.
const CANNOT_MOUNT: &str = "disk_full: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)";

/// Size of the receiver's file system.
const TMPFS_SIZE: &str = "16m";
/// The free space left next to the filler: less than the document needs.
const LEFT_FREE: u64 = 2 * 1024 * 1024;
/// The document: larger than what is left.
const DOCUMENT_LEN: usize = 4 * 1024 * 1024;

/// A tmpfs mounted for the test; unmounted on drop (lazily, so a still-open file cannot
/// keep it).
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    /// A tmpfs of `size` (as `mount` takes it: `16m`) at `dir`, or `None` where mounting is
    /// not permitted.
    fn new(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let options = format!("size={size},mode=0700");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(Self(dir.to_path_buf())),
            _ => None,
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system at `dir` with one file, then gives `LEFT_FREE` bytes back.
fn fill(dir: &Path) -> PathBuf {
    let path = fill_up(dir);
    let written = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(written.saturating_sub(LEFT_FREE))
        .unwrap();
    path
}

/// Fills the file system at `dir` to the last byte with one file.
fn fill_up(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    // Large pieces while they fit, then smaller ones for what is left.
    for piece in [256 * 1024, 4096, 1] {
        let chunk = vec![0x5au8; piece];
        while file.write_all(&chunk).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

/// A city and a probation service whose store lives on a tmpfs of [`TMPFS_SIZE`]: the
/// federation, the store's path and the mount (unmounted when dropped); `None` where mounting
/// is not permitted (the test is then skipped, or fails as CI requires).
fn probation_store_on_a_small_tmpfs() -> Option<(TestFederation, PathBuf, TmpfsMount)> {
    let fed = TestFederation::city_and_probation();
    let store = fed.sandbox.path(&format!("{}/store", fed.agencies[1].home));
    let mount = TmpfsMount::new(&store, TMPFS_SIZE);
    if !liaise_tests::skip_unless(mount.is_some(), CANNOT_MOUNT) {
        return None;
    }
    mount.map(|mount| (fed, store, mount))
}

#[test]
fn disk_full_at_the_receiver_is_reported_and_the_document_waits() {
    let Some((fed, store, _mount)) = probation_store_on_a_small_tmpfs() else {
        return;
    };
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let sb = &fed.sandbox;
    let _city = fed.start(city);
    let _probation = fed.start(probation);
    let filler = fill(&store);

    let content: Vec<u8> = (0..DOCUMENT_LEN).map(|i| (i * 31 % 251) as u8).collect();
    let doc_id = fed.send_text(city, "nl.probation.utrecht", "big.bin", &content);
    let rows = fed.wait_outbox(city, Duration::from_secs(30), |rows| {
        rows.iter().any(|r| {
            r["doc_id"] == doc_id.as_str()
                && r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("disk full"))
        })
    });
    assert_eq!(states(&rows, &doc_id), vec!["queued"], "{rows:#?}");
    let text = sb.liaise(&["outbox", "--home", &city.home]);
    assert!(
        text.ok().contains("receiver disk full"),
        "the outbox names the reason: {}",
        text.stdout
    );
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 0);
    // The receiver is still healthy.
    fed.json(probation, &["status"]);

    // Space is freed: the next attempt delivers it.
    std::fs::remove_file(filler).unwrap();
    let rows = fed.wait_outbox(city, Duration::from_secs(30), |rows| {
        states(rows, &doc_id) == vec!["delivered"]
    });
    assert_eq!(states(&rows, &doc_id), vec!["delivered"]);
    let inbox = fed.json(probation, &["inbox"]);
    let blob = inbox[0]["blob"].as_str().unwrap().to_owned();
    assert_eq!(
        sb.stored(&probation.home, &blob).unwrap(),
        sb.stored(&city.home, &blob).unwrap()
    );
}

/// Size of the file system of the test where the disk fills during the transfer.
const MID_TRANSFER_TMPFS_SIZE: &str = "200m";
/// That test's document: fits when offered, with room to spare for the filler to take.
const MID_TRANSFER_LEN: usize = 160 * 1024 * 1024;

#[test]
fn a_disk_that_fills_during_the_transfer_keeps_the_document_queued_and_loses_nothing() {
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let sb = &fed.sandbox;
    let store = sb.path(&format!("{}/store", probation.home));
    let mount = TmpfsMount::new(&store, MID_TRANSFER_TMPFS_SIZE);
    if !liaise_tests::skip_unless(mount.is_some(), CANNOT_MOUNT) {
        return;
    }
    let _city = fed.start(city);
    // The whole file system is the city's quota: by default (25 %, 50 MiB) this document would
    // be over it, and as the city's first it would have to leave a quota free as well, which
    // 200 MiB does not hold. The disk, not the quota, is what fills here.
    let _probation = fed.start_with(
        probation,
        &["--agency-quota", "100%"],
        Some("probation.log"),
    );

    let content: Vec<u8> = (0..MID_TRANSFER_LEN).map(|i| (i * 7 % 253) as u8).collect();
    let doc_id = fed.send_text(city, "nl.probation.utrecht", "big.bin", &content);
    drop(content);
    // The offer fitted; once some of the document is in, something else takes every byte left.
    let point = super::crash::wait_for_transfer(&fed, &probation.home, 8 * 1024 * 1024);
    let filler = fill_up(&store);
    assert!(
        matches!(point, super::crash::KillPoint::MidTransfer(_)),
        "the transfer ended before the disk filled: {point:?}"
    );
    let rows = fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        rows.iter().any(|r| {
            r["doc_id"] == doc_id.as_str()
                && r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("disk full"))
        })
    });
    assert_eq!(states(&rows, &doc_id), vec!["queued"], "{rows:#?}");
    assert_eq!(fed.json(probation, &["inbox"]).as_array().unwrap().len(), 0);
    fed.json(probation, &["status"]);
    // The write that failed said so (later offers are refused before their first byte).
    let log = std::fs::read_to_string(sb.path("probation.log")).unwrap();
    assert!(
        log.contains("rejected: receiver disk full: no space left on the receiving node agency="),
        "{log}"
    );

    // Space is freed: delivered, and what the probation officer opens is the file sent.
    std::fs::remove_file(filler).unwrap();
    let rows = fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        states(rows, &doc_id) == vec!["delivered"]
    });
    assert_eq!(states(&rows, &doc_id), vec!["delivered"]);
    fed.assert_opens_as_sent(probation, &doc_id, "big.bin");
    let left = fed.incoming_files(probation);
    assert!(left.is_empty(), "incoming holds {left:?}");
}

/// The receiver's file system in the quota test: 64 MiB, so each agency's quota (25 %) is
/// 16 MiB.
const QUOTA_TMPFS_SIZE: &str = "64m";

/// A member that keeps nothing on a node may deliver one document larger than its quota, but
/// only if that leaves a quota free for the others: one member's single document (or a
/// partial file it never finishes) cannot take the room every other member delivers into.
#[test]
fn a_first_document_over_its_quota_must_leave_a_quota_free() {
    let fed = TestFederation::city_and_probation();
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let sb = &fed.sandbox;
    let store = sb.path(&format!("{}/store", probation.home));
    let mount = TmpfsMount::new(&store, QUOTA_TMPFS_SIZE);
    if !liaise_tests::skip_unless(mount.is_some(), CANNOT_MOUNT) {
        return;
    }
    let _nodes = [fed.start(city), fed.start(probation)];
    // Over the 16 MiB quota and leaving less than 16 MiB of the 64: refused, and why.
    let too_large = fed.send_text(
        city,
        "nl.probation.utrecht",
        "video.bin",
        &vec![7u8; 52 << 20],
    );
    let rows = fed.wait_outbox(city, Duration::from_secs(60), |rows| {
        rows.iter().any(|r| {
            r["doc_id"] == too_large.as_str()
                && r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("one agency's quota"))
        })
    });
    assert_eq!(states(&rows, &too_large), vec!["queued"], "{rows:#?}");
    // Over the quota but leaving one free: the first document of an agency that keeps
    // nothing there still arrives.
    let fits = fed.deliver_text(
        city,
        "nl.probation.utrecht",
        "smaller.bin",
        &vec![8u8; 32 << 20],
    );
    let inbox = fed.json(probation, &["inbox"]);
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox:#}");
    assert_eq!(inbox[0]["doc_id"], fits.as_str());
}

#[test]
fn a_full_disk_at_the_reader_is_named_as_its_own_when_it_opens() {
    let Some((fed, store, _mount)) = probation_store_on_a_small_tmpfs() else {
        return;
    };
    let [city, probation] = [&fed.agencies[0], &fed.agencies[1]];
    let sb = &fed.sandbox;
    let _city = fed.start(city);
    let _probation = fed.start(probation);
    let doc_id = fed.deliver_text(city, "nl.probation.utrecht", "report.txt", b"Case 17");
    // The reader's own store fills up: asking for the key share cannot be recorded there.
    let filler = fill_up(&store);
    let open = [
        "open",
        "--home",
        &probation.home,
        &doc_id,
        "--out-dir",
        "opened",
        "--reason",
        "case review",
    ];
    let refused = sb.liaise(&open);
    let line = refused.fails_with("this node's disk is full");
    assert!(line.contains("free space on that disk"), "{line}");
    assert!(!line.contains("refused"), "nobody refused anything: {line}");
    assert!(!sb.path("opened").exists(), "{line}");
    // Space freed: the same open works.
    std::fs::remove_file(filler).unwrap();
    sb.liaise(&open).ok();
    assert_eq!(sb.read("opened/report.txt"), b"Case 17");
}
