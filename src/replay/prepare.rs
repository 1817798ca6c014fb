//! A replay ready to run: the capture surveyed (who the stack is), the pipeline built with the replay wire
//! and the recorded apps. Built afresh, identically, as often as asked: the session runs it headless, and the
//! debugger's step back rebuilds it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::pipeline::apps::{PortRule, app_map};
use crate::pipeline::clock::{Nanos, VirtualClock};
use crate::pipeline::stack::StackConfig;
use crate::pipeline::{AppKind, AppSpec, Pipeline, PipelineConfig};

use super::capture::{CaptureReader, CapturedFrame};
use super::flows::Tally;
use super::input::{STDIN, Spool, SpoolError, reads_once};
use super::recorded_app::RecordedSource;
use super::role::{Identity, Survey};
use super::script::Scripts;
use super::wire::{ReplayWire, WireReport};

/// The stack's address when the capture names no IP host (RFC 5737 TEST-NET-1).
pub const NO_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// Where the frames come from: a file, bytes built into the binary (the demo), frames already in memory
/// (a capture of a simulated run's wire), or an input that reads only once (stdin, a FIFO) copied aside.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Made by `Source::rereadable`; `name` is the input as given (`-` for stdin).
    Spooled {
        name: String,
        spool: Spool,
    },
    Bytes {
        name: String,
        bytes: &'static [u8],
    },
    /// A capture's bytes held in memory and owned (a fuzz target's input): read like a file, with no file.
    Memory {
        name: String,
        bytes: Arc<[u8]>,
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
    /// Bytes of the capture read so far (0 for frames held in memory).
    fn bytes_read(&self) -> u64;
    fn format(&self) -> &'static str;
}

impl Records for CaptureReader {
    fn stopped(&self) -> Option<&str> {
        CaptureReader::stopped(self)
    }
    fn records_read(&self) -> u64 {
        CaptureReader::records_read(self)
    }
    fn bytes_read(&self) -> u64 {
        CaptureReader::bytes_read(self)
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
    fn bytes_read(&self) -> u64 {
        0
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
            Source::Bytes { name, .. }
            | Source::Frames { name, .. }
            | Source::Memory { name, .. }
            | Source::Spooled { name, .. } => name.clone(),
        }
    }

    /// The source with an input that reads only once — `-` (stdin), a FIFO, a character device — copied
    /// into a temporary file, so the survey and the replay (and the TUI's step back) can each read it from
    /// its start. Any other source is returned as it is.
    pub fn rereadable(self) -> Result<Source, SpoolError> {
        match self {
            Source::File(p) if p.as_os_str() == STDIN => Ok(Source::Spooled {
                name: STDIN.into(),
                spool: Spool::stdin()?,
            }),
            Source::File(p) if reads_once(&p) => Ok(Source::Spooled {
                name: p.display().to_string(),
                spool: Spool::path(&p)?,
            }),
            other => Ok(other),
        }
    }

    /// The capture's size in bytes, when it has one (frames held in memory have none).
    pub fn size(&self) -> Option<u64> {
        match self {
            Source::File(p) => std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            Source::Spooled { spool, .. } => Some(spool.size()),
            Source::Bytes { bytes, .. } => Some(bytes.len() as u64),
            Source::Memory { bytes, .. } => Some(bytes.len() as u64),
            Source::Frames { .. } => None,
        }
    }

    fn open(&self) -> anyhow::Result<Box<dyn Records>> {
        let reader = match self {
            Source::File(p) => CaptureReader::open(p),
            Source::Bytes { bytes, .. } => CaptureReader::from_bytes(bytes.to_vec()),
            Source::Memory { bytes, .. } => CaptureReader::from_bytes(bytes.to_vec()),
            Source::Spooled { spool, .. } => CaptureReader::from_reader(spool.reader()),
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
    /// Inject checksums that look offloaded as recorded, instead of completing them (`--keep-checksums`).
    pub keep_checksums: bool,
    /// Idle gaps longer than this are shortened to it (`--max-gap`).
    pub max_gap_ns: Nanos,
}

impl ReplaySpec {
    /// A replay of `source` with the command line's defaults: speed 1, frame buffer 256, seed 0, 1 µs per
    /// hop, a 10 s tail, gaps over 10 s shortened, the role surveyed, the recorded apps.
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
            keep_checksums: false,
            max_gap_ns: crate::replay::gaps::DEFAULT_MAX_GAP_NS,
        }
    }
}

/// How far reading has got: records and bytes read so far, and, once it has ended, why it stopped early if
/// it did.
#[derive(Debug, Default)]
struct Reading {
    records: u64,
    bytes: u64,
    stopped: Option<String>,
}

type StopRecord = Rc<RefCell<Reading>>;

/// Passes the reader's frames on, keeping count of the records read and, once it ends, why it stopped.
struct Tracked {
    reader: Box<dyn Records>,
    stopped: StopRecord,
}

impl Iterator for Tracked {
    type Item = CapturedFrame;

    fn next(&mut self) -> Option<CapturedFrame> {
        let next = self.reader.next();
        let why = match next {
            Some(_) => None,
            None => self.reader.stopped().map(String::from),
        };
        *self.stopped.borrow_mut() = Reading {
            records: self.reader.records_read(),
            bytes: self.reader.bytes_read(),
            stopped: why,
        };
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
        ipv6: id.ipv6.map(|a| (a, id.prefix_v6)),
        random_seed: seed,
        ..StackConfig::default()
    }
}

/// The app per port: `--app PORT=SPEC` for that port, `--app SPEC` for every port the host served, else
/// `recorded`.
fn apps_for(ports: impl Iterator<Item = u16>, apps: &[AppSpec]) -> BTreeMap<u16, AppKind> {
    // Every app has a port under this rule: nothing to refuse.
    app_map(apps, &PortRule::Served(ports.collect())).unwrap_or_default()
}

/// What a replay's pipeline was built from and what its wire reports as it plays: the survey, the host the
/// stack plays, and where reading the capture stopped.
pub struct Prepared {
    /// What the pipeline was built with (the export header describes the stack from it).
    pub config: PipelineConfig,
    pub identity: Identity,
    pub format: &'static str,
    pub survey: Survey,
    pub report: Rc<RefCell<WireReport>>,
    /// The capture's size in bytes, if it has one.
    pub size: Option<u64>,
    stopped: StopRecord,
}

impl Prepared {
    /// The capture's first timestamp (ns since the epoch): virtual time 0 of the run.
    pub fn base_ns(&self) -> u64 {
        self.survey.first_t_ns.unwrap_or(0)
    }

    /// The capture's span from its first to its last frame, as played (idle gaps over `--max-gap` shortened).
    pub fn span_ns(&self) -> Nanos {
        self.survey.played_span_ns
    }

    /// Records the wire has read so far (it reads ahead of the stack) and, once reading has ended, why it
    /// stopped early if it did.
    pub fn reading(&self) -> (u64, Option<String>) {
        let r = self.stopped.borrow();
        (r.records, r.stopped.clone())
    }

    /// Bytes of the capture the wire has read so far.
    pub fn bytes_read(&self) -> u64 {
        self.stopped.borrow().bytes
    }
}

/// Survey the capture and build the pipeline that replays it (with the emulated wire and the recorded apps).
/// Built afresh, identically, as often as asked: the debugger's step back re-runs from here.
pub fn prepare(spec: &ReplaySpec) -> anyhow::Result<(Pipeline, Prepared)> {
    let mut survey = Survey::with_max_gap(spec.max_gap_ns);
    let mut seen = Tally::default();
    let reader = spec.source.open()?;
    let format = reader.format();
    for f in reader {
        survey.add(&f);
        seen.add(&f);
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
    let report = Rc::new(RefCell::new(WireReport {
        seen,
        max_gap_ns: spec.max_gap_ns,
        ..WireReport::default()
    }));
    let stopped = StopRecord::default();
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
        spec.max_gap_ns,
    )
    .with_keep_checksums(spec.keep_checksums);
    let config = PipelineConfig::serving(
        stack_config(&identity, spec.seed),
        spec.frame_buffer,
        apps_for(identity.tcp_ports.iter().copied(), &spec.apps),
    )
    .with_udp_apps(apps_for(identity.udp_ports.iter().copied(), &spec.apps));
    let clock = Box::new(VirtualClock::new(spec.hop_cost_ns));
    let mut pipeline = Pipeline::new(config.clone(), clock, Box::new(wire));
    pipeline.set_app_source(Box::new(RecordedSource {
        scripts,
        played: BTreeMap::new(),
    }));
    let prepared = Prepared {
        config,
        identity,
        format,
        survey,
        report,
        size: spec.source.size(),
        stopped,
    };
    Ok((pipeline, prepared))
}

/// Is this path readable as a capture at all? (For the CLI's early, one-line error.)
pub fn check_readable(path: &Path) -> anyhow::Result<()> {
    CaptureReader::open(path)
        .map(|_| ())
        .with_context(|| path.display().to_string())
}
