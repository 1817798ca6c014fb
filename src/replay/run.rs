//! A replay from start to end: survey the capture (who the stack is), build the pipeline with the replay wire
//! and the recorded apps, run it in virtual time until the capture is played and the stack is quiet (bounded),
//! stream the export, and report the diff.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, bail};
use serde_json::json;

use crate::export::{ExportPlan, Exports, Format, Header};
use crate::pipeline::clock::{Nanos, VirtualClock};
use crate::pipeline::stack::StackConfig;
use crate::pipeline::trace::{ConnectionRecord, Stats};
use crate::pipeline::{AppKind, AppSpec, Pipeline, PipelineConfig};

use super::capture::{CaptureReader, CapturedFrame};
use super::diff::{FlowDiff, diff};
use super::recorded_app::RecordedSource;
use super::role::{Identity, Survey};
use super::script::Scripts;
use super::wire::{ReplayWire, WireReport};

/// Steps between two drains of finished packets into the export.
const DRAIN_EVERY: u64 = 4096;
/// The stack's address when the capture names no IP host (RFC 5737 TEST-NET-1).
const NO_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// How far past the played span and tail a run may go while the wire still holds frames waiting for the stack.
const MAX_OVERRUN_NS: Nanos = 600_000_000_000;

/// Where the frames come from: a file, bytes built into the binary (the demo), or frames already in memory
/// (a capture of a simulated run's wire).
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Bytes {
        name: String,
        bytes: &'static [u8],
    },
    Frames {
        name: String,
        frames: Rc<Vec<CapturedFrame>>,
    },
}

/// A source's records, one after another, and where reading stopped early if it did.
trait Records: Iterator<Item = CapturedFrame> {
    fn stopped(&self) -> Option<&str>;
    fn records_read(&self) -> u64;
    fn format(&self) -> &'static str;
}

impl Records for CaptureReader {
    fn stopped(&self) -> Option<&str> {
        CaptureReader::stopped(self)
    }
    fn records_read(&self) -> u64 {
        CaptureReader::records_read(self)
    }
    fn format(&self) -> &'static str {
        CaptureReader::format(self)
    }
}

struct InMemory {
    frames: Rc<Vec<CapturedFrame>>,
    next: usize,
}

impl Iterator for InMemory {
    type Item = CapturedFrame;
    fn next(&mut self) -> Option<CapturedFrame> {
        let f = self.frames.get(self.next).cloned();
        self.next += usize::from(f.is_some());
        f
    }
}

impl Records for InMemory {
    fn stopped(&self) -> Option<&str> {
        None
    }
    fn records_read(&self) -> u64 {
        self.next as u64
    }
    fn format(&self) -> &'static str {
        "in-memory"
    }
}

/// The capture built into the binary: one HTTP GET recorded from the kernel's stack (captures/README.md).
pub const DEMO_CAPTURE: &[u8] = include_bytes!("../../captures/demo.pcapng");

impl Source {
    pub fn demo() -> Source {
        Source::Bytes {
            name: "demo (built in: captures/demo.pcapng)".into(),
            bytes: DEMO_CAPTURE,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Bytes { name, .. } | Source::Frames { name, .. } => name.clone(),
        }
    }

    fn open(&self) -> anyhow::Result<Box<dyn Records>> {
        let reader = match self {
            Source::File(p) => CaptureReader::open(p),
            Source::Bytes { bytes, .. } => CaptureReader::from_bytes(bytes.to_vec()),
            Source::Frames { frames, .. } => {
                let frames = frames.clone();
                return Ok(Box::new(InMemory { frames, next: 0 }));
            }
        };
        Ok(Box::new(reader.with_context(|| self.name())?))
    }
}

#[derive(Debug, Clone)]
pub struct ReplaySpec {
    pub source: Source,
    pub as_ip: Option<IpAddr>,
    pub apps: Vec<AppSpec>,
    /// None: as fast as possible.
    pub speed: Option<f64>,
    pub frame_buffer: usize,
    pub seed: u64,
    pub hop_cost_ns: Nanos,
    /// How long virtual time runs on after the last frame for the stack to finish (FINs, retransmissions).
    pub tail_ns: Nanos,
}

impl ReplaySpec {
    /// A replay of `source` with the command line's defaults: speed 1, frame buffer 256, seed 0, 1 µs per
    /// hop, a 10 s tail, the role surveyed, the recorded apps.
    pub fn of(source: Source) -> ReplaySpec {
        ReplaySpec {
            source,
            as_ip: None,
            apps: Vec::new(),
            speed: Some(1.0),
            frame_buffer: 256,
            seed: 0,
            hop_cost_ns: 1000,
            tail_ns: 10_000_000_000,
        }
    }
}

pub struct ReplayResult {
    pub format: &'static str,
    pub identity: Identity,
    pub frames_read: u64,
    pub stopped: Option<String>,
    pub stats: Stats,
    pub connections: Vec<ConnectionRecord>,
    pub diffs: Vec<FlowDiff>,
    pub wire: WireReport,
    pub end_ns: Nanos,
    pub packets: u64,
    pub played_flows: usize,
    /// The capture's first timestamp (ns since the epoch): virtual time 0 of the run.
    pub base_ns: u64,
    /// The pcapng written (`--pcap-out`) and how many frames it holds.
    pub pcap: Option<(PathBuf, u64)>,
}

/// Where reading ended: records read, and why it stopped early if it did.
type StopRecord = Rc<RefCell<Option<(u64, Option<String>)>>>;

/// Passes the reader's frames on and keeps, once it ends, where and why reading stopped.
struct Tracked {
    reader: Box<dyn Records>,
    stopped: StopRecord,
}

impl Iterator for Tracked {
    type Item = CapturedFrame;

    fn next(&mut self) -> Option<CapturedFrame> {
        let next = self.reader.next();
        if next.is_none() {
            let why = self.reader.stopped().map(String::from);
            *self.stopped.borrow_mut() = Some((self.reader.records_read(), why));
        }
        next
    }
}

fn stack_config(id: &Identity, seed: u64) -> StackConfig {
    // A stack seen only over IPv6 still needs an IPv4 address: a documentation one (RFC 5737), /32, so no
    // frame of the capture can be for it.
    let (v4, prefix) = match id.ipv4 {
        Some(a) => (a, id.prefix_v4),
        None => (Ipv4Addr::new(192, 0, 2, 1), 32),
    };
    StackConfig {
        mac: id.mac,
        ipv4: (v4, prefix),
        ipv6: id.ipv6.map(|a| (a, 64)),
        random_seed: seed,
        ..StackConfig::default()
    }
}

/// The app per port: `--app PORT=SPEC` for that port, `--app SPEC` for every port, else `recorded`.
fn apps_for(ports: impl Iterator<Item = u16>, apps: &[AppSpec]) -> BTreeMap<u16, AppKind> {
    let all = apps
        .iter()
        .find(|a| a.port.is_none())
        .map(|a| a.kind.clone());
    let mut map: BTreeMap<u16, AppKind> = ports
        .map(|p| (p, all.clone().unwrap_or(AppKind::Recorded)))
        .collect();
    for a in apps {
        if let Some(p) = a.port {
            map.insert(p, a.kind.clone());
        }
    }
    map
}

pub fn header(spec: &ReplaySpec, r: &Identity, format: &str) -> Header {
    let speed = spec.speed.map_or(json!("max"), |s| json!(s));
    let apps: Vec<String> = spec.apps.iter().map(|a| a.to_string()).collect();
    Header {
        source: json!({
            "kind": "replay", "file": spec.source.name(), "capture_format": format, "speed": speed,
            "as": r.ip.to_string(), "seed": spec.seed, "apps": apps, "hop_cost_ns": spec.hop_cost_ns,
        }),
        stack: json!({
            "mac": crate::pipeline::dissect::format_mac(&r.mac),
            "ipv4": r.ipv4.map(|a| format!("{a}/{}", r.prefix_v4)),
            "ipv6": r.ipv6.map(|a| format!("{a}/64")),
            "frame_buffer": spec.frame_buffer,
            "tcp_ports": r.tcp_ports, "udp_ports": r.udp_ports,
            "smoltcp": "0.14",
        }),
    }
}

/// Survey the capture, then replay it to the end, writing the timeline export if asked.
pub fn run(spec: &ReplaySpec, export: Option<(PathBuf, Format)>) -> anyhow::Result<ReplayResult> {
    let plan = ExportPlan {
        timeline: export,
        pcap: None,
    };
    run_with(spec, &plan)
}

/// Survey the capture, then replay it to the end, writing what `plan` asks for. pcapng timestamps are the
/// capture's first timestamp plus virtual time.
/// A replay ready to run: the pipeline with the emulated wire and the recorded apps, and what the survey and
/// the wire report. Built afresh, identically, as often as asked (the TUI's step back re-runs from here).
pub struct Prepared {
    pub pipeline: Pipeline,
    pub identity: Identity,
    pub format: &'static str,
    pub survey: Survey,
    pub report: Rc<RefCell<WireReport>>,
    stopped: StopRecord,
}

/// Survey the capture and build the pipeline that replays it.
pub fn prepare(spec: &ReplaySpec) -> anyhow::Result<Prepared> {
    let mut survey = Survey::default();
    let reader = spec.source.open()?;
    let format = reader.format();
    for f in reader {
        survey.add(&f);
    }
    // A capture with no IP host at all (only ARP, only unsupported link types, or no packets) still replays:
    // the stack takes a documentation address no frame can be for, and every frame still gets its outcome.
    let ip = survey.choose(spec.as_ip).unwrap_or(NO_HOST);
    let identity = survey.identity(ip);
    if spec.as_ip.is_some() && !survey.macs.contains_key(&ip) && survey.frames > 0 {
        let seen_as_dst = identity.tcp_ports.len() + identity.udp_ports.len();
        if seen_as_dst == 0 {
            bail!(
                "--as {ip}: no frame in {} is from or to that address; pick one of the capture's hosts",
                spec.source.name()
            );
        }
    }

    let scripts: Scripts = Rc::default();
    let report = Rc::new(RefCell::new(WireReport::default()));
    let stopped = Rc::new(RefCell::new(None));
    let frames = Tracked {
        reader: spec.source.open()?,
        stopped: stopped.clone(),
    };
    let wire = ReplayWire::new(
        Box::new(frames),
        identity.clone(),
        survey.macs.clone(),
        spec.speed,
        scripts.clone(),
        report.clone(),
    );
    let config = PipelineConfig {
        stack: stack_config(&identity, spec.seed),
        frame_buffer: spec.frame_buffer,
        tcp_apps: apps_for(identity.tcp_ports.iter().copied(), &spec.apps),
        udp_apps: apps_for(identity.udp_ports.iter().copied(), &spec.apps),
    };
    let clock = Box::new(VirtualClock::new(spec.hop_cost_ns));
    let mut pipeline = Pipeline::new(config, clock, Box::new(wire));
    pipeline.set_app_source(Box::new(RecordedSource {
        scripts,
        played: BTreeMap::new(),
    }));
    Ok(Prepared {
        pipeline,
        identity,
        format,
        survey,
        report,
        stopped,
    })
}

pub fn run_with(spec: &ReplaySpec, plan: &ExportPlan) -> anyhow::Result<ReplayResult> {
    let Prepared {
        mut pipeline,
        identity,
        format,
        survey,
        report,
        stopped,
    } = prepare(spec)?;
    let base_ns = survey.first_t_ns.unwrap_or(0);
    let mut exports = Exports::open(plan, &header(spec, &identity, format), base_ns)?;
    let mut packets = 0u64;
    // The capture's span at this speed, then the tail for the stack to finish.
    let span = survey
        .first_t_ns
        .map_or(0, |first| survey.last_t_ns.saturating_sub(first));
    let played_span = match spec.speed {
        Some(s) => (span as f64 / s) as Nanos,
        None => 0,
    };
    let mut deadline = played_span.saturating_add(spec.tail_ns);
    // However long the waits for the stack, the run ends: a fixed bound, not one that moves with the deadline.
    let hard_limit = deadline.saturating_add(MAX_OVERRUN_NS);
    loop {
        let over = exports.run(&mut pipeline, deadline, DRAIN_EVERY)?;
        packets += exports.drain(&mut pipeline)?;
        if over {
            // Waits for the stack can push the capture past its recorded span: play it all before the tail.
            if !pipeline.wire().is_done() && deadline < hard_limit {
                deadline = (pipeline.now().max(deadline) + spec.tail_ns).min(hard_limit);
                continue;
            }
            break;
        }
    }
    let end_ns = pipeline.now();
    let connections = pipeline.finish();
    packets += exports.drain(&mut pipeline)?;
    let stats = pipeline.stats().clone();
    let (frames_read, why) = stopped.borrow().clone().unwrap_or((0, None));
    let wire = report.borrow().clone();
    let diffs = diff(&wire.flows);
    let extra = json!({
        "capture_frames": frames_read,
        "reading_stopped": why,
        "waits": wire.waits,
        "longest_wait_ns": wire.longest_wait_ns,
        "acks_clamped": wire.clamped,
        "synthetic_frames": wire.synthetic,
        "peer_retransmissions": wire.retransmitted,
        "diff": diffs,
    });
    let written = exports.finish(&connections, &stats, Some(&extra))?;
    let played_flows = connections
        .iter()
        .filter(|c| c.app == AppKind::Recorded.name())
        .count();
    Ok(ReplayResult {
        format,
        identity,
        frames_read,
        stopped: why,
        stats,
        connections,
        diffs,
        wire,
        end_ns,
        packets,
        played_flows,
        base_ns,
        pcap: written.pcap,
    })
}

/// The headless summary of a replay.
pub fn summary(spec: &ReplaySpec, r: &ReplayResult, export: Option<&(PathBuf, Format)>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let id = &r.identity;
    let _ = writeln!(
        s,
        "replay {} ({}, {} records{}) as {} ({}){}",
        spec.source.name(),
        r.format,
        r.frames_read,
        r.stopped
            .as_ref()
            .map_or(String::new(), |w| format!("; reading stopped early: {w}")),
        id.ip,
        crate::pipeline::dissect::format_mac(&id.mac),
        if id.ip == NO_HOST && spec.as_ip.is_none() {
            ": the capture names no IP host, so the stack takes a documentation address"
        } else {
            ""
        },
    );
    crate::headless::stats_summary(&mut s, &r.stats, r.end_ns, r.packets);
    let _ = writeln!(
        s,
        "replay: {} recorded flows played; {} frames waited for the stack (longest {} µs), {} acknowledged only what it had sent; {} synthetic frames (ARP/ND, owed acks, {} retransmissions by the peer)",
        r.played_flows,
        r.wire.waits,
        r.wire.longest_wait_ns / 1000,
        r.wire.clamped,
        r.wire.synthetic,
        r.wire.retransmitted,
    );
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
    if let Some((path, format)) = export {
        let _ = writeln!(
            s,
            "export: {} ({:?}, {} packets)",
            path.display(),
            format,
            r.packets
        );
    }
    crate::headless::pcap_line(&mut s, r.pcap.as_ref());
    s
}

/// Is this path readable as a capture at all? (For the CLI's early, one-line error.)
pub fn check_readable(path: &Path) -> anyhow::Result<()> {
    CaptureReader::open(path)
        .map(|_| ())
        .with_context(|| path.display().to_string())
}
