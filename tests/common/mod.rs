//! Shared helpers for the integration tests: run the real binary, read exports, check the timeline contract.
#![allow(dead_code)]

pub mod follow;
pub mod netns;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

pub const STAGES: [&str; 6] = [
    "wire",
    "frame_buffer",
    "stack",
    "socket_buffer",
    "conn_buffer",
    "app",
];
pub const OUTCOMES: [&str; 5] = ["delivered", "consumed", "sent", "dropped", "in_flight"];

pub fn pktpath(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pktpath"))
        .args(args)
        .output()
        .expect("run pktpath")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run `pktpath sim --headless` with `args`, exporting JSON to `path`; returns the summary and the document.
pub fn sim_json(dir: &Path, name: &str, args: &[&str]) -> (String, Value) {
    let path = dir.join(name);
    let path_s = path.to_str().unwrap();
    let mut all = vec!["sim", "--headless", "--export", path_s, "--format", "json"];
    all.extend_from_slice(args);
    let out = pktpath(&all);
    assert!(
        out.status.success(),
        "pktpath {all:?} failed: {}",
        stderr(&out)
    );
    let doc: Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("export is valid JSON");
    (stdout(&out), doc)
}

pub fn packets(doc: &Value) -> &Vec<Value> {
    doc["packets"].as_array().expect("packets array")
}

pub fn stage_index(s: &str) -> usize {
    STAGES
        .iter()
        .position(|x| *x == s)
        .unwrap_or_else(|| panic!("unknown stage {s}"))
}

/// The timeline contract of DESIGN.md §4 for one packet: known stages in path order, non-decreasing times,
/// exactly one outcome whose stage is the last hop.
pub fn check_packet(p: &Value) {
    let dir = p["dir"].as_str().unwrap();
    let hops = p["hops"].as_array().unwrap();
    assert!(!hops.is_empty(), "packet without hops: {p}");
    let mut last_pos = None;
    let mut last_t = 0;
    for h in hops {
        let i = stage_index(h["stage"].as_str().unwrap());
        let pos = if dir == "rx" { i } else { STAGES.len() - 1 - i };
        if let Some(prev) = last_pos {
            assert!(pos > prev, "hops out of path order in {p}");
        }
        last_pos = Some(pos);
        let t = h["t_ns"].as_u64().unwrap();
        assert!(t >= last_t, "t_ns decreases in {p}");
        last_t = t;
    }
    let o = &p["outcome"];
    assert!(
        OUTCOMES.contains(&o["kind"].as_str().unwrap()),
        "bad outcome {o}"
    );
    assert_eq!(
        o["stage"],
        hops.last().unwrap()["stage"],
        "outcome stage is not the last hop in {p}"
    );
    if o["kind"] == "dropped" {
        assert!(
            o["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "drop without a reason: {p}"
        );
        assert!(o["code"].is_string(), "drop without a code: {p}");
    }
}

pub fn hop_stages(p: &Value) -> Vec<&str> {
    p["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage"].as_str().unwrap())
        .collect()
}

/// TCP payload length from the summary's `len=N`.
pub fn tcp_len(p: &Value) -> Option<usize> {
    let s = p["summary"].as_str()?;
    if !s.contains(" TCP ") {
        return None;
    }
    s.rsplit("len=")
        .next()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A JSON export read back.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).expect("export is valid JSON")
}

/// A small fixed-seed generator (xorshift64*): damaged inputs made with it are the same on every run, so a
/// failure names a case that can be made again.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Every frame of a sim run's wire, both directions, as a capture would hold them (timestamps `base_ns` plus
/// virtual time), and the run's connections.
pub fn capture_of_sim(
    spec: &pktpath::sim::SimSpec,
    base_ns: u64,
) -> (
    Vec<pktpath::replay::capture::CapturedFrame>,
    Vec<pktpath::pipeline::ConnectionRecord>,
) {
    let mut both = None;
    let mut run = pktpath::sim::build_with(spec, |peer| {
        let recorder = pktpath::sim::script::Recorder::new(peer);
        both = Some(recorder.both.clone());
        Box::new(recorder)
    });
    while !run.pipeline.run_until(spec.max_time_ns, 4096) {
        run.pipeline.drain_finished().for_each(drop);
    }
    let conns = run.pipeline.finish();
    let frames = both.expect("recorder installed").borrow().clone();
    let captured = frames
        .into_iter()
        .enumerate()
        .map(
            |(i, (t, _, frame))| pktpath::replay::capture::CapturedFrame {
                index: i as u64,
                t_ns: base_ns + t,
                timestamped: true,
                interface: 0,
                linktype: 1,
                orig_len: frame.len() as u32,
                frame,
                truncated: false,
                synthetic_l2: false,
                vlan: Vec::new(),
                renamed: None,
                comment: None,
                problem: None,
            },
        )
        .collect();
    (captured, conns)
}

/// Is tshark installed? Without it a test that needs it skips, saying so — unless PKTPATH_REQUIRE_TOOLS=1
/// (as `.ci/run` sets), which makes its absence a failure.
pub fn tshark_available() -> bool {
    let require = std::env::var("PKTPATH_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    let have = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            !require,
            "tshark is required (PKTPATH_REQUIRE_TOOLS=1) but not installed"
        );
        eprintln!("skipped: tshark is not installed (apt-get install tshark)");
    }
    have
}

/// Every capture the repository holds (captures/ and tests/data/), in name order.
pub fn repository_captures() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all: Vec<std::path::PathBuf> = ["captures", "tests/data"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    all.sort();
    all
}

/// A capture made for the tests (tests/data/, see its make.sh).
pub fn test_data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `pktpath replay FILE --headless --export T.json EXTRA…`, which must succeed: its summary and export.
pub fn replay_json(file: &Path, extra: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("t.json");
    let mut all = vec![
        "replay",
        file.to_str().unwrap(),
        "--headless",
        "--export",
        export.to_str().unwrap(),
    ];
    all.extend_from_slice(extra);
    let out = pktpath(&all);
    assert_eq!(out.status.code(), Some(0), "{all:?}: {}", stderr(&out));
    (stdout(&out), read_json(&export))
}
