//! Headless runs: drive the pipeline to the end, stream finished packets to the export, and print a summary
//! (frames, outcomes, drops by reason, per-hop latency, and the peer's own view of what it sent and got back).

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::export::{ExportPlan, Exports, Format, Header};
use crate::pipeline::OutcomeKind;
use crate::pipeline::trace::{ConnectionRecord, Stats};
use crate::sim::{self, SimReport, SimSpec};

/// Steps between two drains of finished packets into the export.
const DRAIN_EVERY: u64 = 4096;

pub struct SimResult {
    pub stats: Stats,
    pub connections: Vec<ConnectionRecord>,
    pub report: SimReport,
    pub end_ns: u64,
    pub packets: u64,
    /// The pcapng written (`--pcap-out`) and how many frames it holds.
    pub pcap: Option<(PathBuf, u64)>,
}

pub fn header(spec: &SimSpec) -> Header {
    let apps: Vec<String> = spec
        .app_map()
        .iter()
        .map(|(p, k)| format!("{p}={k}"))
        .collect();
    Header {
        source: json!({
            "kind": "sim", "clients": spec.clients, "bytes": spec.bytes, "port": spec.port, "udp": spec.udp,
            "outbound": spec.outbound, "seed": spec.seed, "apps": apps,
            "hop_cost_ns": spec.hop_cost_ns, "link_delay_ns": spec.link_delay_ns,
        }),
        stack: json!({
            "mac": "02:00:00:00:00:01", "ipv4": format!("{}/24", sim::STACK_IP), "ipv6": "fd00::1/64",
            "frame_buffer": spec.frame_buffer,
            "tcp_socket_buffer": crate::pipeline::stack::TCP_BUFFER,
            "conn_buffer": crate::pipeline::connection::CONN_BUFFER,
            "udp_socket_buffer": crate::pipeline::stack::UDP_PAYLOAD_BUFFER,
            "smoltcp": "0.14",
        }),
    }
}

/// Run a simulation to its end, writing the timeline export if asked.
pub fn run_sim(spec: &SimSpec, export: Option<(PathBuf, Format)>) -> anyhow::Result<SimResult> {
    let plan = ExportPlan {
        timeline: export,
        pcap: None,
    };
    run_sim_with(spec, &plan)
}

/// Run a simulation to its end, writing what `plan` asks for (pcapng timestamps start at 0).
pub fn run_sim_with(spec: &SimSpec, plan: &ExportPlan) -> anyhow::Result<SimResult> {
    let mut run = sim::build(spec);
    let mut exports = Exports::open(plan, &header(spec), 0)?;
    let mut packets = 0u64;
    loop {
        let over = exports.run(&mut run.pipeline, spec.max_time_ns, DRAIN_EVERY)?;
        packets += exports.drain(&mut run.pipeline)?;
        if over {
            break;
        }
    }
    let end_ns = run.pipeline.now();
    let connections = run.pipeline.finish();
    packets += exports.drain(&mut run.pipeline)?;
    let stats = run.pipeline.stats().clone();
    let written = exports.finish(&connections, &stats, None)?;
    let report = run.report.borrow().clone();
    Ok(SimResult {
        stats,
        connections,
        report,
        end_ns,
        packets,
        pcap: written.pcap,
    })
}

fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

/// Per connection: did the app read exactly what the peer sent, and did the peer get back what it expected?
pub struct PeerCheck {
    pub clients: usize,
    pub completed: usize,
    pub reset: usize,
    pub app_read_matches: usize,
    pub echo_matches: usize,
}

pub fn peer_check(spec: &SimSpec, r: &SimResult) -> PeerCheck {
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

pub fn summary(spec: &SimSpec, r: &SimResult, export: Option<&(PathBuf, Format)>) -> String {
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
        "pktpath sim ({dir}): {} TCP clients × {} bytes to port {}, {udp} UDP datagrams, apps {apps}, seed {}",
        spec.clients, spec.bytes, spec.port, spec.seed
    );
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
    } else if spec.app_map().get(&spec.port) == Some(&crate::pipeline::AppKind::Echo) {
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
            "udp: {} datagrams sent, {} replies ({} match a sent datagram)",
            u.sent.len(),
            u.replies.len(),
            echoed
        );
    }
    if let Some((path, format)) = export {
        let _ = writeln!(
            s,
            "export: {} ({:?}, {} packets)",
            path.display(),
            format,
            r.packets
        );
    }
    pcap_line(&mut s, r.pcap.as_ref());
    s
}

/// The summary's line about the pcapng written, if any.
pub fn pcap_line(s: &mut String, pcap: Option<&(PathBuf, u64)>) {
    if let Some((path, frames)) = pcap {
        let _ = writeln!(s, "pcapng: {} ({frames} wire frames)", path.display());
    }
}

/// The run's counters: virtual time, frames, outcomes, drops by reason, per-hop latency.
pub fn stats_summary(s: &mut String, st: &Stats, end_ns: u64, packets: u64) {
    stats_summary_timed(s, "virtual time", st, end_ns, packets);
}

/// `stats_summary` with the kind of time named (a live run's is real).
pub fn stats_summary_timed(s: &mut String, time: &str, st: &Stats, end_ns: u64, packets: u64) {
    let _ = writeln!(s, "{time} {}, {} packets traced", fmt_ns(end_ns), packets);
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
    let _ = writeln!(s, "hop latency (p50 / p99):");
    for ((d, from, to), h) in &st.hop_latency {
        let _ = writeln!(
            s,
            "  {} {:>13} → {:<13} {:>9} / {:<9} ({} hops)",
            d.name(),
            from.name(),
            to.name(),
            fmt_ns(h.percentile(50.0).unwrap_or(0)),
            fmt_ns(h.percentile(99.0).unwrap_or(0)),
            h.count()
        );
    }
}

pub fn print(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())
}
