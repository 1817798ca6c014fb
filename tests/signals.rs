//! SIGINT and SIGTERM during a headless run, through the real binary: the first stops the run at its next
//! batch and finishes it (exports complete and valid, the summary says so, exit 128 + the signal), a second
//! exits at once leaving no temporary file; and the replay's stop through the library.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A sim run long enough to be stopped half way on any machine (minutes in a debug build).
const LONG: [&str; 6] = [
    "--clients",
    "8",
    "--bytes",
    "20000000",
    "--max-time",
    "3600",
];

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pktpath"))
        .args(["sim", "--headless"])
        .args(LONG)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pktpath")
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Wait (up to two minutes) until `ready` says so, failing if the child ends first.
fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "pktpath ended before {what}"
        );
        assert!(t.elapsed() < Duration::from_secs(120), "never {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The temporary export file beside `target`, if there is one, and its length.
fn temp_len(dir: &Path, target: &str) -> Option<u64> {
    std::fs::read_dir(dir).unwrap().find_map(|e| {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        (name.starts_with(&format!(".{target}.")) && name.ends_with(".partial"))
            .then(|| e.metadata().map_or(0, |m| m.len()))
    })
}

/// The run is in its loop: its temporary export file beside `target` has packets in it.
fn writing(dir: &Path, target: &str) -> bool {
    temp_len(dir, target).is_some_and(|n| n > 0)
}

/// Wait (up to a minute) for the child to end.
fn ended(mut child: Child) -> Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("pktpath did not end within 60 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// The summary's line about the interruption, checked to name `signal` and a virtual time.
fn interrupted_line<'a>(summary: &'a str, signal: &str) -> &'a str {
    let line = summary
        .lines()
        .find(|l| l.starts_with("interrupted"))
        .unwrap_or_else(|| panic!("no interrupted line in {summary}"));
    let prefix = format!("interrupted by {signal} at virtual time ");
    let suffix = ": finished there, exports complete (packets on their way end in_flight)";
    assert!(
        line.starts_with(&prefix) && line.ends_with(suffix),
        "{line}"
    );
    line
}

/// Outcome counts of the packets of a timeline.
fn outcomes(packets: &[Value]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for p in packets {
        *counts
            .entry(p["outcome"]["kind"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn sigint_stops_a_headless_sim_which_finishes_its_export_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.json");
    let mut child = spawn(&["--export", target.to_str().unwrap()]);
    wait_until(&mut child, "it wrote packets", || {
        writing(dir.path(), "t.json")
    });
    signal(&child, libc::SIGINT);
    let out = ended(child);
    let summary = common::stdout(&out);
    assert_eq!(out.status.code(), Some(130), "{summary}");
    assert_eq!(common::stderr(&out), "");
    assert_eq!(names(dir.path()), ["t.json"], "no temporary file left");
    interrupted_line(&summary, "SIGINT");
    let doc = common::read_json(&target);
    let packets = common::packets(&doc);
    for p in packets {
        common::check_packet(p);
    }
    let stats = &doc["stats"]["outcomes"];
    for (kind, n) in outcomes(packets) {
        assert_eq!(stats[&kind].as_u64(), Some(n), "{kind}");
    }
    assert!(
        summary.contains(&format!(
            "export: {} (json, {} packets)",
            target.display(),
            packets.len()
        )),
        "{summary}"
    );
    // Stopped half way: the peer had not sent its 160 MB.
    assert!(
        summary.contains("peer: 0/8 connections completed"),
        "{summary}"
    );
}

#[test]
fn sigterm_stops_it_with_143_and_the_json_lines_end_with_their_stats() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.jsonl");
    let mut child = spawn(&["--export", target.to_str().unwrap(), "--format", "jsonl"]);
    wait_until(&mut child, "it wrote packets", || {
        writing(dir.path(), "t.jsonl")
    });
    signal(&child, libc::SIGTERM);
    let out = ended(child);
    let summary = common::stdout(&out);
    assert_eq!(out.status.code(), Some(143), "{summary}");
    assert_eq!(common::stderr(&out), "");
    assert_eq!(names(dir.path()), ["t.jsonl"]);
    interrupted_line(&summary, "SIGTERM");
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.ends_with('\n'), "the last line is whole");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines.first().unwrap()["type"], "header");
    assert_eq!(lines.last().unwrap()["type"], "stats");
    let packets: Vec<Value> = lines
        .iter()
        .filter(|l| l["type"] == "packet")
        .map(|l| l["data"].clone())
        .collect();
    let stats = &lines.last().unwrap()["data"]["outcomes"];
    for (kind, n) in outcomes(&packets) {
        assert_eq!(stats[&kind].as_u64(), Some(n), "{kind}");
    }
}

#[test]
fn a_second_sigint_exits_at_once_and_removes_the_unfinished_temporary_files() {
    // The timeline goes to a FIFO the test stops reading: the run blocks writing it, so after the first
    // SIGINT it cannot finish; the pcapng beside it is a temporary file all that time.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let pcap = dir.path().join("w.pcapng");
    let mut child = spawn(&[
        "--export",
        fifo.to_str().unwrap(),
        "--pcap-out",
        pcap.to_str().unwrap(),
    ]);
    let mut reader = File::open(&fifo).unwrap();
    let mut first = vec![0u8; 4096];
    reader.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"{\"format\":\"pktpath-timeline\""));
    // SAFETY: fcntl on an open fd of ours.
    let capacity = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(capacity > 0);
    // Full: as much queued as a pipe holds less a partly filled page or two, and no more coming.
    let queued = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut n) };
        n
    };
    let mut last = (0, Instant::now());
    wait_until(&mut child, "the FIFO filled up", || {
        let n = queued();
        if n != last.0 {
            last = (n, Instant::now());
        }
        n >= capacity / 2 && last.1.elapsed() > Duration::from_millis(300)
    });
    assert!(
        temp_len(dir.path(), "w.pcapng").is_some(),
        "{:?}",
        names(dir.path())
    );
    signal(&child, libc::SIGINT);
    // It cannot finish: it waits on the FIFO.
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "still finishing");
    signal(&child, libc::SIGINT);
    let out = ended(child);
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(
        common::stderr(&out),
        "pktpath: a second SIGINT: stopped at once; unfinished exports removed\n"
    );
    assert_eq!(common::stdout(&out), "", "no summary: nothing was finished");
    assert_eq!(names(dir.path()), ["fifo"], "no temporary file, no pcapng");
    drop(reader);
}

/// Stops the run at its first batch.
struct StopAtOnce;

impl pktpath::session::watch::Watch for StopAtOnce {
    fn batch(
        &mut self,
        _progress: &pktpath::session::watch::Progress,
    ) -> pktpath::session::watch::Keep {
        pktpath::session::watch::Keep::Stop
    }

    fn stopped_by(&self) -> Option<&'static str> {
        Some("the test")
    }
}

#[test]
fn a_replay_stopped_by_its_watcher_is_finished_and_says_where() {
    use pktpath::export::{ExportPlan, Format};
    use pktpath::replay::{ReplaySpec, Source};
    use pktpath::session::{report, run_replay_watched};

    // A capture of a sim run's wire (as tests/replay_sim.rs makes one), long enough for many batches.
    let sim = pktpath::sim::SimSpec {
        clients: 4,
        bytes: 500_000,
        udp: 0,
        ..Default::default()
    };
    let (frames, _) = common::capture_of_sim(&sim, 0);
    let spec = ReplaySpec {
        source: Source::Frames {
            name: "sim-wire".into(),
            frames: std::rc::Rc::new(frames),
        },
        as_ip: None,
        apps: Vec::new(),
        speed: None,
        frame_buffer: 256,
        seed: 0,
        hop_cost_ns: 1000,
        tail_ns: 2_000_000_000,
        keep_checksums: false,
        max_gap_ns: pktpath::replay::gaps::DEFAULT_MAX_GAP_NS,
    };
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.jsonl");
    let plan = ExportPlan::timeline(target.clone(), Format::Jsonl);
    let result = run_replay_watched(&spec, &plan, &mut StopAtOnce).expect("replay runs");
    assert!(result.interrupted);
    assert_eq!(result.interrupted_by, Some("the test"));
    let text = report::replay(&spec, &result, plan.timeline.as_ref());
    let line = text.lines().nth(1).unwrap();
    assert!(
        line.starts_with("interrupted by the test at virtual time ")
            && line.ends_with(
                ": finished there, exports complete (packets on their way end in_flight)"
            ),
        "{text}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&target)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["stats", "replay"]);
    let packets = kinds.iter().filter(|k| **k == "packet").count() as u64;
    assert_eq!(packets, result.packets);
    // Stopped before its end: fewer packets, earlier, than the whole replay.
    let whole = pktpath::session::run_replay(&spec, &ExportPlan::default()).unwrap();
    assert!(!whole.interrupted);
    assert!(result.packets < whole.packets && result.end_ns < whole.end_ns);
    assert_eq!(names(dir.path()), ["t.jsonl"]);
}

#[test]
fn help_gives_the_exit_codes_of_a_stopped_run() {
    for command in [&["sim", "--help"][..], &["replay", "--help"]] {
        let out = common::pktpath(command);
        assert!(out.status.success());
        let help = common::stdout(&out);
        assert!(
            help.contains("the exit code is 130 (SIGINT) or 143 (SIGTERM), 128 + the signal as shells report it; a second signal exits at once (128 + that signal), removing the unfinished temporary files"),
            "{command:?}: {help}"
        );
    }
    // The top-level help gives every exit status on one list, these two among them.
    let top = common::stdout(&common::pktpath(&["--help"]));
    assert!(
        top.contains("130 or 143 a headless run stopped by SIGINT or SIGTERM (its exports are complete and its summary says so; a second signal exits at once, removing the unfinished temporary files)"),
        "{top}"
    );
}
