//! The summary a headless run prints: what the source was, the run's counters (frames, outcomes, drops by
//! reason, per-hop latency), what the source saw itself (the simulated peer's view, the replay's diff, the
//! TAP's counters), and the files written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::export::Format;
use crate::live::LiveSpec;
use crate::live::run::LiveResult;
use crate::pipeline::dissect::format_mac;
use crate::pipeline::trace::Stats;
use crate::pipeline::{AppKind, OutcomeKind, Stage};
use crate::replay::flows::{MAX_FLOWS, WhyNot, linktype_name};
use crate::replay::{NO_HOST, ReplaySpec};
use crate::sim::SimSpec;

use super::deterministic::{ReplayResult, SimResult};

/// `n` with its noun, singular or plural: `1 packet`, `2 packets`, `0 packets`.
fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A timeline format as the command line spells it (`json`, `jsonl`, `chrome`).
fn format_name(format: Format) -> String {
    clap::ValueEnum::to_possible_value(&format)
        .map_or_else(|| format!("{format:?}"), |v| v.get_name().to_string())
}

pub(crate) fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

/// `count` per second of `wall`, short: `812`, `45.6k`, `1.23M`.
pub(crate) fn per_second(count: u64, wall: Duration) -> String {
    let rate = count as f64 / wall.as_secs_f64().max(1e-9);
    if rate < 1e3 {
        format!("{rate:.0}")
    } else if rate < 1e6 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{:.2}M", rate / 1e6)
    }
}

/// The run's wall time and its pace: frames in per wall-clock second.
fn wall_time(s: &mut String, wall: Duration, frames_in: u64) {
    let _ = writeln!(
        s,
        "wall time {}, {} frames/s",
        fmt_ns(wall.as_nanos().min(u128::from(u64::MAX)) as u64),
        per_second(frames_in, wall)
    );
}

/// Per connection: did the app read exactly what the peer sent, and did the peer get back what it expected?
struct PeerCheck {
    pub clients: usize,
    pub completed: usize,
    pub reset: usize,
    pub app_read_matches: usize,
    pub echo_matches: usize,
}

fn peer_check(spec: &SimSpec, r: &SimResult) -> PeerCheck {
    let mut check = PeerCheck {
        clients: r.report.clients.len(),
        completed: r.report.clients.iter().filter(|c| c.completed).count(),
        reset: r.report.clients.iter().filter(|c| c.reset).count(),
        app_read_matches: 0,
        echo_matches: 0,
    };
    for c in &r.report.clients {
        let conn = r.connections.iter().find(|k| {
            k.proto == crate::pipeline::trace::ConnProto::Tcp
                && if spec.outbound {
                    Some(k.local) == c.remote
                } else {
                    k.remote.port() == c.local_port
                }
        });
        let Some(conn) = conn else { continue };
        if conn.app_read == c.sent {
            check.app_read_matches += 1;
        }
        // Inbound, the peer wrote and expects its bytes back (echo); outbound, the peer is the echo server and
        // must have received exactly what our app wrote.
        let expected = if spec.outbound {
            conn.app_written
        } else {
            c.sent
        };
        if c.received == expected {
            check.echo_matches += 1;
        }
    }
    check
}

pub fn sim(spec: &SimSpec, r: &SimResult, export: Option<&(PathBuf, Format)>) -> String {
    let mut s = String::new();
    let mut app_map = spec.app_map();
    if spec.outbound {
        // In outbound mode nothing listens on the port: the app behind pktpath is the client.
        app_map.remove(&spec.port);
    }
    let apps: Vec<String> = app_map.iter().map(|(p, k)| format!("{p}={k}")).collect();
    let apps = if apps.is_empty() {
        "none".to_string()
    } else {
        apps.join(",")
    };
    let port_serves_udp = spec
        .app_map()
        .get(&spec.port)
        .is_some_and(|k| k.serves_udp());
    let udp = if port_serves_udp { spec.udp } else { 0 };
    let dir = if spec.outbound {
        "outbound: the app connects to the peer"
    } else {
        "inbound"
    };
    let _ = writeln!(
        s,
        "pktpath sim ({dir}): {} × {} to port {}, {}, apps {apps}, seed {}",
        count(spec.clients as u64, "TCP client", "TCP clients"),
        count(spec.bytes as u64, "byte", "bytes"),
        spec.port,
        count(udp as u64, "UDP datagram", "UDP datagrams"),
        spec.seed
    );
    interrupted(&mut s, r.interrupted, r.interrupted_by, r.end_ns);
    stats_summary(&mut s, &r.stats, r.end_ns, r.packets);
    let c = peer_check(spec, r);
    let _ = write!(
        s,
        "peer: {}/{} connections completed, {} reset; app read exactly what the peer sent on {}/{}",
        c.completed, c.clients, c.reset, c.app_read_matches, c.clients
    );
    if spec.outbound {
        let _ = write!(
            s,
            "; peer received exactly what the app wrote on {}/{}",
            c.echo_matches, c.clients
        );
    } else if spec.app_map().get(&spec.port) == Some(&AppKind::Echo) {
        let _ = write!(
            s,
            "; peer got back what it sent on {}/{}",
            c.echo_matches, c.clients
        );
    }
    s.push('\n');
    if let Some(u) = &r.report.udp {
        let echoed = u.replies.iter().filter(|d| u.sent.contains(d)).count();
        let _ = writeln!(
            s,
            "udp: {} sent, {} ({echoed} match a sent datagram)",
            count(u.sent.len() as u64, "datagram", "datagrams"),
            count(u.replies.len() as u64, "reply", "replies"),
        );
    }
    wall_time(&mut s, r.wall, r.stats.frames_in);
    files_written(&mut s, export, (r.packets, r.filtered), r.pcap.as_ref());
    s
}

/// The line saying a deterministic run was stopped before its end (a signal), and where.
fn interrupted(s: &mut String, interrupted: bool, by: Option<&str>, end_ns: u64) {
    if !interrupted {
        return;
    }
    let by = by.map_or(String::new(), |b| format!(" by {b}"));
    let _ = writeln!(
        s,
        "interrupted{by} at virtual time {}: finished there, exports complete (packets on their way end in_flight)",
        fmt_ns(end_ns)
    );
}

/// The summary's lines about the files written: the timeline export (`packets` traced; with a filter, how
/// many of them it kept) and the pcapng.
fn files_written(
    s: &mut String,
    export: Option<&(PathBuf, Format)>,
    (packets, filtered): (u64, Option<u64>),
    pcap: Option<&(PathBuf, u64)>,
) {
    if let Some((path, format)) = export {
        let kept = filtered.map_or(String::new(), |k| format!("{k} of "));
        let _ = writeln!(
            s,
            "export: {} ({}, {kept}{})",
            path.display(),
            format_name(*format),
            count(packets, "packet", "packets")
        );
    }
    if let Some((path, frames)) = pcap {
        let frames = count(*frames, "wire frame", "wire frames");
        let _ = writeln!(s, "pcapng: {} ({frames})", path.display());
    }
}

/// The run's counters: virtual time, frames, outcomes, drops by reason, per-hop latency.
fn stats_summary(s: &mut String, st: &Stats, end_ns: u64, packets: u64) {
    stats_summary_timed(s, "virtual time", st, end_ns, packets);
}

/// `stats_summary` with the kind of time named (a live run's is real).
fn stats_summary_timed(s: &mut String, time: &str, st: &Stats, end_ns: u64, packets: u64) {
    let _ = writeln!(
        s,
        "{time} {}, {} traced",
        fmt_ns(end_ns),
        count(packets, "packet", "packets")
    );
    let _ = writeln!(s, "frames: {} in, {} out", st.frames_in, st.frames_out);
    let outcomes: Vec<String> = OutcomeKind::ALL
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                k.name(),
                st.outcomes.get(k.name()).copied().unwrap_or(0)
            )
        })
        .collect();
    let _ = writeln!(s, "outcomes: {}", outcomes.join(", "));
    if st.drops.is_empty() {
        let _ = writeln!(s, "drops: none");
    } else {
        let _ = writeln!(s, "drops:");
        for ((stage, code), n) in &st.drops {
            let _ = writeln!(s, "  {:<14} {:<22} {n}", stage.name(), code);
        }
    }
    if st.half_open_evicted > 0 {
        let _ = writeln!(
            s,
            "half-open: {} aborted in SYN-RECEIVED past the backlog of {} (the oldest first)",
            count(st.half_open_evicted, "connection", "connections"),
            crate::pipeline::SYN_BACKLOG
        );
    }
    if st.half_open_expired > 0 {
        let _ = writeln!(
            s,
            "half-open: {} aborted in SYN-RECEIVED, the handshake not completed within {} s",
            count(st.half_open_expired, "connection", "connections"),
            crate::pipeline::SYN_RECEIVED_TIMEOUT_NS / 1_000_000_000
        );
    }
    let _ = writeln!(s, "hop latency (p50 / p99):");
    for ((d, from, to), h) in &st.hop_latency {
        let _ = writeln!(
            s,
            "  {} {:>13} → {:<13} {:>9} / {:<9} ({})",
            d.name(),
            from.name(),
            to.name(),
            fmt_ns(h.percentile(50.0).unwrap_or(0)),
            fmt_ns(h.percentile(99.0).unwrap_or(0)),
            count(h.count(), "hop", "hops")
        );
    }
}

pub fn print(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())
}

/// The headless summary of a replay.
pub fn replay(spec: &ReplaySpec, r: &ReplayResult, export: Option<&(PathBuf, Format)>) -> String {
    let mut s = String::new();
    let id = &r.identity;
    let _ = writeln!(
        s,
        "replay {} ({}, {}{}) as {} ({}){}, apps {}",
        spec.source.name(),
        r.format,
        count(r.frames_read, "record", "records"),
        r.stopped
            .as_ref()
            .map_or(String::new(), |w| format!("; reading stopped early: {w}")),
        id.ip,
        format_mac(&id.mac),
        if id.ip == NO_HOST && spec.as_ip.is_none() {
            ": the capture names no IP host, so the stack takes a documentation address"
        } else {
            ""
        },
        if r.apps.is_empty() {
            "none".to_string()
        } else {
            r.apps.join(",")
        },
    );
    interrupted(&mut s, r.interrupted, r.interrupted_by, r.end_ns);
    stats_summary(&mut s, &r.stats, r.end_ns, r.packets);
    let _ = writeln!(
        s,
        "replay: {} played; {} for the stack (longest {} µs), {} acknowledged only what it had sent; {} (ARP/ND, owed acks, {} by the peer)",
        count(r.played_flows as u64, "recorded flow", "recorded flows"),
        count(r.wire.waits, "frame waited", "frames waited"),
        r.wire.longest_wait_ns / 1000,
        r.wire.clamped,
        count(r.wire.synthetic, "synthetic frame", "synthetic frames"),
        count(r.wire.retransmitted, "retransmission", "retransmissions"),
    );
    if r.wire.checksums_fixed > 0 {
        let _ = writeln!(
            s,
            "checksums: {} fixed (--keep-checksums to inject as recorded)",
            count(
                r.wire.checksums_fixed,
                "offloaded checksum",
                "offloaded checksums"
            ),
        );
    } else if r.wire.checksums_kept > 0 {
        let _ = writeln!(
            s,
            "checksums: {} injected as recorded (--keep-checksums)",
            count(
                r.wire.checksums_kept,
                "offloaded checksum",
                "offloaded checksums"
            ),
        );
    }
    if r.wire.gaps_shortened > 0 {
        let _ = writeln!(
            s,
            "gaps: {} longer than --max-gap {} shortened to it (longest {}), {} of recorded time skipped",
            count(r.wire.gaps_shortened, "idle gap", "idle gaps"),
            fmt_ns(r.wire.max_gap_ns),
            fmt_ns(r.wire.longest_gap_ns),
            fmt_ns(r.wire.gap_time_removed_ns),
        );
    }
    if r.wire.merged > 0 {
        let _ = writeln!(
            s,
            "merged segments: {} larger than the MTU (merged by the capturing host's GRO/LRO), sent as {} wire-sized segments",
            r.wire.merged, r.wire.merged_pieces
        );
    }
    if r.wire.holes > 0 {
        let _ = writeln!(
            s,
            "not captured: {}, {} supplied as filler ({} by the peer, {} by the app); {} unproven (no recorded ack proves them within the filler budget of {} KiB per frame: not filled)",
            count(r.wire.holes, "hole", "holes"),
            count(r.wire.filler_peer + r.wire.filler_app, "byte", "bytes"),
            r.wire.filler_peer,
            r.wire.filler_app,
            count(r.wire.unproven, "byte", "bytes"),
            crate::replay::script::FILLER_PER_FRAME / 1024,
        );
    }
    if r.wire.joined > 0 {
        let _ = writeln!(
            s,
            "joined: {} whose handshake was not captured (synthetic SYN/ACK)",
            count(r.wire.joined, "flow", "flows")
        );
    }
    if r.diffs.is_empty() {
        let _ = writeln!(s, "diff: no TCP flow of the stack");
    } else {
        let same = r
            .diffs
            .iter()
            .filter(|d| d.first_divergence.is_none())
            .count();
        let _ = writeln!(s, "diff: {same}/{} flows as recorded", r.diffs.len());
        for d in &r.diffs {
            let _ = writeln!(s, "  {d}");
        }
    }
    why_not_played(&mut s, r);
    wall_time(&mut s, r.wall, r.stats.frames_in);
    files_written(&mut s, export, (r.packets, r.filtered), r.pcap.as_ref());
    s
}

/// Lines about flows that did not play, at most this many (the rest are counted by reason).
const NOT_PLAYED_LINES: usize = 10;

/// The loopback renames, the records no link type could be made Ethernet, and every flow of the capture
/// the apps read and wrote nothing for, with why: one line each, the rest counted by reason.
fn why_not_played(s: &mut String, r: &ReplayResult) {
    let seen = &r.wire.seen;
    for (addr, (n, rename)) in seen.loopback() {
        let stack = rename
            .stack_to
            .map_or(String::new(), |a| format!(", the stack's end {a}"));
        let _ = writeln!(
            s,
            "loopback recording: {} between {addr} and itself: the peer renamed {}{stack}",
            count(n, "flow", "flows"),
            rename.to
        );
    }
    for (linktype, u) in &seen.unreadable {
        let _ = writeln!(
            s,
            "not played: {} of {} — not injectable: {}",
            count(u.records, "record", "records"),
            linktype_name(*linktype),
            u.first_problem
        );
    }
    let all = &r.not_played;
    let shown = if all.len() > NOT_PLAYED_LINES {
        NOT_PLAYED_LINES - 1
    } else {
        all.len()
    };
    for n in &all[..shown] {
        let _ = writeln!(s, "not played: {n}");
    }
    if shown < all.len() {
        let mut by_reason: BTreeMap<WhyNot, u64> = BTreeMap::new();
        for n in &all[shown..] {
            *by_reason.entry(n.reason).or_default() += 1;
        }
        let reasons: Vec<String> = by_reason
            .iter()
            .map(|(why, k)| format!("{k} {}", why.code()))
            .collect();
        let _ = writeln!(
            s,
            "not played: {} ({}), each in the export's replay.flows_not_played",
            count((all.len() - shown) as u64, "more flow", "more flows"),
            reasons.join(", ")
        );
    }
    if seen.untallied_frames > 0 {
        let _ = writeln!(
            s,
            "not tallied: {} of flows beyond the first {MAX_FLOWS}",
            count(seen.untallied_frames, "frame", "frames")
        );
    }
}

/// The headless summary of a live run.
pub fn live(spec: &LiveSpec, r: &LiveResult, export: Option<&(PathBuf, Format)>) -> String {
    let mut s = String::new();
    let apps: Vec<String> = spec
        .app_map()
        .unwrap_or_default()
        .iter()
        .map(|(p, k)| format!("{p}={k}"))
        .collect();
    let _ = writeln!(
        s,
        "pktpath live on {} as {}/{} ({}), apps {}, for {:.2} s",
        r.tap_name,
        spec.ip.0,
        spec.ip.1,
        format_mac(&spec.mac),
        apps.join(","),
        r.elapsed.as_secs_f64()
    );
    if let Some(by) = r.interrupted_by {
        let _ = writeln!(s, "ended by {by}");
    }
    let st = &r.outcome.stats;
    stats_summary_timed(&mut s, "run time", st, r.outcome.end_ns, r.outcome.packets);
    let fb_drops = st
        .drops
        .get(&(Stage::FrameBuffer, "frame_buffer_full"))
        .copied()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "tap: {} read, {} found the frame buffer full (capacity {}, high water {}), {} written, {}{}",
        count(r.rx.read, "frame", "frames"),
        r.rx.overflowed,
        r.rx.capacity,
        r.rx.high_water,
        r.tx.written,
        count(r.tx.write_errors, "write error", "write errors"),
        r.tx.last_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (last: {e})")),
    );
    let _ = writeln!(
        s,
        "events lost: {} ({} overflow records not kept, {} tx frames the tap never got); frame-buffer drops traced: {fb_drops}",
        st.events_lost, r.rx.events_lost, r.tx.lost
    );
    if r.rx.after_close > 0 {
        let _ = writeln!(
            s,
            "tap: {} frames arrived after the run ended (not traced)",
            r.rx.after_close
        );
    }
    if let Some(e) = &r.tap_error {
        let _ = writeln!(s, "tap thread ended early: {e}");
    }
    // The live run's own clock, from its start to its stop, is its wall time.
    wall_time(&mut s, r.elapsed, st.frames_in);
    files_written(
        &mut s,
        export,
        (r.outcome.packets, r.outcome.filtered),
        r.outcome.pcap.as_ref(),
    );
    s
}
