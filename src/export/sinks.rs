//! Everything one run writes, fed from the pipeline as it goes: the timeline (`--export`, in any `Format`) and
//! the annotated pcapng (`--pcap-out`). The `sim` and `replay` run loops share it: `run` steps the pipeline
//! (sampling buffer levels after every step when the timeline wants them), `drain` hands finished packets to
//! both writers and lets the pcapng writer settle up to the oldest wire time still in flight, `finish` closes
//! both files. A plan's `PacketFilter` (`--filter`) chooses which finished packets reach the writers; buffer
//! levels, connections and stats are written whole. `ExportPlan::check` is what the command line asks of the
//! outputs before a run starts.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::header::{Header, SourceKind};
use super::pcapng::PcapngWriter;
use super::target;
use super::timeline::TimelineWriter;
use super::writer::{self, Format};
use crate::pipeline::Pipeline;
use crate::pipeline::clock::Nanos;
use crate::pipeline::trace::{ConnectionRecord, PacketRecord, Stats};

/// What a run is asked to write.
#[derive(Debug, Clone, Default)]
pub struct ExportPlan {
    pub timeline: Option<(PathBuf, Format)>,
    pub pcap: Option<PathBuf>,
    /// Only the packets it keeps are written; none: every packet.
    pub filter: Option<PacketFilter>,
}

/// Which finished packets the writers get: a test on each, named by the expression it was made from (the
/// export's header records it). The test is the caller's — the export layer knows no filter language — and
/// `Send`, because a live run writes on a thread of its own.
#[derive(Clone)]
pub struct PacketFilter {
    expr: String,
    keep: Arc<dyn Fn(&PacketRecord) -> bool + Send + Sync>,
}

impl PacketFilter {
    pub fn new(
        expr: impl Into<String>,
        keep: impl Fn(&PacketRecord) -> bool + Send + Sync + 'static,
    ) -> PacketFilter {
        PacketFilter {
            expr: expr.into(),
            keep: Arc::new(keep),
        }
    }

    /// The expression, as the header records it.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn keeps(&self, p: &PacketRecord) -> bool {
        (self.keep)(p)
    }
}

impl std::fmt::Debug for PacketFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PacketFilter").field(&self.expr).finish()
    }
}

/// The OS error is the `source` only, not in the message too: `{:#}` prints the chain, and says it once.
#[derive(Debug, thiserror::Error)]
#[error("cannot write export {}", path.display())]
pub struct ExportError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at_path(path: &std::path::Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError {
        path: path.to_path_buf(),
        source,
    }
}

/// The time up to which every frame that will reach the wire has: the oldest wire time still in flight, or now.
pub fn settled_time(pipeline: &Pipeline) -> Nanos {
    pipeline
        .earliest_wire_in_flight()
        .map_or(pipeline.now(), |t| t.min(pipeline.now()))
}

/// The pipeline's buffer levels after a step at `t`, to a writer that wants them.
fn sample(w: &mut dyn TimelineWriter, pipeline: &Pipeline, t: Nanos) -> io::Result<()> {
    let conns: Vec<(u64, usize, usize)> = pipeline.conn_buffer_levels().collect();
    w.occupancy(t, pipeline.frame_buffer_depth(), &conns)
}

pub struct Exports {
    timeline: Option<(PathBuf, Box<dyn TimelineWriter>)>,
    pcap: Option<(PathBuf, PcapngWriter)>,
    filter: Option<PacketFilter>,
    /// Packets the filter kept so far.
    kept: u64,
}

/// What the writers wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The pcapng file and how many frames it holds.
    pub pcap: Option<(PathBuf, u64)>,
    /// With a filter: how many packets it kept, and so the writers got.
    pub filtered: Option<u64>,
}

impl ExportPlan {
    /// Only a timeline, at `path` in `format`.
    pub fn timeline(path: PathBuf, format: Format) -> ExportPlan {
        ExportPlan {
            timeline: Some((path, format)),
            pcap: None,
            filter: None,
        }
    }

    fn outputs(&self) -> Vec<(&'static str, &Path)> {
        let timeline = self
            .timeline
            .as_ref()
            .map(|(p, _)| ("--export", p.as_path()));
        let pcap = self.pcap.as_deref().map(|p| ("--pcap-out", p));
        timeline.into_iter().chain(pcap).collect()
    }

    /// Before a run: refuse (one line naming the path and what to do) two outputs on one file, an output
    /// that is one of `inputs` (the capture being replayed), a symlink to nothing, and a binary pcapng to a
    /// terminal on stdout.
    pub fn check(&self, inputs: &[&Path]) -> Result<(), String> {
        target::check_outputs(&self.outputs(), inputs)?;
        match &self.pcap {
            Some(p) if target::is_terminal_stdout(p) => Err(format!(
                "--pcap-out {}: stdout is a terminal; redirect it or give a file",
                p.display()
            )),
            _ => Ok(()),
        }
    }

    /// Does an output go to stdout (`-`, or the file stdout is)? Then the summary goes to stderr.
    pub fn writes_stdout(&self) -> bool {
        self.outputs().iter().any(|(_, p)| target::is_stdout(p))
    }
}

impl Exports {
    /// Open the files of `plan`; pcapng timestamps are `pcap_base_ns` + virtual time.
    pub fn open(
        plan: &ExportPlan,
        header: &Header,
        pcap_base_ns: u64,
    ) -> Result<Self, ExportError> {
        // A filtered export says so in its header: its packets are not all the stats count.
        let mut filtered;
        let header = match &plan.filter {
            Some(f) => {
                filtered = header.clone();
                filtered.source.filter = Some(f.expr().to_string());
                &filtered
            }
            None => header,
        };
        let timeline = match &plan.timeline {
            Some((path, format)) => Some((
                path.clone(),
                writer::create(path, *format, header).map_err(at_path(path))?,
            )),
            None => None,
        };
        // A replay's recorded frames of the stack go on an interface of their own.
        let recorded = matches!(header.source.kind, SourceKind::Replay { .. });
        let pcap = match &plan.pcap {
            Some(path) => Some((
                path.clone(),
                PcapngWriter::create(path, pcap_base_ns, recorded).map_err(at_path(path))?,
            )),
            None => None,
        };
        Ok(Exports {
            timeline,
            pcap,
            filter: plan.filter.clone(),
            kept: 0,
        })
    }

    /// `Pipeline::run_until`, with the timeline sampling buffer levels after each step if it wants them.
    pub fn run(
        &mut self,
        pipeline: &mut Pipeline,
        deadline: Nanos,
        max_steps: u64,
    ) -> Result<bool, ExportError> {
        let Some((path, w)) = self.timeline.as_mut().filter(|(_, w)| w.wants_occupancy()) else {
            return Ok(pipeline.run_until(deadline, max_steps));
        };
        let mut failed = None;
        let over = pipeline.run_until_with(deadline, max_steps, |p, t| {
            if failed.is_none()
                && let Err(e) = sample(w.as_mut(), p, t)
            {
                failed = Some(e);
            }
        });
        match failed {
            Some(e) => Err(at_path(path)(e)),
            None => Ok(over),
        }
    }

    /// Sample buffer levels after one step made at `at`, if the timeline wants them (for callers that step
    /// the pipeline themselves instead of calling `run`).
    pub fn after_step(&mut self, pipeline: &Pipeline, at: Nanos) -> Result<(), ExportError> {
        match self.timeline.as_mut().filter(|(_, w)| w.wants_occupancy()) {
            Some((path, w)) => sample(w.as_mut(), pipeline, at).map_err(at_path(path)),
            None => Ok(()),
        }
    }

    /// Hand every finished packet to the writers; returns how many there were.
    pub fn drain(&mut self, pipeline: &mut Pipeline) -> Result<u64, ExportError> {
        let mut n = 0;
        for p in pipeline.drain_finished() {
            n += 1;
            self.packet(&p)?;
        }
        self.settle(settled_time(pipeline))?;
        Ok(n)
    }

    /// Write one finished packet, if the filter keeps it. Its frame, if it crossed the wire, waits in the
    /// pcapng writer's reorder window as any other: leaving a packet out never moves another, so the file
    /// stays in wire order.
    pub fn packet(&mut self, p: &PacketRecord) -> Result<(), ExportError> {
        if self.filter.as_ref().is_some_and(|f| !f.keeps(p)) {
            return Ok(());
        }
        self.kept += 1;
        if let Some((path, w)) = self.timeline.as_mut() {
            w.packet(p).map_err(at_path(path))?;
        }
        if let Some((path, w)) = self.pcap.as_mut() {
            w.packet(p).map_err(at_path(path))?;
        }
        Ok(())
    }

    /// No frame still to come reached the wire before `t`: the pcapng writer may write out what it holds
    /// up to then (it keeps the file in wire order).
    pub fn settle(&mut self, t: Nanos) -> Result<(), ExportError> {
        match self.pcap.as_mut() {
            Some((path, w)) => w.settle(t).map_err(at_path(path)),
            None => Ok(()),
        }
    }

    /// Buffer levels sampled elsewhere (a live run's stack thread), to a timeline that wants them.
    pub fn occupancy(
        &mut self,
        t: Nanos,
        frame_buffer: (usize, usize),
        conns: &[(u64, usize, usize)],
    ) -> Result<(), ExportError> {
        match self.timeline.as_mut().filter(|(_, w)| w.wants_occupancy()) {
            Some((path, w)) => w.occupancy(t, frame_buffer, conns).map_err(at_path(path)),
            None => Ok(()),
        }
    }

    /// Does the timeline want buffer levels after every step?
    pub fn wants_occupancy(&self) -> bool {
        self.timeline
            .as_ref()
            .is_some_and(|(_, w)| w.wants_occupancy())
    }

    /// Is anything being written at all?
    pub fn writes_anything(&self) -> bool {
        self.timeline.is_some() || self.pcap.is_some()
    }

    /// Is a pcapng being written (and so wants `settle`)?
    pub fn writes_pcap(&self) -> bool {
        self.pcap.is_some()
    }

    pub fn finish(
        self,
        conns: &[ConnectionRecord],
        stats: &Stats,
        extra: Option<&serde_json::Value>,
    ) -> Result<Written, ExportError> {
        if let Some((path, w)) = self.timeline {
            w.finish(conns, stats, extra).map_err(at_path(&path))?;
        }
        let mut written = Written {
            pcap: None,
            filtered: self.filter.is_some().then_some(self.kept),
        };
        if let Some((path, w)) = self.pcap {
            let frames = w.finish().map_err(at_path(&path))?;
            written.pcap = Some((path, frames));
        }
        Ok(written)
    }
}
