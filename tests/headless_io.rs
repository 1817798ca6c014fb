//! Headless runs through the real binary, around their input and output: a capture read from stdin (`-`),
//! `/dev/stdin` or a FIFO gives exactly what the file gives; `--filter` writes exactly the matching packets
//! (checked against the full export with a predicate computed here from the packets' summaries) while the
//! stats count every one; bad input is one line with the right exit code; and with stderr not a terminal a
//! run writes nothing there (no progress), its summary ending with its wall time.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use pktpath::replay::capture::CaptureReader;
use serde_json::Value;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

/// Run pktpath with `args`, `input` written into its stdin through a pipe (then closed).
fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pktpath"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pktpath");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: a capture larger than the pipe must not wait on pktpath's output.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for pktpath");
    writer.join().unwrap();
    out
}

/// The summary without what varies between two runs of the same input: its wall-time line (checked here
/// for its form).
fn steady(summary: &str) -> String {
    check_wall_time(summary);
    summary
        .lines()
        .filter(|l| !l.starts_with("wall time "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The summary has exactly one wall-time line, `wall time T UNIT, R frames/s`, right before the lines
/// about the files written, and its rate is the frames in over that time (to the shown precision).
fn check_wall_time(summary: &str) {
    let lines: Vec<&str> = summary.lines().collect();
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("wall time "))
        .collect();
    assert_eq!(at.len(), 1, "one wall-time line:\n{summary}");
    let after = &lines[at[0] + 1..];
    assert!(
        after
            .iter()
            .all(|l| l.starts_with("export: ") || l.starts_with("pcapng: ")),
        "only the files written follow it:\n{summary}"
    );
    let line = lines[at[0]];
    let rest = line.strip_prefix("wall time ").unwrap();
    let (time, rate) = rest.split_once(", ").expect("time, rate");
    let (value, unit) = time.split_once(' ').expect("value unit");
    let scale = match unit {
        "ns" => 1e-9,
        "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => panic!("unit {unit} in {line}"),
    };
    // Each number is shown rounded to its last digit: the true values lie within half of it.
    let half_unit =
        |shown: &str| 0.5 * 10f64.powi(-(shown.split_once('.').map_or(0, |(_, d)| d.len()) as i32));
    let seconds: f64 = value.parse::<f64>().expect("a number") * scale;
    let seconds_err = half_unit(value) * scale;
    let rate = rate.strip_suffix(" frames/s").expect("frames/s");
    let (digits, factor) = match rate.strip_suffix('k') {
        Some(d) => (d, 1e3),
        None => match rate.strip_suffix('M') {
            Some(d) => (d, 1e6),
            None => (rate, 1.0),
        },
    };
    let shown: f64 = digits.parse::<f64>().expect("a rate") * factor;
    let shown_err = half_unit(digits) * factor;
    let frames_in: f64 = summary
        .lines()
        .find_map(|l| l.strip_prefix("frames: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the frames line");
    let (low, high) = (
        frames_in / (seconds + seconds_err),
        frames_in / (seconds - seconds_err).max(1e-12),
    );
    assert!(
        shown + shown_err >= low && shown - shown_err <= high,
        "{line}: {frames_in} frames in {seconds} s is {low}..{high}/s"
    );
}

/// The summary with its first line's source name replaced by `name`.
fn renamed(summary: &str, from: &str, to: &str) -> String {
    let (first, rest) = summary.split_once('\n').unwrap();
    let first = first.replacen(&format!("replay {from} "), &format!("replay {to} "), 1);
    format!("{first}\n{rest}")
}

/// A headless replay of the capture `source` (a path or `-`) exporting JSON and pcapng into `dir` under
/// `tag`; returns the output and the two files' bytes.
fn replay_files(
    dir: &Path,
    tag: &str,
    source: &str,
    extra: &[&str],
    input: Option<&[u8]>,
) -> (Output, Vec<u8>, Vec<u8>) {
    let json = dir.join(format!("{tag}.json"));
    let pcap = dir.join(format!("{tag}.pcapng"));
    let mut args = vec![
        "replay",
        source,
        "--headless",
        "--max-speed",
        "--export",
        json.to_str().unwrap(),
        "--pcap-out",
        pcap.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = match input {
        Some(bytes) => with_stdin(&args, bytes),
        None => pktpath(&args),
    };
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "{args:?}: nothing on stderr");
    let json = std::fs::read(&json).unwrap();
    let pcap = std::fs::read(&pcap).unwrap();
    (out, json, pcap)
}

/// The export line names the file, which differs between two runs written beside each other.
fn without_files(summary: &str) -> String {
    summary
        .lines()
        .filter(|l| !l.starts_with("export: ") && !l.starts_with("pcapng: "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_capture_on_stdin_replays_exactly_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // bulk.pcap (1 MiB) is far larger than a pipe's buffer.
    for name in ["http-get.pcap", "http-post.pcapng", "bulk.pcap"] {
        let file = capture(name);
        let file_s = file.to_str().unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let (by_path, json, pcap) = replay_files(dir.path(), "file", file_s, &[], None);
        let (by_stdin, stdin_json, stdin_pcap) =
            replay_files(dir.path(), "stdin", "-", &[], Some(&bytes));
        let expected = renamed(&steady(&stdout(&by_path)), file_s, "-");
        let dir_s = dir.path().display();
        assert_eq!(
            steady(&stdout(&by_stdin)),
            expected.replace(&format!("{dir_s}/file."), &format!("{dir_s}/stdin.")),
            "{name}"
        );
        assert!(
            stdout(&by_stdin).starts_with("replay - ("),
            "{name}: stdin is named -"
        );
        // The export names its source; nothing else differs, byte for byte.
        let file_json = serde_json::to_string(file_s).unwrap();
        let named = String::from_utf8(json).unwrap().replacen(
            &format!("\"file\":{file_json}"),
            "\"file\":\"-\"",
            1,
        );
        assert!(
            named.as_bytes() == stdin_json.as_slice(),
            "{name}: the JSON exports differ"
        );
        assert!(pcap == stdin_pcap, "{name}: the pcapng files differ");
    }
}

#[test]
fn dev_stdin_and_a_fifo_replay_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = capture("http-get.pcap");
    let file_s = file.to_str().unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let (by_path, json, pcap) = replay_files(dir.path(), "file", file_s, &[], None);
    let expected = steady(&stdout(&by_path));
    let dir_s = dir.path().display();
    // The files written are named by their run's tag.
    let written_as = |tag: &str, summary: String| {
        summary.replace(&format!("{dir_s}/file."), &format!("{dir_s}/{tag}."))
    };

    let (dev, dev_json, dev_pcap) =
        replay_files(dir.path(), "dev", "/dev/stdin", &[], Some(&bytes));
    assert_eq!(
        steady(&stdout(&dev)),
        written_as("dev", renamed(&expected, file_s, "/dev/stdin"))
    );

    let fifo = dir.path().join("capture.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let to_fifo = fifo.clone();
    let writer = std::thread::spawn(move || {
        // Opening for writing waits for pktpath to open it for reading.
        std::fs::write(&to_fifo, bytes).unwrap();
    });
    let fifo_s = fifo.to_str().unwrap();
    let (by_fifo, fifo_json, fifo_pcap) = replay_files(dir.path(), "fifo", fifo_s, &[], None);
    writer.join().unwrap();
    assert_eq!(
        steady(&stdout(&by_fifo)),
        written_as("fifo", renamed(&expected, file_s, fifo_s))
    );

    let file_json = serde_json::to_string(file_s).unwrap();
    for (source, other_json, other_pcap) in [
        ("/dev/stdin", dev_json, dev_pcap),
        (fifo_s, fifo_json, fifo_pcap),
    ] {
        let named = String::from_utf8(json.clone()).unwrap().replacen(
            &format!("\"file\":{file_json}"),
            &format!("\"file\":{}", serde_json::to_string(source).unwrap()),
            1,
        );
        assert!(
            named.as_bytes() == other_json.as_slice(),
            "{source}: the JSON exports differ"
        );
        assert!(pcap == other_pcap, "{source}: the pcapng files differ");
    }
}

#[test]
fn empty_stdin_is_one_line_and_exit_1() {
    let out = with_stdin(&["replay", "-", "--headless"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "pktpath: stdin is empty, expected a pcap or pcapng capture: pipe one in, as in `cat x.pcap | pktpath replay - --headless`\n"
    );
    let out = with_stdin(&["replay", "/dev/stdin", "--headless"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "pktpath: /dev/stdin: the file is empty, expected a pcap or pcapng capture\n"
    );
}

#[test]
fn replay_from_stdin_without_headless_and_no_terminal_is_refused_in_one_line() {
    let bytes = std::fs::read(capture("http-get.pcap")).unwrap();
    let out = with_stdin(&["replay", "-"], &bytes);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "pktpath: stdout is not a terminal; add --headless to print a summary instead\n"
    );
}

/// A packet's TCP ports, read from its summary (`A:P > B:Q TCP …`; IPv6 addresses are bracketed), or None
/// when it is not TCP over IP.
fn tcp_ports(p: &Value) -> Option<(u16, u16)> {
    let summary = p["summary"].as_str()?;
    let (endpoints, _) = summary.split_once(" TCP ")?;
    let (src, dst) = endpoints.split_once(" > ")?;
    let port = |end: &str| end.rsplit(':').next()?.parse::<u16>().ok();
    Some((port(src)?, port(dst)?))
}

/// The packet ids in a pcapng written by pktpath, from each frame's comment (`#ID rx …`), in file order,
/// with the frames' bytes and timestamps.
fn pcapng_frames(path: &Path) -> Vec<(u64, u64, Vec<u8>)> {
    CaptureReader::open(path)
        .unwrap()
        .map(|f| {
            let comment = f.comment.expect("every frame has its comment");
            let id = comment[1..].split(' ').next().unwrap().parse().unwrap();
            (id, f.t_ns, f.frame)
        })
        .collect()
}

/// Run a headless replay of `name` fully and with `--filter expr`, in JSON (and pcapng) and in the Chrome
/// format, and check the filtered exports hold exactly the packets `keep` picks from the full ones.
fn filter_matches(name: &str, expr: &str, keep: impl Fn(&Value) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let file = capture(name);
    let file_s = file.to_str().unwrap();
    let (full_out, full_json, _) = replay_files(dir.path(), "full", file_s, &[], None);
    let (cut_out, cut_json, _) = replay_files(dir.path(), "cut", file_s, &["--filter", expr], None);
    let full: Value = serde_json::from_slice(&full_json).unwrap();
    let cut: Value = serde_json::from_slice(&cut_json).unwrap();

    let expected: Vec<&Value> = packets(&full).iter().filter(|p| keep(p)).collect();
    let written: Vec<&Value> = packets(&cut).iter().collect();
    assert!(!expected.is_empty(), "{name}: the filter keeps something");
    assert!(
        expected.len() < packets(&full).len(),
        "{name}: the filter leaves something out"
    );
    assert_eq!(written, expected, "{name} --filter {expr}");
    // Everything but the packets is the same: every packet is counted and every connection listed.
    assert_eq!(cut["stats"], full["stats"], "{name}");
    assert_eq!(cut["connections"], full["connections"], "{name}");
    assert_eq!(cut["replay"], full["replay"], "{name}");
    let mut source = full["source"].clone();
    source["filter"] = expr.into();
    assert_eq!(cut["source"], source, "{name}: the header names the filter");

    // The summary is the full run's, but for the count of packets written.
    let (full_s, cut_s) = (steady(&stdout(&full_out)), steady(&stdout(&cut_out)));
    assert_eq!(without_files(&cut_s), without_files(&full_s), "{name}");
    let traced = packets(&full).len();
    let cut_path = dir.path().join("cut.json");
    assert!(
        cut_s.contains(&format!(
            "\nexport: {} (json, {} of {traced} packets)\n",
            cut_path.display(),
            expected.len()
        )),
        "{cut_s}"
    );

    // The pcapng holds the kept packets' wire frames, as the full one has them, in wire order.
    let kept: BTreeSet<u64> = expected.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    let full_frames = pcapng_frames(&dir.path().join("full.pcapng"));
    let cut_frames = pcapng_frames(&dir.path().join("cut.pcapng"));
    let expected_frames: Vec<_> = full_frames
        .iter()
        .filter(|(id, ..)| kept.contains(id))
        .cloned()
        .collect();
    assert_eq!(cut_frames, expected_frames, "{name}: the pcapng frames");
    assert!(
        cut_frames.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: in wire order"
    );
    assert!(
        cut_s.contains(&format!("({} wire frames)", cut_frames.len())),
        "{cut_s}"
    );

    // Chrome: the packets' slices are the kept ones; the buffer-level counters are all there.
    let chrome = |tag: &str, extra: &[&str]| {
        let path = dir.path().join(format!("{tag}.trace.json"));
        let mut args = vec![
            "replay",
            file_s,
            "--headless",
            "--max-speed",
            "--export",
            path.to_str().unwrap(),
            "--format",
            "chrome",
        ];
        args.extend_from_slice(extra);
        let out = pktpath(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        read_json(&path)
    };
    let (full_c, cut_c) = (chrome("full", &[]), chrome("cut", &["--filter", expr]));
    let events = |doc: &Value| doc["traceEvents"].as_array().unwrap().clone();
    // pid 1 has a thread per packet (tid = its id: its name, slices and flow ends); pid 2 the counters.
    let expected: Vec<Value> = events(&full_c)
        .into_iter()
        .filter(|e| e["pid"] != 1 || e["tid"].as_u64().is_none_or(|id| kept.contains(&id)))
        .collect();
    let counters = expected.iter().filter(|e| e["ph"] == "C").count();
    assert!(counters > 0, "{name}: the trace has counters");
    assert_eq!(
        events(&full_c).iter().filter(|e| e["ph"] == "C").count(),
        counters,
        "{name}: counters kept whole"
    );
    assert!(events(&cut_c) == expected, "{name}: the Chrome trace");
    let mut metadata = full_c["metadata"].clone();
    metadata["source"]["filter"] = expr.into();
    assert_eq!(
        cut_c["metadata"], metadata,
        "{name}: the same stats, the filter named"
    );
}

#[test]
fn filter_writes_exactly_the_matching_packets() {
    filter_matches("http-get.pcap", "tcp and port 80", |p| {
        tcp_ports(p).is_some_and(|(s, d)| s == 80 || d == 80)
    });
    // One connection of five.
    filter_matches("parallel.pcap", "tcp and port 41870", |p| {
        tcp_ports(p).is_some_and(|(s, d)| s == 41870 || d == 41870)
    });
}

#[test]
fn a_bad_filter_is_one_line_naming_it_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("t.json");
    let file = capture("http-get.pcap");
    for command in [
        vec!["replay", file.to_str().unwrap()],
        vec!["sim"],
        vec!["live"],
    ] {
        let mut args = command.clone();
        args.extend([
            "--headless",
            "--export",
            export.to_str().unwrap(),
            "--filter",
            "tcp and prot 80",
        ]);
        let out = pktpath(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stdout(&out), "");
        assert_eq!(
            stderr(&out),
            "pktpath: --filter 'tcp and prot 80': at column 9, unknown word 'prot', expected a predicate \
             such as tcp, udp, icmp, arp, host, port, syn, rx, tx, dropped, stage or flow; fix the expression \
             (the README lists the filter language)\n",
            "{args:?}"
        );
        assert!(!export.exists(), "nothing written");
    }
    // Without an export the filter would choose nothing.
    let out = pktpath(&["sim", "--headless", "--filter", "tcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "pktpath: --filter 'tcp' chooses the packets --export and --pcap-out write; add one of them\n"
    );
}

#[test]
fn headless_runs_write_nothing_to_a_stderr_that_is_not_a_terminal() {
    let file = capture("lossy.pcap");
    for args in [
        vec!["sim", "--headless"],
        vec!["replay", file.to_str().unwrap(), "--headless"],
    ] {
        let out = pktpath(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
        check_wall_time(&stdout(&out));
    }
}
