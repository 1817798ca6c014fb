//! Bulk TCP throughput through the TAP: the release binary runs `pktpath live --headless` inside a network
//! namespace this bench creates (and deletes), and a client thread inside the same namespace sends
//! `PKTPATH_BENCH_MIB` MiB (default 32) to the `echo` app and reads it all back, checking it. Two sides,
//! alternately, `PKTPATH_BENCH_RUNS` runs each (default 3):
//! - untraced: no export — the core still builds every packet record, but nothing writes them;
//! - traced: `--export FILE --format jsonl` — every packet record of the run written out.
//!
//! It prints the best and median MiB/s of each, the ratio (goal: traced ≥ 70% of untraced) and the events lost
//! the summary reports (goal: 0). Needs root (TAP, `ip netns`); without it it says so and does nothing.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "pktpath-bench-live";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One run: start pktpath in a fresh namespace, echo `mib` MiB through it, stop it with SIGINT.
/// Returns (MiB/s, events lost as the summary reports them).
fn run(bin: &str, mib: usize, export: Option<&std::path::Path>) -> (f64, String) {
    let _ = ip(&["netns", "del", NS]);
    assert!(ip(&["netns", "add", NS]), "ip netns add");
    assert!(ip(&["netns", "exec", NS, "ip", "link", "set", "lo", "up"]));
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        NS,
        bin,
        "live",
        "--headless",
        "--tap",
        "tpb0",
    ])
    .args(["--host-ip", "10.77.0.1/24", "--app", "7=echo"])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if let Some(path) = export {
        cmd.args(["--export", path.to_str().unwrap(), "--format", "jsonl"]);
    }
    let child = cmd.spawn().expect("start pktpath");
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
    assert!(out.status.success(), "pktpath live failed");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let lost = summary
        .lines()
        .find(|l| l.starts_with("events lost:"))
        .unwrap_or("events lost: ?")
        .to_string();
    (mib as f64 / secs, lost)
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() - 1], v[v.len() / 2])
}

fn main() {
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
    let bin = env!("CARGO_BIN_EXE_pktpath");
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("live.jsonl");
    println!(
        "pktpath live benchmark: {mib} MiB echoed through the TAP, {runs} runs per side ({bin})"
    );
    let (mut plain, mut traced) = (Vec::new(), Vec::new());
    let mut lost = Vec::new();
    for _ in 0..runs {
        let (r, l) = run(bin, mib, None);
        plain.push(r);
        lost.push(format!("untraced {l}"));
        let (r, l) = run(bin, mib, Some(&export));
        traced.push(r);
        lost.push(format!("traced {l}"));
    }
    let (pb, pm) = stats(plain);
    let (tb, tm) = stats(traced);
    println!("untraced (no export):      best {pb:6.1} MiB/s, median {pm:6.1} MiB/s");
    println!("traced (--format jsonl):   best {tb:6.1} MiB/s, median {tm:6.1} MiB/s");
    println!(
        "traced / untraced: {:.0}% (median {:.0}%; goal ≥ 70%)",
        100.0 * tb / pb,
        100.0 * tm / pm
    );
    for l in lost {
        println!("  {l}");
    }
}
