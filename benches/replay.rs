//! Headless replay of a large real capture with JSONL export, beside `tcpdump -nr` of the same file (issue 3,
//! item 9). Goals: pktpath's frames/s ≥ 1.5× tcpdump's, and pktpath's peak memory ≤ 64 MiB whatever the
//! capture's size. A benchmark, not a timed test: `cargo bench --bench replay`.
//!
//! - Both sides are real child processes: the release binary (`pktpath replay FILE --headless --max-speed
//!   --export TMP.jsonl --format jsonl`) and `tcpdump -nr FILE` with its output to /dev/null. Wall time is
//!   measured from spawn to reap; peak memory is that one child's `ru_maxrss`, from `wait4`.
//! - Runs alternate tcpdump, pktpath, tcpdump, … so both share the machine's noise; the best and the median
//!   are printed. Frames/s is the capture's records over the wall time, for both sides.
//! - The capture is `captures/large.pcap` (gitignored; `captures/make-large.sh` records it from real traffic,
//!   as root). If it is missing the bench tries to make it; if that fails it says how and exits 0.
//! - A second size, the first half of the same capture (written by this bench, the pcap header and the first
//!   records copied as they are), shows whether peak memory grows with the capture.
//!
//! `PKTPATH_BENCH_CAPTURE=FILE` replays another classic pcap; `PKTPATH_BENCH_RUNS` (default 3) sets the runs.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GOAL_RATIO: f64 = 1.5;
const GOAL_PEAK_MIB: f64 = 64.0;

/// What one child process cost: wall time and its own peak resident set.
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    peak_kib: u64,
}

/// Run `cmd` to its end and return its wall time and peak RSS (`wait4`'s `ru_maxrss`, KiB on Linux). Panics
/// if it does not exit 0.
fn measure(cmd: &mut Command) -> Cost {
    let start = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in for this one child, which std has not
    // reaped (we never call `wait` on `child`, and dropping it neither waits nor kills).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: plain system call on our own child's pid with valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let wall = start.elapsed();
    drop(child);
    assert_eq!(
        reaped,
        pid,
        "wait4 {cmd:?}: {}",
        std::io::Error::last_os_error()
    );
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(ok, "{cmd:?} failed (wait status {status:#x})");
    Cost {
        wall,
        peak_kib: usage.ru_maxrss as u64,
    }
}

/// Best and median of a list of costs, by wall time; peak memory is the largest seen.
struct Summary {
    best: Duration,
    median: Duration,
    peak_kib: u64,
}

fn summarise(costs: &[Cost]) -> Summary {
    let mut walls: Vec<Duration> = costs.iter().map(|c| c.wall).collect();
    walls.sort();
    Summary {
        best: walls[0],
        median: walls[walls.len() / 2],
        peak_kib: costs.iter().map(|c| c.peak_kib).max().unwrap_or(0),
    }
}

fn per_sec(frames: u64, d: Duration) -> f64 {
    frames as f64 / d.as_secs_f64()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn have_tcpdump() -> bool {
    Command::new("tcpdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The capture to replay: `PKTPATH_BENCH_CAPTURE`, or `captures/large.pcap`, made with `make-large.sh` if it
/// is missing. `None` (after saying why) when there is none and it cannot be made.
fn capture() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PKTPATH_BENCH_CAPTURE") {
        return Some(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let large = root.join("captures/large.pcap");
    if large.exists() {
        return Some(large);
    }
    let script = root.join("captures/make-large.sh");
    println!(
        "{} is missing: making it with {}",
        large.display(),
        script.display()
    );
    let made = Command::new(&script).arg(&large).status();
    match made {
        Ok(s) if s.success() && large.exists() => Some(large),
        other => {
            let why = match other {
                Ok(s) => format!("it exited with {s}"),
                Err(e) => format!("it could not run: {e}"),
            };
            println!(
                "could not make the capture ({why}; it needs root, tcpdump, iproute2, ethtool, curl, python3 and \
                 capinfos).\nMake it with `sudo captures/make-large.sh` and run `cargo bench --bench replay` \
                 again, or set PKTPATH_BENCH_CAPTURE=FILE.pcap. Nothing measured."
            );
            None
        }
    }
}

/// Count a classic pcap's records, and, with `out`, copy its header and first `keep` records there.
fn pcap_records(path: &Path, keep: Option<(u64, &Path)>) -> std::io::Result<u64> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut header = [0u8; 24];
    r.read_exact(&mut header)?;
    let magic = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let little = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        _ => {
            return Err(std::io::Error::other(format!(
                "{}: not a classic pcap (magic {magic:#010x})",
                path.display()
            )));
        }
    };
    let mut out = match keep {
        Some((_, p)) => {
            let mut w = BufWriter::new(File::create(p)?);
            w.write_all(&header)?;
            Some(w)
        }
        None => None,
    };
    let limit = keep.map_or(u64::MAX, |(n, _)| n);
    let mut records = 0;
    let mut rec = [0u8; 16];
    let mut data = Vec::new();
    while records < limit {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let b: [u8; 4] = rec[8..12].try_into().expect("4 bytes");
        let incl = if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        };
        data.resize(incl as usize, 0);
        r.read_exact(&mut data)?;
        if let Some(w) = out.as_mut() {
            w.write_all(&rec)?;
            w.write_all(&data)?;
        }
        records += 1;
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    Ok(records)
}

/// The replay's own count of records, from its summary ("replay FILE (pcap, N records) as …").
fn replayed_records(stdout: &str) -> Option<u64> {
    let first = stdout.lines().next()?;
    let inner = first.split_once('(')?.1.split_once(" records)")?.0;
    inner.rsplit(' ').next()?.parse().ok()
}

/// One size of the capture, measured `runs` times on both sides.
fn bench_file(
    bin: &str,
    (file, label): (&Path, &str),
    frames: u64,
    runs: usize,
    tcpdump: bool,
    tmp: &Path,
) -> Summary {
    let export = tmp.join("replay.jsonl");
    let summary_path = tmp.join("summary.txt");
    let (mut td, mut pp) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        if tcpdump {
            td.push(measure(
                Command::new("tcpdump")
                    .arg("-nr")
                    .arg(file)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            ));
        }
        let out = File::create(&summary_path).expect("summary file");
        pp.push(measure(
            Command::new(bin)
                .arg("replay")
                .arg(file)
                .args(["--headless", "--max-speed", "--export"])
                .arg(&export)
                .args(["--format", "jsonl"])
                .stdout(out)
                .stderr(Stdio::inherit()),
        ));
        let summary = std::fs::read_to_string(&summary_path).expect("summary");
        assert_eq!(
            replayed_records(&summary),
            Some(frames),
            "pktpath replayed another number of records:\n{summary}"
        );
        let exported = std::fs::metadata(&export).map(|m| m.len()).unwrap_or(0);
        assert!(exported > 0, "no JSONL export:\n{summary}");
    }
    let exported = std::fs::metadata(&export).map(|m| m.len()).unwrap_or(0);
    let p = summarise(&pp);
    println!(
        "  {label} ({frames} frames, {:.1} MB); JSONL export {:.1} MB",
        std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        exported as f64 / 1e6
    );
    println!(
        "    pktpath replay --headless --max-speed, JSONL: best {:>8.3} s  median {:>8.3} s  {:>9.0} frames/s (best)  peak RSS {:>6.1} MiB",
        p.best.as_secs_f64(),
        p.median.as_secs_f64(),
        per_sec(frames, p.best),
        mib(p.peak_kib)
    );
    if tcpdump {
        let t = summarise(&td);
        println!(
            "    tcpdump -nr > /dev/null:                     best {:>8.3} s  median {:>8.3} s  {:>9.0} frames/s (best)  peak RSS {:>6.1} MiB",
            t.best.as_secs_f64(),
            t.median.as_secs_f64(),
            per_sec(frames, t.best),
            mib(t.peak_kib)
        );
        let best = t.best.as_secs_f64() / p.best.as_secs_f64();
        let median = t.median.as_secs_f64() / p.median.as_secs_f64();
        let verdict = if best >= GOAL_RATIO { "met" } else { "NOT met" };
        println!(
            "    pktpath frames/s ÷ tcpdump's: {best:.2}× best, {median:.2}× median (goal ≥ {GOAL_RATIO}×: {verdict})"
        );
    }
    p
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let Some(file) = capture() else { return };
    let runs = std::env::var("PKTPATH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(3);
    let bin = env!("CARGO_BIN_EXE_pktpath");
    let tcpdump = have_tcpdump();
    let frames = pcap_records(&file, None).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let tmp = tempfile::tempdir().expect("temp dir");
    let half = tmp.path().join("half.pcap");
    pcap_records(&file, Some((frames / 2, &half))).expect("write the half capture");

    let build = ["release", "debug"][usize::from(cfg!(debug_assertions))];
    println!(
        "pktpath replay benchmark: {runs} runs per side and size ({build} build of the bench, {bin})"
    );
    if !tcpdump {
        println!(
            "  tcpdump is not installed: pktpath's figures only (apt-get install tcpdump for the ratio)"
        );
    }
    let name = file.display().to_string();
    let full = bench_file(bin, (&file, &name), frames, runs, tcpdump, tmp.path());
    let half_name = format!("first half of {name}");
    let halved = bench_file(
        bin,
        (&half, &half_name),
        frames / 2,
        runs,
        tcpdump,
        tmp.path(),
    );
    let peak = mib(full.peak_kib.max(halved.peak_kib));
    // Twice the frames should not cost much more memory: a quarter more is taken as growing with the size.
    let grows = full.peak_kib * 4 > halved.peak_kib * 5;
    let verdict = match (peak <= GOAL_PEAK_MIB, grows) {
        (true, false) => "met",
        (true, true) => "met for these sizes, but the peak grows with the capture",
        (false, _) => "NOT met",
    };
    println!(
        "pktpath peak RSS: {:.1} MiB for {} frames, {:.1} MiB for {} (goal ≤ {GOAL_PEAK_MIB} MiB whatever the size: {verdict})",
        mib(full.peak_kib),
        frames,
        mib(halved.peak_kib),
        frames / 2
    );
}
