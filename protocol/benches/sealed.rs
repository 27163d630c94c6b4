//! Sealed-document figures, printed side by side (not a timed test):
//!
//! - seal and open of a 1 GiB file beside `age` encrypt and decrypt of the same file
//!   (target: within 1.25× of age), median of three rounds, dirty pages flushed before each
//!   timed step;
//! - peak memory (VmHWM) of seal and open at 1 GiB and 4 GiB (target: ≤ 32 MiB and flat);
//! - seal rate for 1000 documents of 10 KiB; seal time for 1 and 100 recipients.
//!
//! `cargo bench -p liaise-protocol --bench sealed` runs everything (about 17 GB of scratch
//! disk in the system temp dir; removed afterwards). `-- quick` uses 64 MiB and 256 MiB
//! instead of 1 GiB and 4 GiB. Each seal and open runs in a child process of this binary so
//! that its peak memory is its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use liaise_keys::{AgencyId, EncryptionSecretKey, KemAlgorithm, SigningSecretKey, Timestamp};
use liaise_protocol::{
    KeyCustody, RecipientPolicy, RecipientSpec, SealRequest, SectionInput, SectionMetadata,
    TrustedSigner, open, seal,
};

const MIB: u64 = 1024 * 1024;
/// Rounds of seal, open and age at the first size; medians are printed.
const ROUNDS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("child") {
        child(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("primitives") {
        primitives();
        return;
    }
    let quick = args.iter().any(|a| a == "quick");
    let (big, bigger) = if quick {
        (64 * MIB, 256 * MIB)
    } else {
        (1024 * MIB, 4096 * MIB)
    };
    let dir = tempfile::tempdir().unwrap();
    println!(
        "sealed-document figures ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "measure", "liaise", "age", "ratio"
    );

    let input = dir.path().join("input.bin");
    write_input(&input, big);
    let label = human(big);
    let sealed = dir.path().join("input.liaise");
    let opened = dir.path().join("opened.bin");
    // Liaise and age side by side in each round; the medians are printed. Dirty pages are
    // flushed before every timed step, so that no step pays for an earlier one's writeback.
    let (mut seal_times, mut open_times, mut age_enc, mut age_dec) =
        (vec![], vec![], vec![], vec![]);
    let (mut seal_hwm, mut open_hwm) = (0, 0);
    for _ in 0..ROUNDS {
        // Like age's, each round's output is a new file: overwriting the last round's would
        // make the timed step pay for freeing its pages.
        let _ = std::fs::remove_file(&sealed);
        sync();
        let (time, hwm) = run_child(&["seal", path(&input), path(&sealed)]);
        seal_times.push(time);
        seal_hwm = seal_hwm.max(hwm);
        sync();
        let (time, hwm) = run_child(&["open", path(&sealed), path(&opened)]);
        open_times.push(time);
        open_hwm = open_hwm.max(hwm);
        assert_eq!(std::fs::metadata(&opened).unwrap().len(), big);
        std::fs::remove_file(&opened).unwrap();
        if let Some((encrypt, decrypt)) = age_times(dir.path(), &input) {
            age_enc.push(encrypt);
            age_dec.push(decrypt);
        }
    }
    row(
        &format!("seal / age encrypt, {label}"),
        median(&mut seal_times),
        (!age_enc.is_empty()).then(|| median(&mut age_enc)),
    );
    row(
        &format!("open / age decrypt, {label}"),
        median(&mut open_times),
        (!age_dec.is_empty()).then(|| median(&mut age_dec)),
    );
    println!(
        "{:<40} {:>12}",
        format!("peak memory seal, {label}"),
        kib(seal_hwm)
    );
    println!(
        "{:<40} {:>12}",
        format!("peak memory open, {label}"),
        kib(open_hwm)
    );
    std::fs::remove_file(&sealed).unwrap();
    std::fs::remove_file(&input).unwrap();

    write_input(&input, bigger);
    let label = human(bigger);
    let (_, seal_hwm) = run_child(&["seal", path(&input), path(&sealed)]);
    std::fs::remove_file(&input).unwrap();
    let (_, open_hwm) = run_child(&["open", path(&sealed), "/dev/null"]);
    println!(
        "{:<40} {:>12}",
        format!("peak memory seal, {label}"),
        kib(seal_hwm)
    );
    println!(
        "{:<40} {:>12}",
        format!("peak memory open, {label}"),
        kib(open_hwm)
    );
    std::fs::remove_file(&sealed).unwrap();

    let content = vec![0x42u8; 10 * 1024];
    let keys = Keys::new(1);
    let start = Instant::now();
    for _ in 0..1000 {
        seal_bytes(&keys, &content, &mut std::io::sink());
    }
    let per_sec = 1000.0 / start.elapsed().as_secs_f64();
    println!(
        "{:<40} {:>12}",
        "seal rate, 1000 docs of 10 KiB",
        format!("{per_sec:.0} docs/s")
    );
    for n in [1, 100] {
        let keys = Keys::new(n);
        let start = Instant::now();
        seal_bytes(&keys, &content, &mut std::io::sink());
        println!(
            "{:<40} {:>12}",
            format!("seal 10 KiB to {n} X-Wing recipients"),
            secs(start.elapsed())
        );
    }
}

/// Fixed keys, so that the parent and its children agree.
struct Keys {
    sender: AgencyId,
    signing: SigningSecretKey,
    recipients: Vec<(AgencyId, EncryptionSecretKey)>,
}

impl Keys {
    fn new(n: usize) -> Self {
        Self {
            sender: AgencyId::new("nl.probation.utrecht").unwrap(),
            signing: SigningSecretKey::from_bytes(&[1; 32]),
            recipients: (0..n)
                .map(|i| {
                    let id = AgencyId::new(&format!("nl.court.c{i}")).unwrap();
                    let seed = [(i % 256) as u8 ^ 0x5a; 32];
                    (
                        id,
                        EncryptionSecretKey::from_bytes(KemAlgorithm::XWing, &seed).unwrap(),
                    )
                })
                .collect(),
        }
    }

    fn request<'a>(&'a self, len: u64, content: &'a mut dyn Read) -> SealRequest<'a> {
        SealRequest {
            sender: self.sender.clone(),
            signing_key: &self.signing,
            created: Timestamp(1_790_000_000),
            label: "restricted".into(),
            purpose: "benchmark".into(),
            custody: KeyCustody::Offline,
            sections: vec![SectionInput {
                name: "main".into(),
                metadata: SectionMetadata {
                    file_name: "input.bin".into(),
                    media_type: "application/octet-stream".into(),
                    title: String::new(),
                },
                content_len: len,
                content,
            }],
            recipients: self
                .recipients
                .iter()
                .map(|(id, key)| RecipientSpec {
                    agency: id.clone(),
                    key: key.public_key().clone(),
                    policy: RecipientPolicy {
                        sections: vec![0],
                        not_after: None,
                        forward_to: Vec::new(),
                    },
                })
                .collect(),
        }
    }
}

fn seal_bytes(keys: &Keys, content: &[u8], out: &mut dyn Write) {
    let mut reader = content;
    seal(keys.request(content.len() as u64, &mut reader), out).unwrap();
}

/// `child seal IN OUT` or `child open IN OUT`: does the work, prints its VmHWM in KiB.
fn child(args: &[String]) {
    let keys = Keys::new(1);
    match args[0].as_str() {
        "seal" => {
            let len = std::fs::metadata(&args[1]).unwrap().len();
            let mut input = BufReader::with_capacity(256 * 1024, File::open(&args[1]).unwrap());
            let mut out = BufWriter::with_capacity(256 * 1024, File::create(&args[2]).unwrap());
            seal(keys.request(len, &mut input), &mut out).unwrap();
            out.flush().unwrap();
        }
        "open" => {
            let input = BufReader::with_capacity(256 * 1024, File::open(&args[1]).unwrap());
            let (me, key) = &keys.recipients[0];
            let trust = TrustedSigner {
                agency: keys.sender.clone(),
                key: keys.signing.public_key(),
            };
            let target = args[2].clone();
            open(
                input,
                me,
                std::slice::from_ref(key),
                &trust,
                Timestamp(1_790_000_001),
                |_| File::create(&target).map(|f| BufWriter::with_capacity(256 * 1024, f)),
            )
            .unwrap();
        }
        other => panic!("unknown child mode {other}"),
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!("{hwm}");
}

fn run_child(args: &[&str]) -> (Duration, u64) {
    let start = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .args(args)
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hwm = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (elapsed, hwm)
}

/// age encrypt and decrypt times of the same file, if `age` is installed.
fn age_times(dir: &Path, input: &Path) -> Option<(Duration, Duration)> {
    let key = dir.join("age-key.txt");
    let keygen = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .ok()?;
    if !keygen.status.success() {
        return None;
    }
    let recipient = String::from_utf8_lossy(&keygen.stderr)
        .trim()
        .strip_prefix("Public key: ")?
        .to_owned();
    let encrypted = dir.join("input.age");
    sync();
    let start = Instant::now();
    let ok = Command::new("age")
        .args(["-r", &recipient, "-o"])
        .arg(&encrypted)
        .arg(input)
        .status()
        .ok()?;
    let encrypt = start.elapsed();
    let decrypted = dir.join("age-out.bin");
    sync();
    let start = Instant::now();
    let ok2 = Command::new("age")
        .args(["-d", "-i"])
        .arg(&key)
        .arg("-o")
        .arg(&decrypted)
        .arg(&encrypted)
        .status()
        .ok()?;
    let decrypt = start.elapsed();
    let _ = std::fs::remove_file(&encrypted);
    let _ = std::fs::remove_file(&decrypted);
    (ok.success() && ok2.success()).then_some((encrypt, decrypt))
}

/// Flushes dirty pages to disk (outside any timed step).
fn sync() {
    let _ = Command::new("sync").status();
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn write_input(path: &Path, len: u64) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut block = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for i in 0..len / MIB {
        block[0] = i as u8;
        out.write_all(&block).unwrap();
    }
    out.flush().unwrap();
}

fn row(name: &str, liaise: Duration, age: Option<Duration>) {
    match age {
        Some(a) => println!(
            "{name:<40} {:>12} {:>12} {:>7.2}x",
            secs(liaise),
            secs(a),
            liaise.as_secs_f64() / a.as_secs_f64()
        ),
        None => println!("{name:<40} {:>12} {:>12}", secs(liaise), "(no age)"),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn secs(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    }
}

fn kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * MIB {
        format!("{} GiB", bytes / (1024 * MIB))
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// Throughput of the primitives a section streams through, for reading the figures above.
fn primitives() {
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
    use sha2::{Digest, Sha256, Sha512};
    let rounds = 4096; // 256 MiB
    let rate = |name: &str, f: &mut dyn FnMut(&mut [u8])| {
        let mut buf = vec![7u8; 64 * 1024];
        let start = Instant::now();
        for _ in 0..rounds {
            f(&mut buf);
        }
        let mb = (rounds * 64 * 1024) as f64 / 1e6;
        println!(
            "{name:<40} {:>9.0} MB/s",
            mb / start.elapsed().as_secs_f64()
        );
    };
    let cipher = ChaCha20Poly1305::new(&[1u8; 32].into());
    rate("ChaCha20-Poly1305", &mut |b| {
        let _ = cipher.encrypt_inout_detached(&[0u8; 12].into(), &[], b.into());
    });
    let mut h = Sha512::new();
    rate("SHA-512", &mut |b| h.update(&*b));
    let mut h = Sha256::new();
    rate("SHA-256", &mut |b| h.update(&*b));
    let mut other = vec![0u8; 64 * 1024];
    rate("memcpy", &mut |b| other.copy_from_slice(b));
}
