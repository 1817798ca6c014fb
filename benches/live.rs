//! Bulk TCP throughput through the TAP, tracing on and off: a client thread inside a network namespace this
//! bench creates (and deletes) sends `PKTPATH_BENCH_MIB` MiB (default 32) to the echo port and reads it all
//! back, checking it. Four sides, each its own process started under `ip netns exec` and stopped with
//! SIGINT, `PKTPATH_BENCH_RUNS` runs each (default 3), alternating (the order rotates every round):
//! - untraced path: this binary re-executed as `--untraced-path` (`untraced/mod.rs`): TAP, tap thread,
//!   bounded queue, smoltcp polled normally, echo behind an AF_UNIX pair per connection; no hooks at all;
//! - untraced path, one frame per window (context): the same, fed to smoltcp as DESIGN.md makes pktpath do
//!   (due timers, `poll_ingress_single`, egress until quiet, the app, per frame), to show what that
//!   discipline costs by itself;
//! - pktpath, no export: `pktpath live --headless --app 7=echo` — the core still builds every packet
//!   record (tracing is on), nothing writes them;
//! - pktpath, JSONL export: the same with `--export FILE --format jsonl` — every record written out.
//!
//! It prints the best and median MiB/s of each, the goal ratio (pktpath JSONL ÷ untraced path, goal ≥ 70%),
//! context ratios (pktpath no export ÷ untraced; one frame per window ÷ untraced; pktpath JSONL ÷ one frame
//! per window), and the events lost pktpath's summary reports (goal: 0). Needs root (TAP, `ip netns`);
//! without it it says so and does nothing. Traffic stays inside the namespace (10.77.0.0/24 on its TAP).

mod untraced;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The untraced path runs in this binary: it gets the same allocator as pktpath's, so the comparison is of
/// the paths, not of the allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NS: &str = "pktpath-bench-live";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The three sides, in their first round's order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Untraced,
    /// Context: the untraced path fed one frame per window, as DESIGN.md makes pktpath do.
    UntracedOneFrame,
    Pktpath,
    PktpathJsonl,
}

const SIDES: [Side; 4] = [
    Side::Untraced,
    Side::UntracedOneFrame,
    Side::Pktpath,
    Side::PktpathJsonl,
];

impl Side {
    /// How the untraced path polls smoltcp; None for pktpath.
    fn polling(self) -> Option<untraced::Polling> {
        match self {
            Side::Untraced => Some(untraced::Polling::Batch),
            Side::UntracedOneFrame => Some(untraced::Polling::OneFrame),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Untraced => "untraced path (smoltcp + AF_UNIX echo, no hooks)",
            Side::UntracedOneFrame => "untraced path, one frame per window",
            Side::Pktpath => "pktpath live, no export (tracing on)",
            Side::PktpathJsonl => "pktpath live, --format jsonl export",
        }
    }
}

/// One run: start the side's process in a fresh namespace, echo `mib` MiB through it, stop it with SIGINT.
/// Returns (MiB/s, its summary's line about lost events or drops).
fn run(side: Side, mib: usize, export: &std::path::Path) -> (f64, String) {
    let _ = ip(&["netns", "del", NS]);
    assert!(ip(&["netns", "add", NS]), "ip netns add");
    assert!(ip(&["netns", "exec", NS, "ip", "link", "set", "lo", "up"]));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", NS]);
    if let Some(polling) = side.polling() {
        let me = std::env::current_exe().expect("the bench binary's path");
        cmd.arg(me)
            .args([untraced::ARG, "tpb0", "10.77.0.1/24", polling.arg()]);
    } else {
        cmd.arg(env!("CARGO_BIN_EXE_pktpath"))
            .args(["live", "--headless", "--tap", "tpb0"])
            .args(["--host-ip", "10.77.0.1/24", "--app", "7=echo"]);
        if side == Side::PktpathJsonl {
            cmd.args(["--export", export.to_str().unwrap(), "--format", "jsonl"]);
        }
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let child = cmd.spawn().expect("start the side's process");
    let t = Instant::now();
    loop {
        let out = Command::new("ip")
            .args([
                "netns", "exec", NS, "ip", "-o", "-4", "addr", "show", "dev", "tpb0",
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("10.77.0.1") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "TAP never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = std::thread::spawn(move || {
        let ns = File::open(format!("/var/run/netns/{NS}")).unwrap();
        // SAFETY: setns on a valid namespace fd; it affects this thread only.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let n = mib << 20;
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let t = Instant::now();
        let s = TcpStream::connect(("10.77.0.2", 7)).unwrap();
        let mut w = s.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut back = Vec::with_capacity(n);
        let mut r = s;
        r.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(back == data, "echo came back different");
        secs
    })
    .join()
    .unwrap();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let _ = ip(&["netns", "del", NS]);
    assert!(out.status.success(), "the side's process failed");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |key: &str| {
        summary
            .lines()
            .find(|l| l.starts_with(key))
            .map_or_else(|| format!("{key} ?"), str::to_string)
    };
    let line = match side.polling() {
        Some(_) => find("untraced path:"),
        // The frame counts, to compare with the untraced path's; the events-lost line first (it is parsed).
        None => format!("{}; {}", find("events lost:"), find("frames:")),
    };
    (mib as f64 / secs, line)
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() - 1], v[v.len() / 2])
}

/// "events lost: 3 (…" → 3.
fn events_lost(line: &str) -> Option<u64> {
    line.strip_prefix("events lost: ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(untraced::ARG) {
        untraced::serve(&args[2..]);
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("live benchmark skipped: needs root (a TAP device inside a network namespace)");
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mib = env("PKTPATH_BENCH_MIB", 32);
    let runs = env("PKTPATH_BENCH_RUNS", 3).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("live.jsonl");
    println!(
        "pktpath live benchmark: {mib} MiB echoed through the TAP, {runs} runs per side, alternating"
    );
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut lines = Vec::new();
    let mut lost_total = 0;
    for round in 0..runs {
        for k in 0..SIDES.len() {
            let i = (round + k) % SIDES.len();
            let side = SIDES[i];
            let (rate, line) = run(side, mib, &export);
            println!(
                "  round {}: {:<48} {rate:6.1} MiB/s  ({line})",
                round + 1,
                side.label()
            );
            rates[i].push(rate);
            if side.polling().is_none() {
                lost_total += events_lost(&line).unwrap_or(u64::MAX / 4);
            }
            lines.push(line);
        }
    }
    let [u, u1, p, t] = rates.map(stats);
    for (side, (best, median)) in SIDES.iter().zip([u, u1, p, t]) {
        println!(
            "{:<48}  best {best:6.1} MiB/s, median {median:6.1} MiB/s",
            side.label()
        );
    }
    let pct = |a: (f64, f64), b: (f64, f64)| (100.0 * a.0 / b.0, 100.0 * a.1 / b.1);
    let (gb, gm) = pct(t, u);
    let met = if gb >= 70.0 && gm >= 70.0 {
        "met"
    } else if gb >= 70.0 || gm >= 70.0 {
        "met on one figure only"
    } else {
        "NOT met"
    };
    println!(
        "goal ratio, pktpath JSONL / untraced path: {gb:.0}% best, {gm:.0}% median (goal ≥ 70%: {met})"
    );
    let (cb, cm) = pct(p, u);
    println!("context, pktpath no export / untraced path: {cb:.0}% best, {cm:.0}% median");
    let (ob, om) = pct(u1, u);
    println!(
        "context, untraced one frame per window / untraced path: {ob:.0}% best, {om:.0}% median"
    );
    let (jb, jm) = pct(t, u1);
    println!(
        "context, pktpath JSONL / untraced one frame per window: {jb:.0}% best, {jm:.0}% median"
    );
    println!(
        "events lost over all pktpath runs: {lost_total} (goal 0: {})",
        if lost_total == 0 { "met" } else { "NOT met" }
    );
}
