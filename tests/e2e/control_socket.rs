//! The control socket takes a small sealed document inline, as `liaise send` hands it over,
//! and checks it before anything is queued.

use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;

use liaise_node::control::INLINE_MAX_LEN;
use liaise_node::store::hex;
use serde_json::Value;

use super::nodes::TestFederation;

const PROBATION: &str = "nl.probation.utrecht";
const PRISON: &str = "nl.prison.vught";

/// One `submit_sealed` request with `body` after its line (announcing `len` bytes), the
/// writing side then closed; the node's answer.
fn submit_sealed(socket: &Path, len: u64, body: &[u8]) -> Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    let line = format!("{{\"op\":\"submit_sealed\",\"len\":{len}}}\n");
    stream.write_all(line.as_bytes()).unwrap();
    // The node may answer (and close) before reading a body it refuses.
    let _ = stream.write_all(body);
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn refusal(answer: &Value) -> &str {
    assert_eq!(answer["ok"], false, "accepted: {answer}");
    answer["error"].as_str().unwrap()
}

/// Altered bytes, a body shorter than announced, one too large for the socket and another
/// agency's document are each refused with an error that says so, and nothing is queued; the
/// untouched document is then queued, once, for its recipient.
#[test]
fn a_sealed_document_handed_over_the_socket_is_checked_before_it_is_queued() {
    let fed = TestFederation::new(&[(PROBATION, "probation"), (PRISON, "prison")], &[]);
    let [probation, prison] = [&fed.agencies[0], &fed.agencies[1]];
    let _prison = fed.start(prison);
    let sb = &fed.sandbox;
    std::fs::write(sb.path("note.txt"), b"risk assessment, summary").unwrap();
    let seal = |home: &str, to: &str, out: &str| {
        sb.liaise(&[
            "seal",
            "--home",
            home,
            "--to",
            to,
            "--offline",
            "--out",
            out,
            "note.txt",
        ])
        .ok();
        sb.read(out)
    };
    let sealed = seal(&prison.home, PROBATION, "mine.liaise");
    let theirs = seal(&probation.home, PRISON, "theirs.liaise");
    let socket = sb.path(&format!("{}/run/control.sock", prison.home));
    let len = sealed.len() as u64;

    let mut altered = sealed.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 1;
    let answer = submit_sealed(&socket, len, &altered);
    assert!(refusal(&answer).contains("does not verify"), "{answer}");

    let answer = submit_sealed(&socket, len, &sealed[..sealed.len() - 10]);
    let error = refusal(&answer);
    assert!(
        error.contains(&format!("ended after {} of {len} bytes", len - 10)),
        "{error}"
    );

    let answer = submit_sealed(&socket, INLINE_MAX_LEN + 1, &[]);
    assert!(refusal(&answer).contains("too large"), "{answer}");

    let answer = submit_sealed(&socket, theirs.len() as u64, &theirs);
    assert!(
        refusal(&answer).contains(&format!("sealed by {PROBATION}")),
        "{answer}"
    );
    assert_eq!(fed.json(prison, &["outbox"]).as_array().unwrap().len(), 0);

    let answer = submit_sealed(&socket, len, &sealed);
    assert_eq!(answer["ok"], true, "{answer}");
    let id = liaise_protocol::danger_read_unverified_header(sealed.as_slice())
        .unwrap()
        .document_id
        .0;
    assert_eq!(answer["result"]["doc_id"], hex(&id));
    let outbox = fed.json(prison, &["outbox"]);
    let rows = outbox.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{outbox}");
    assert_eq!(rows[0]["doc_id"], hex(&id));
    assert_eq!(rows[0]["recipient"], PROBATION);
}

/// A large sealed file staged for `submit` that another agency sealed is refused before it
/// is moved into the blob folder: no copy of it stays behind without an outbox row.
#[test]
fn a_staged_document_of_another_agency_is_refused_and_not_kept() {
    let fed = TestFederation::new(&[(PROBATION, "probation"), (PRISON, "prison")], &[]);
    let [probation, prison] = [&fed.agencies[0], &fed.agencies[1]];
    let _prison = fed.start(prison);
    let sb = &fed.sandbox;
    let large = usize::try_from(INLINE_MAX_LEN).unwrap() + 64 * 1024;
    std::fs::write(sb.path("report.bin"), vec![7u8; large]).unwrap();
    sb.liaise(&[
        "seal",
        "--home",
        &probation.home,
        "--to",
        PRISON,
        "--offline",
        "--out",
        "theirs.liaise",
        "report.bin",
    ])
    .ok();
    let theirs = sb.read("theirs.liaise");
    let staged = sb.path(&format!("{}/store/staging/theirs.sealed", prison.home));
    std::fs::write(&staged, &theirs).unwrap();

    let socket = sb.path(&format!("{}/run/control.sock", prison.home));
    let mut stream = UnixStream::connect(socket).unwrap();
    let request = serde_json::json!({ "op": "submit", "path": staged });
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert!(
        refusal(&answer).contains(&format!("sealed by {PROBATION}")),
        "{answer}"
    );
    let hash = liaise_protocol::wire::content_hash(&theirs);
    assert_eq!(sb.stored(&prison.home, &hex(&hash)), None);
    assert_eq!(fed.json(prison, &["outbox"]).as_array().unwrap().len(), 0);
}

/// `liaise open` no longer asks the originator for a document not addressed to this agency,
/// but a member's node can still ask: the originator refuses it as not a reader, and logs the
/// refusal.
#[test]
fn the_originator_refuses_a_share_to_a_node_that_is_not_a_reader() {
    const CITY: &str = "nl.city.utrecht";
    let fed = TestFederation::new(
        &[(CITY, "city"), (PROBATION, "probation"), (PRISON, "prison")],
        &[],
    );
    let [city, prison] = [&fed.agencies[0], &fed.agencies[2]];
    let _nodes = [fed.start(city), fed.start(prison)];
    let sb = &fed.sandbox;
    std::fs::write(sb.path("report.txt"), b"Case 17").unwrap();
    let doc = sb
        .liaise(&[
            "seal",
            "--home",
            &city.home,
            "--to",
            PROBATION,
            "--out",
            "report.liaise",
            "report.txt",
            "--json",
        ])
        .json()["doc_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The CLI does not ask.
    sb.liaise(&[
        "open",
        "--home",
        &prison.home,
        "report.liaise",
        "--out-dir",
        "out",
        "--reason",
        "curious",
    ])
    .fails_with(&format!("the document is not addressed to you ({PRISON})"));
    let refused = |log: &Value| {
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "share-refused" && e["agency"] == PRISON)
    };
    assert!(!refused(&fed.json(city, &["log"])));
    // The prison's node asks all the same.
    let socket = sb.path(&format!("{}/run/control.sock", prison.home));
    let mut stream = UnixStream::connect(socket).unwrap();
    let request = serde_json::json!({
        "op": "fetch_share", "doc_id": doc, "originator": CITY, "reason": "curious",
    });
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    assert!(answer.contains("not a reader"), "{answer}");
    assert!(refused(&fed.json(city, &["log"])));
}

/// Another local user reaches the socket only if its modes were loosened; even then the node
/// refuses it, from the kernel's account of who connected, with what to do instead. Needs
/// root, to run the client as `nobody`; otherwise says it is skipped, or fails under
/// `LIAISE_E2E_REQUIRE_PRIVILEGES=1`.
#[test]
fn another_user_is_refused_even_through_a_loosened_socket() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fed = TestFederation::new(&[(PRISON, "prison")], &[]);
    let prison = &fed.agencies[0];
    let sb = &fed.sandbox;
    if !liaise_tests::skip_unless(
        std::fs::metadata(sb.root()).unwrap().uid() == 0,
        "not root: cannot run a client as another user",
    ) {
        return;
    }
    let _prison = fed.start(prison);
    // The mistake: every folder on the way traversable, the socket writable by all. The
    // binary is copied where `nobody` may run it.
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let home = sb.path(&prison.home);
    for dir in [sb.root(), &home, &home.join("run")] {
        mode(dir, 0o711);
    }
    mode(&home.join("run/control.sock"), 0o666);
    let bin = sb.path("liaise-for-nobody");
    std::fs::copy(liaise_tests::liaise_bin(), &bin).unwrap();
    mode(&bin, 0o755);

    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["status", "--home"])
        .arg(&home)
        .output()
        .expect("setpriv (util-linux) runs the client as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("refused a client running as uid 65534")
            && stderr.contains("run the command as that user"),
        "{stderr}"
    );
    // The node's own user is served as before.
    assert_eq!(fed.json(prison, &["status"])["agency"], PRISON);
}
