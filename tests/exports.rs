//! The Chrome trace (`--format chrome`) and the annotated pcapng (`--pcap-out`): structure, agreement with the
//! JSON timeline of the same run, what Wireshark's tshark reads back, and byte-identical output for identical
//! runs, for `sim` through the binary and for `replay` through the library.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;

use common::{packets, pktpath, stderr, stdout};
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapNGSlice};
use serde_json::Value;

const SIM: [&str; 6] = ["--clients", "3", "--bytes", "20000", "--udp", "2"];

fn sim(args: &[&str]) -> String {
    let mut all = vec!["sim", "--headless"];
    all.extend_from_slice(&SIM);
    all.extend_from_slice(args);
    let out = pktpath(&all);
    assert!(out.status.success(), "pktpath {all:?}: {}", stderr(&out));
    stdout(&out)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).expect("valid JSON")
}

/// µs as written (three decimals) back to integer ns.
fn ns(v: &Value) -> i64 {
    (v.as_f64().expect("numeric time") * 1000.0).round() as i64
}

/// A slice's (pid, tid).
type Row = (u64, u64);
/// A slice's start and end in ns, and its place in the file.
type Slice = (i64, i64, usize);

fn is_int(v: &Value) -> bool {
    v.is_u64() || v.is_i64()
}

#[test]
fn chrome_trace_of_a_sim_run_nests_binds_its_flows_and_has_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.json");
    let summary = sim(&["--export", path.to_str().unwrap(), "--format", "chrome"]);
    assert!(summary.contains("(chrome, "), "{summary}");
    let doc = read_json(&path);
    let json_path = dir.path().join("timeline.json");
    sim(&["--export", json_path.to_str().unwrap()]);
    check_chrome_trace(&doc, &read_json(&json_path));
}

#[test]
fn chrome_trace_of_a_capture_replay_passes_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/lossy.pcap");
    let run = |name: &str, format: &str| {
        let path = dir.path().join(name);
        let out = pktpath(&[
            "replay",
            capture.to_str().unwrap(),
            "--headless",
            "--export",
            path.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        read_json(&path)
    };
    let trace = run("trace.json", "chrome");
    assert!(trace["metadata"]["replay"]["diff"].is_array());
    check_chrome_trace(&trace, &run("timeline.json", "json"));
}

/// The structure Perfetto needs: integer ids, slices nesting per row, every flow bound to a slice, counters,
/// and one row per packet of the JSON timeline of the same run.
fn check_chrome_trace(doc: &Value, timeline: &Value) {
    assert_eq!(doc["displayTimeUnit"], "ns");
    assert_eq!(doc["metadata"]["format"], "pktpath-chrome-trace");
    let events = doc["traceEvents"].as_array().expect("traceEvents");

    // (start, end, file order) of every slice, per (pid, tid).
    let mut slices: BTreeMap<Row, Vec<Slice>> = BTreeMap::new();
    let mut flows = Vec::new();
    let mut named = BTreeSet::new();
    let mut counters = 0;
    for (i, e) in events.iter().enumerate() {
        for key in ["pid", "tid", "id"] {
            if let Some(v) = e.get(key) {
                assert!(is_int(v), "{key} is not an integer in {e}");
            }
        }
        match e["ph"].as_str().expect("ph") {
            "X" => {
                let (ts, dur) = (ns(&e["ts"]), ns(&e["dur"]));
                assert!(dur >= 0, "negative duration: {e}");
                assert!(e["args"]["stage"].is_string(), "slice without stage: {e}");
                assert!(
                    e["args"]["outcome"].is_string(),
                    "slice without outcome: {e}"
                );
                assert!(
                    e["args"].get("reason").is_some(),
                    "slice without reason: {e}"
                );
                let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
                slices.entry(key).or_default().push((ts, ts + dur, i));
            }
            "s" | "f" => flows.push(e.clone()),
            "C" => {
                counters += 1;
                assert_eq!(e["pid"], 2, "counters live in pid 2: {e}");
                let args = e["args"].as_object().expect("counter args");
                assert!(
                    !args.is_empty() && args.values().all(Value::is_number),
                    "{e}"
                );
            }
            "M" => {
                if e["name"] == "thread_name" {
                    named.insert(e["tid"].as_u64().unwrap());
                    assert!(
                        e["args"]["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with('#')),
                        "{e}"
                    );
                }
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }

    // Every row's slices, sorted by start (longest first on a tie, then file order), form a proper nesting.
    for (key, list) in &mut slices {
        list.sort_by_key(|&(s, e, i)| (s, std::cmp::Reverse(e), i));
        let mut stack: Vec<(i64, i64)> = Vec::new();
        for &(s, e, _) in list.iter() {
            while stack.last().is_some_and(|&(_, top_end)| top_end <= s) {
                stack.pop();
            }
            if let Some(&(ps, pe)) = stack.last() {
                assert!(
                    ps <= s && e <= pe,
                    "row {key:?}: slice [{s}, {e}] overlaps its parent [{ps}, {pe}]"
                );
            } else {
                assert!(
                    list.iter().all(|&(os, oe, _)| s <= os && oe <= e),
                    "row {key:?}: [{s}, {e}] does not hold the row"
                );
            }
            stack.push((s, e));
        }
    }

    // Every flow binds to a slice on its row, and the starts and finishes pair up one to one.
    let mut starts = BTreeMap::new();
    let mut finishes = BTreeMap::new();
    for f in &flows {
        let key = (f["pid"].as_u64().unwrap(), f["tid"].as_u64().unwrap());
        let t = ns(&f["ts"]);
        let row = slices
            .get(&key)
            .unwrap_or_else(|| panic!("flow on a row without slices: {f}"));
        assert!(
            row.iter().any(|&(s, e, _)| s <= t && t <= e),
            "flow outside every slice of its row: {f}"
        );
        let id = f["id"].as_u64().unwrap();
        let map = if f["ph"] == "s" {
            &mut starts
        } else {
            &mut finishes
        };
        assert!(map.insert(id, t).is_none(), "flow id {id} used twice: {f}");
        if f["ph"] == "f" {
            assert_eq!(f["bp"], "e", "{f}");
        }
    }
    assert!(!starts.is_empty(), "no flow events");
    assert_eq!(
        starts.keys().collect::<Vec<_>>(),
        finishes.keys().collect::<Vec<_>>()
    );
    for (id, t) in &starts {
        assert!(finishes[id] >= *t, "flow {id} finishes before it starts");
    }

    // One row per packet, as many as the JSON timeline of the same run has.
    let doc = timeline;
    let ids: BTreeSet<u64> = packets(doc)
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(named, ids, "one named row per packet");
    let caused: usize = packets(doc)
        .iter()
        .map(|p| p["caused"].as_array().unwrap().len())
        .sum();
    assert_eq!(starts.len(), caused, "one flow per caused packet");
    assert!(counters > 2, "counter events present");
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "C" && e["name"] == "frame_buffer")
    );
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "C" && e["name"].as_str().unwrap().starts_with("conn "))
    );
}

struct Epb {
    ts: u64,
    inbound: bool,
    data: Vec<u8>,
    comment: String,
    /// On interface 1, `recorded` (a replay's recorded frames of the stack), not on 0, `pktpath`.
    recorded: bool,
}

/// An option's value, by code, among a block's options.
fn option_value(options: &[pcap_parser::PcapNGOption], code: u16) -> Option<Vec<u8>> {
    options
        .iter()
        .find(|o| o.code.0 == code)
        .map(|o| o.value[..o.len as usize].to_vec())
}

/// Every Enhanced Packet Block of a pcapng file, checking its interfaces on the way: `pktpath` (Ethernet),
/// and in a replay's file `recorded` (LINKTYPE_USER0), which holds exactly the recorded frames of the stack.
fn read_pcapng(path: &Path) -> Vec<Epb> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut interfaces = Vec::new();
    for block in PcapNGSlice::from_slice(&bytes).expect("pcapng") {
        match block.expect("well-formed block") {
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                let name = option_value(&idb.options, 2).expect("if_name");
                interfaces.push((idb.linktype.0, String::from_utf8(name).unwrap()));
                assert_eq!(idb.if_tsresol, 9, "ns resolution");
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let mut comment = None;
                let mut flags = None;
                for o in &epb.options {
                    let v = &o.value[..o.len as usize];
                    match o.code.0 {
                        1 => comment = Some(String::from_utf8(v.to_vec()).expect("UTF-8 comment")),
                        2 => flags = Some(u32::from_le_bytes(v.try_into().unwrap())),
                        _ => {}
                    }
                }
                assert_eq!(epb.caplen, epb.origlen);
                let dir = flags.expect("epb_flags") & 0b11;
                assert!(dir == 1 || dir == 2, "direction set");
                let comment = comment.expect("every frame has a comment");
                assert!(
                    (epb.if_id as usize) < interfaces.len(),
                    "interface described before use"
                );
                let recorded = epb.if_id == 1;
                assert_eq!(
                    recorded,
                    comment.contains("; outcome consumed wire (recorded "),
                    "only the recorded frames are on interface 1: {comment}"
                );
                out.push(Epb {
                    ts: (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low),
                    inbound: dir == 1,
                    data: epb.data[..epb.caplen as usize].to_vec(),
                    comment,
                    recorded,
                });
            }
            _ => {}
        }
    }
    let pktpath = (1, "pktpath".to_string());
    let recorded = (147, "recorded".to_string());
    assert!(
        interfaces == [pktpath.clone()] || interfaces == [pktpath, recorded],
        "{interfaces:?}"
    );
    out
}

/// The packets of a JSON timeline that crossed the wire, by id, with their wire time.
fn wire_packets(doc: &Value) -> BTreeMap<u64, (&Value, u64)> {
    packets(doc)
        .iter()
        .filter_map(|p| {
            let t = p["hops"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["stage"] == "wire")?["t_ns"]
                .as_u64()?;
            Some((p["id"].as_u64().unwrap(), (p, t)))
        })
        .collect()
}

/// Each frame matches its packet in the timeline: id, direction, wire time, outcome named in the comment;
/// frames in time order; exactly the timeline's wire frames.
fn check_against_timeline(frames: &[Epb], doc: &Value, base_ns: u64) {
    let wire = wire_packets(doc);
    assert_eq!(
        frames.len(),
        wire.len(),
        "one frame per wire packet of the timeline"
    );
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for f in frames {
        let id: u64 = f.comment[1..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .expect("#id");
        let (p, t) = wire[&id];
        assert!(seen.insert(id), "frame {id} twice");
        assert_eq!(f.ts, base_ns + t, "timestamp of #{id}");
        assert!(f.ts >= last, "frames out of time order at #{id}");
        last = f.ts;
        assert_eq!(f.inbound, p["dir"] == "rx", "direction of #{id}");
        assert_eq!(f.data.len() as u64, p["len"].as_u64().unwrap());
        let kind = p["outcome"]["kind"].as_str().unwrap();
        assert!(
            f.comment.contains(&format!("; outcome {kind} ")),
            "{}",
            f.comment
        );
        if kind == "dropped" {
            let reason = p["outcome"]["reason"].as_str().unwrap();
            assert!(f.comment.ends_with(reason), "{}", f.comment);
        }
        assert!(f.comment.contains(&format!("wire@{t}ns")), "{}", f.comment);
    }
}

#[test]
fn pcapng_of_a_sim_run_holds_every_wire_frame_with_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("wire.pcapng");
    let json = dir.path().join("timeline.json");
    let summary = sim(&[
        "--export",
        json.to_str().unwrap(),
        "--pcap-out",
        pcap.to_str().unwrap(),
    ]);
    let frames = read_pcapng(&pcap);
    assert!(
        summary.contains(&format!(
            "pcapng: {} ({} wire frames)",
            pcap.display(),
            frames.len()
        )),
        "{summary}"
    );
    let doc = read_json(&json);
    check_against_timeline(&frames, &doc, 0);
    assert!(frames.iter().any(|f| f.inbound) && frames.iter().any(|f| !f.inbound));

    // The first frame's bytes are exactly what the simulated peer put on the wire first.
    let mut args = vec!["pktpath", "sim"];
    args.extend_from_slice(&SIM);
    let Ok(cli) = pktpath::cli::parse_from(args) else {
        panic!("args parse")
    };
    let Some(pktpath::cli::Command::Sim(sim_args)) = cli.command else {
        panic!("sim")
    };
    let spec = sim_args.spec();
    let mut both = None;
    let mut run = pktpath::sim::build_with(&spec, |peer| {
        let recorder = pktpath::sim::script::Recorder::new(peer);
        both = Some(recorder.both.clone());
        Box::new(recorder)
    });
    while !run.pipeline.run_until(spec.max_time_ns, 4096) {
        run.pipeline.drain_finished().for_each(drop);
    }
    let both = both.unwrap();
    let recorded = both.borrow();
    let (t, toward, first) = &recorded[0];
    assert_eq!(&frames[0].data, first, "exact bytes of the first frame");
    assert_eq!(frames[0].ts, *t);
    assert!(*toward && frames[0].inbound);
}

/// tshark's name for the packet comment field: `frame.comment` since Wireshark 3.6, `pkt_comment` before.
fn tshark_comments(file: &Path) -> Option<Vec<String>> {
    for field in ["frame.comment", "pkt_comment"] {
        let out = std::process::Command::new("tshark")
            .args(["-r", file.to_str().unwrap(), "-T", "fields", "-e", field])
            .output()
            .ok()?;
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            return Some(text.lines().map(String::from).collect());
        }
    }
    None
}

#[test]
fn tshark_shows_every_frame_with_its_comment() {
    if !common::tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("wire.pcapng");
    sim(&["--pcap-out", pcap.to_str().unwrap()]);
    let frames = read_pcapng(&pcap);
    let comments = tshark_comments(&pcap).expect("tshark reads the file");
    assert_eq!(comments.len(), frames.len(), "tshark sees every frame");
    for (shown, f) in comments.iter().zip(&frames) {
        assert_eq!(shown, &f.comment, "tshark shows the comment");
        assert!(shown.contains("; outcome "), "{shown}");
    }
    // And a replay of a real capture: every frame of both directions, with its timeline.
    let replayed = dir.path().join("replayed.pcapng");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-post.pcapng");
    let out = pktpath(&[
        "replay",
        capture.to_str().unwrap(),
        "--headless",
        "--pcap-out",
        replayed.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let frames = read_pcapng(&replayed);
    let comments = tshark_comments(&replayed).expect("tshark reads the file");
    assert_eq!(comments.len(), frames.len(), "tshark sees every frame");
    assert!(frames.len() > 22, "the capture's frames and the stack's");
    for (shown, f) in comments.iter().zip(&frames) {
        assert_eq!(shown, &f.comment);
        assert!(shown.contains("; outcome "), "{shown}");
    }
}

#[test]
fn identical_runs_write_identical_chrome_and_pcapng_files() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(Vec<u8>, Vec<u8>)> = (0..2)
        .map(|i| {
            let trace = dir.path().join(format!("trace{i}.json"));
            let pcap = dir.path().join(format!("wire{i}.pcapng"));
            sim(&[
                "--export",
                trace.to_str().unwrap(),
                "--format",
                "chrome",
                "--pcap-out",
                pcap.to_str().unwrap(),
            ]);
            (std::fs::read(trace).unwrap(), std::fs::read(pcap).unwrap())
        })
        .collect();
    assert!(files[0].0 == files[1].0, "chrome traces differ");
    assert!(files[0].1 == files[1].1, "pcapng files differ");
}

#[test]
fn replay_writes_both_exports_with_the_capture_clock() {
    use pktpath::export::{ExportPlan, Format};
    use pktpath::replay::{ReplaySpec, Source};
    use pktpath::session::{self, report};

    // A capture of a sim run's wire (as tests/replay_sim.rs makes one), starting at a real epoch time.
    const BASE: u64 = 1_700_000_000_000_000_000;
    let spec = pktpath::sim::SimSpec {
        clients: 1,
        bytes: 4000,
        udp: 0,
        ..Default::default()
    };
    let (frames, _) = common::capture_of_sim(&spec, BASE);
    let first_t = frames[0].t_ns;
    let replay = ReplaySpec {
        source: Source::Frames {
            name: "sim-wire".into(),
            frames: Rc::new(frames),
        },
        as_ip: None,
        apps: Vec::new(),
        speed: Some(1.0),
        frame_buffer: 256,
        seed: 7,
        hop_cost_ns: 1000,
        tail_ns: 2_000_000_000,
        keep_checksums: false,
        max_gap_ns: pktpath::replay::gaps::DEFAULT_MAX_GAP_NS,
    };
    let dir = tempfile::tempdir().unwrap();
    let run_to = |format: Format, name: &str| {
        let timeline = dir.path().join(name);
        let pcap = dir.path().join(format!("{name}.pcapng"));
        let plan = ExportPlan {
            timeline: Some((timeline.clone(), format)),
            pcap: Some(pcap.clone()),
            filter: None,
        };
        let result = session::run_replay(&replay, &plan).expect("replay runs");
        assert_eq!(
            result.base_ns, first_t,
            "virtual time 0 is the capture's first timestamp"
        );
        let text = report::replay(&replay, &result, plan.timeline.as_ref());
        assert!(text.contains("pcapng: "), "{text}");
        (
            read_json(&timeline),
            std::fs::read(&pcap).unwrap(),
            read_pcapng(&pcap),
            result.pcap,
        )
    };
    let (doc, bytes_a, frames, written) = run_to(Format::Json, "timeline.json");
    assert_eq!(written.map(|(_, n)| n), Some(frames.len() as u64));
    check_against_timeline(&frames, &doc, first_t);
    assert!(
        frames
            .iter()
            .any(|f| f.comment.contains("recorded response") && f.recorded),
        "the capture's recorded responses are wire frames too, on the interface `recorded`"
    );
    let (trace, bytes_b, _, _) = run_to(Format::Chrome, "trace.json");
    assert!(
        trace["traceEvents"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
    assert!(
        bytes_a == bytes_b,
        "the pcapng does not depend on the timeline format"
    );
}
