//! Damaged copies of every capture in the repository replay within issue 15's bound: at full speed and paced,
//! each finishes (exit 0, or 1 with one line naming the file when nothing readable is left) and exports at most
//! 20 packets per capture frame plus a constant. The damage is one change per copy, as a disk or a link does
//! it: a bit flipped, four bytes overwritten, the file cut short, a high bit set in a header word (a timestamp,
//! a sequence number, a length). Copies are seeded from the capture's name, so a failure names its copy and
//! reproduces. PKTPATH_DAMAGE_COPIES (default 2) sets the copies per capture for a longer run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use pktpath::replay::capture::CaptureReader;

/// A constant for the records every replay has whatever its frames (ARP, the stack's own SYN-ACK retries).
const SLACK: usize = 50;
const PER_FRAME: usize = 20;

/// Frames the reader takes from `bytes` (0 when it refuses the file).
fn frames(bytes: &[u8]) -> usize {
    CaptureReader::from_bytes(bytes.to_vec()).map_or(0, |r| r.count())
}

/// The copy's one change, chosen by `kind`, placed by `rng` past the file's first 24 bytes (its header, whose
/// damage the reader refuses in tests/replay_malformed.rs).
fn damage(bytes: &[u8], kind: usize, rng: &mut common::Rng) -> (Vec<u8>, String) {
    let mut out = bytes.to_vec();
    let at = 24 + rng.below(out.len().saturating_sub(28).max(1));
    let what = match kind % 4 {
        0 => {
            let bit = rng.below(8);
            out[at] ^= 1 << bit;
            format!("bit {bit} of byte {at} flipped")
        }
        1 => {
            let new = rng.bytes(4);
            let end = (at + 4).min(out.len());
            out[at..end].copy_from_slice(&new[..end - at]);
            format!("bytes {at}..{end} overwritten")
        }
        2 => {
            out.truncate(at);
            format!("cut at byte {at}")
        }
        _ => {
            out[at] ^= 0x40;
            format!("bit 6 of byte {at} flipped (a header word's high byte)")
        }
    };
    (out, what)
}

/// Replay `file` under a 120 s guard; Err says what broke the contract.
fn check(file: &Path, bound_frames: usize, paced: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("t.json");
    let speed: &[&str] = if paced {
        // Paced as recorded, 100 times sooner: the same virtual-time work (timers, retransmissions across
        // gaps up to --max-gap) as the recorded pace.
        &["--speed", "100"]
    } else {
        &["--max-speed"]
    };
    let out = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_pktpath"))
        .args(["replay", file.to_str().unwrap(), "--headless", "--export"])
        .arg(&export)
        .args(speed)
        .output()
        .expect("run pktpath under timeout");
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(1) if err.lines().count() == 1 && err.contains(file.to_str().unwrap()) => {
            return Ok(());
        }
        code => return Err(format!("exit {code:?}: {err}")),
    }
    let doc = common::read_json(&export);
    let packets = common::packets(&doc).len();
    if packets > PER_FRAME * bound_frames + SLACK {
        return Err(format!("{packets} packets for {bound_frames} frames"));
    }
    Ok(())
}

#[test]
fn damaged_copies_of_every_repository_capture_replay_within_the_bound() {
    let copies: usize = std::env::var("PKTPATH_DAMAGE_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    let mut jobs: Vec<(PathBuf, usize, String, bool)> = Vec::new();
    for capture in common::repository_captures() {
        let bytes = std::fs::read(&capture).unwrap();
        let name = capture.file_name().unwrap().to_string_lossy().into_owned();
        let seed = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = common::Rng(seed | 1);
        for copy in 0..copies {
            let (damaged, what) = damage(&bytes, copy, &mut rng);
            let bound = frames(&bytes).max(frames(&damaged));
            let path = dir.path().join(format!("{copy}-{name}"));
            std::fs::write(&path, &damaged).unwrap();
            let label = format!("{name} copy {copy} ({what})");
            // Each copy is replayed at full speed; every other one paced too.
            jobs.push((path.clone(), bound, label.clone(), false));
            if copy % 2 == 0 {
                jobs.push((path, bound, label, true));
            }
        }
    }
    let total = jobs.len();
    let queue = Mutex::new(jobs);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some((path, bound, label, paced)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    if let Err(why) = check(&path, bound, paced) {
                        let mode = if paced { "paced" } else { "--max-speed" };
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{label}, {mode}: {why}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {total} damaged replays broke the bound:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
