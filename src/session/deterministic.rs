//! Sim and replay runs: built afresh from their spec (`Built::open`), run to their end headless or moved one
//! debugger move at a time, and finished the same way whoever ran them — connections closed, the export
//! written with its header (and, for a replay, its `replay` object: the diff and what the wire did).
//! Headless runs, the TUI's step back and the TUI's `e` export all go through here.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::debug::debugger::{Debugger, move_once};
use crate::debug::driver::Moved;
use crate::debug::snapshot::Mode;
use crate::export::{ExportPlan, Exports, Header, Written};
use crate::pipeline::clock::Nanos;
use crate::pipeline::trace::{ConnectionRecord, Stats};
use crate::pipeline::{AppKind, Pipeline};
use crate::replay::diff::{FlowDiff, diff};
use crate::replay::flows::{NotPlayed, Tally, linktype_name, not_played};
use crate::replay::role::Identity;
use crate::replay::wire::WireReport;
use crate::replay::{Prepared, ReplaySpec};
use crate::sim::{SimReport, SimSpec};

use super::header;
use super::watch::{Keep, Progress, Unwatched, Watch};

/// Steps between two drains of finished packets into the export.
const DRAIN_EVERY: u64 = 4096;
/// How far past the played span and tail a replay may go while the wire still holds frames waiting for the
/// stack.
const MAX_OVERRUN_NS: Nanos = 600_000_000_000;

/// A deterministic run, as the command line asked for it.
#[derive(Debug, Clone)]
pub enum Spec {
    Sim(SimSpec),
    Replay(ReplaySpec),
}

/// The run's source: its spec, and what it keeps beside the pipeline to report at the end.
enum SourceState {
    Sim {
        spec: SimSpec,
        report: Rc<RefCell<SimReport>>,
    },
    Replay {
        spec: ReplaySpec,
        prepared: Box<Prepared>,
    },
}

/// A run built afresh from its spec: the pipeline, the export header, pcapng's base time, and the source's
/// own state.
struct Built {
    pipeline: Pipeline,
    header: Header,
    /// pcapng timestamps are this (ns since the epoch) plus virtual time: a replay's capture start, else 0.
    pcap_base_ns: u64,
    source: SourceState,
}

/// How a run finished, whoever ran it.
struct Finished {
    stats: Stats,
    connections: Vec<ConnectionRecord>,
    end_ns: Nanos,
    written: Written,
    source: SourceState,
    /// A replay's `replay` object, as written in the export.
    replay: Option<ReplayEnd>,
    /// A watcher stopped the run before its end.
    interrupted: bool,
    /// What stopped it, as the watcher names it.
    interrupted_by: Option<&'static str>,
}

/// What the end of a replay says beyond the pipeline's counters.
struct ReplayEnd {
    frames_read: u64,
    stopped: Option<String>,
    wire: WireReport,
    diffs: Vec<FlowDiff>,
    /// The capture's flows the apps read and wrote nothing for, and why.
    not_played: Vec<NotPlayed>,
}

impl Built {
    fn open(spec: &Spec) -> anyhow::Result<Built> {
        Ok(match spec {
            Spec::Sim(s) => {
                let run = crate::sim::build(s);
                Built {
                    pipeline: run.pipeline,
                    header: header::sim(s, &s.pipeline_config()),
                    pcap_base_ns: 0,
                    source: SourceState::Sim {
                        spec: s.clone(),
                        report: run.report,
                    },
                }
            }
            Spec::Replay(r) => {
                let (pipeline, prepared) = crate::replay::prepare(r)?;
                Built {
                    pipeline,
                    header: header::replay(r, &prepared),
                    pcap_base_ns: prepared.base_ns(),
                    source: SourceState::Replay {
                        spec: r.clone(),
                        prepared: Box::new(prepared),
                    },
                }
            }
        })
    }

    fn exports(&self, plan: &ExportPlan) -> anyhow::Result<Exports> {
        Ok(Exports::open(plan, &self.header, self.pcap_base_ns)?)
    }

    /// Run to the end, streaming finished packets to `exports`; returns how many there were. A simulation
    /// stops at its `max_time`; a replay once the capture is played and the tail has passed — later if the
    /// stack kept frames waiting, but never more than `MAX_OVERRUN_NS` past.
    /// `watch` sees every batch and may stop the run early: the return then says it was stopped.
    fn run_to_end(
        &mut self,
        exports: &mut Exports,
        watch: &mut dyn Watch,
    ) -> anyhow::Result<(u64, bool)> {
        let (mut deadline, tail) = match &self.source {
            SourceState::Sim { spec, .. } => (spec.max_time_ns, None),
            SourceState::Replay { spec: r, prepared } => {
                // The capture's span at this speed, then the tail for the stack to finish.
                let played_span = match r.speed {
                    Some(s) => (prepared.span_ns() as f64 / s) as Nanos,
                    None => 0,
                };
                (played_span.saturating_add(r.tail_ns), Some(r.tail_ns))
            }
        };
        // However long the waits for the stack, the run ends: a fixed bound, not one that moves with the
        // deadline.
        let hard_limit = deadline.saturating_add(MAX_OVERRUN_NS);
        let mut packets = 0u64;
        loop {
            let over = exports.run(&mut self.pipeline, deadline, DRAIN_EVERY)?;
            packets += exports.drain(&mut self.pipeline)?;
            if watch.batch(&self.progress(packets)) == Keep::Stop {
                return Ok((packets, true));
            }
            if !over {
                continue;
            }
            // Waits for the stack can push the capture past its recorded span: play it all before the tail.
            match tail {
                Some(tail) if !self.pipeline.wire().is_done() && deadline < hard_limit => {
                    deadline = (self.pipeline.now().max(deadline) + tail).min(hard_limit);
                }
                _ => return Ok((packets, false)),
            }
        }
    }

    fn progress(&self, packets: u64) -> Progress {
        let mut progress = Progress {
            now_ns: self.pipeline.now(),
            frames_in: self.pipeline.stats().frames_in,
            packets,
            ..Progress::default()
        };
        match &self.source {
            SourceState::Replay { prepared, .. } => {
                progress.records_read = Some(prepared.reading().0);
                progress.bytes_read = Some(prepared.bytes_read());
                progress.capture_size = prepared.size;
            }
            SourceState::Sim { spec, .. } => progress.max_time_ns = Some(spec.max_time_ns),
        }
        progress
    }

    /// Make `moves` debugger moves (as `Debugger::step` does), streaming finished packets to `exports`.
    fn run_moves(&mut self, exports: &mut Exports, moves: u64) -> anyhow::Result<u64> {
        let mut packets = 0;
        for made in 0..moves {
            let at = self.pipeline.now();
            match move_once(&mut self.pipeline) {
                Moved::Stepped(_) => exports.after_step(&self.pipeline, at)?,
                Moved::Waited { .. } | Moved::Pending => {}
                Moved::Ended => break,
            }
            if made % DRAIN_EVERY == 0 {
                packets += exports.drain(&mut self.pipeline)?;
            }
        }
        Ok(packets)
    }

    /// End the run where it stands: packets still on their way end `in_flight`, connections are recorded,
    /// and the export is closed with the source's own end (a replay's `replay` object).
    fn finish(mut self, mut exports: Exports) -> anyhow::Result<(Finished, u64)> {
        let end_ns = self.pipeline.now();
        let connections = self.pipeline.finish();
        let packets = exports.drain(&mut self.pipeline)?;
        let stats = self.pipeline.stats().clone();
        let replay = match &self.source {
            SourceState::Replay { prepared, .. } => {
                let (frames_read, stopped) = prepared.reading();
                let wire = prepared.report.borrow().clone();
                let diffs = diff(&wire.flows);
                let not_played = not_played(&wire.seen, &prepared.identity, &connections);
                Some(ReplayEnd {
                    frames_read,
                    stopped,
                    wire,
                    diffs,
                    not_played,
                })
            }
            SourceState::Sim { .. } => None,
        };
        let extra = replay.as_ref().map(|r| {
            json!({
                "capture_frames": r.frames_read,
                "reading_stopped": r.stopped,
                "waits": r.wire.waits,
                "longest_wait_ns": r.wire.longest_wait_ns,
                "acks_clamped": r.wire.clamped,
                "synthetic_frames": r.wire.synthetic,
                "peer_retransmissions": r.wire.retransmitted,
                "repairs": json!({
                    "joined_flows": r.wire.joined,
                    "holes": r.wire.holes,
                    "filler_bytes_peer": r.wire.filler_peer,
                    "filler_bytes_app": r.wire.filler_app,
                    "unproven_bytes": r.wire.unproven,
                    "checksums_fixed": r.wire.checksums_fixed,
                    "checksums_kept": r.wire.checksums_kept,
                    "merged_segments": r.wire.merged,
                    "merged_pieces": r.wire.merged_pieces,
                    "gaps_shortened": r.wire.gaps_shortened,
                    "gap_time_removed_ns": r.wire.gap_time_removed_ns,
                }),
                "diff": r.diffs,
                "flows_not_played": r.not_played,
                "records_not_played": unreadable_json(&r.wire.seen),
            })
        });
        let written = exports.finish(&connections, &stats, extra.as_ref())?;
        Ok((
            Finished {
                stats,
                connections,
                end_ns,
                written,
                source: self.source,
                replay,
                interrupted: false,
                interrupted_by: None,
            },
            packets,
        ))
    }
}

/// The export's account of the records no link type could be made Ethernet: per link type, how many and
/// the first one's problem.
fn unreadable_json(seen: &Tally) -> serde_json::Value {
    let all: Vec<serde_json::Value> = seen
        .unreadable
        .iter()
        .map(|(linktype, u)| {
            json!({
                "linktype": linktype,
                "name": linktype_name(*linktype),
                "records": u.records,
                "first_problem": u.first_problem,
            })
        })
        .collect();
    serde_json::Value::Array(all)
}

/// A headless simulated run.
pub struct SimResult {
    pub stats: Stats,
    pub connections: Vec<ConnectionRecord>,
    pub report: SimReport,
    pub end_ns: u64,
    pub packets: u64,
    /// The pcapng written (`--pcap-out`) and how many frames it holds.
    pub pcap: Option<(PathBuf, u64)>,
    /// A watcher stopped the run before its end (a signal): what ran is finished and written.
    pub interrupted: bool,
    /// With `--filter`: the packets the exports got (`packets` counts every one traced).
    pub filtered: Option<u64>,
    /// How long the run took on the wall clock, from building it to its export closed.
    pub wall: Duration,
    /// What stopped it ("SIGINT"), if the watcher said.
    pub interrupted_by: Option<&'static str>,
}

/// A headless replay.
pub struct ReplayResult {
    pub format: &'static str,
    pub identity: Identity,
    pub frames_read: u64,
    pub stopped: Option<String>,
    pub stats: Stats,
    pub connections: Vec<ConnectionRecord>,
    pub diffs: Vec<FlowDiff>,
    pub wire: WireReport,
    /// The capture's flows the apps read and wrote nothing for, and why.
    pub not_played: Vec<NotPlayed>,
    pub end_ns: Nanos,
    pub packets: u64,
    pub played_flows: usize,
    /// The app serving each port: `80=recorded` for TCP, `53/udp=recorded` for UDP.
    pub apps: Vec<String>,
    /// The capture's first timestamp (ns since the epoch): virtual time 0 of the run.
    pub base_ns: u64,
    /// The pcapng written (`--pcap-out`) and how many frames it holds.
    pub pcap: Option<(PathBuf, u64)>,
    /// A watcher stopped the run before its end (a signal): what ran is finished and written.
    pub interrupted: bool,
    /// With `--filter`: the packets the exports got (`packets` counts every one traced).
    pub filtered: Option<u64>,
    /// How long the run took on the wall clock, from building it to its export closed.
    pub wall: Duration,
    /// What stopped it ("SIGINT"), if the watcher said.
    pub interrupted_by: Option<&'static str>,
}

/// Build, run to the end and finish a deterministic run, writing what `plan` asks for. Also returns the
/// wall time it took (the core has no wall clock: it is measured here, around it).
fn run_headless(
    spec: &Spec,
    plan: &ExportPlan,
    watch: &mut dyn Watch,
) -> anyhow::Result<(Finished, u64, Duration)> {
    let started = Instant::now();
    let mut built = Built::open(spec)?;
    let mut exports = built.exports(plan)?;
    let (packets, stopped) = built.run_to_end(&mut exports, watch)?;
    let (mut finished, last) = built.finish(exports)?;
    finished.interrupted = stopped;
    finished.interrupted_by = watch.stopped_by().filter(|_| stopped);
    Ok((finished, packets + last, started.elapsed()))
}

/// Run a simulation to its end, writing what `plan` asks for (pcapng timestamps start at 0).
pub fn run_sim(spec: &SimSpec, plan: &ExportPlan) -> anyhow::Result<SimResult> {
    run_sim_watched(spec, plan, &mut Unwatched)
}

/// `run_sim`, with `watch` told of every batch (and able to stop the run).
pub fn run_sim_watched(
    spec: &SimSpec,
    plan: &ExportPlan,
    watch: &mut dyn Watch,
) -> anyhow::Result<SimResult> {
    let (f, packets, wall) = run_headless(&Spec::Sim(spec.clone()), plan, watch)?;
    let SourceState::Sim { report, .. } = &f.source else {
        unreachable!("a simulation's source is the simulated peer")
    };
    let report = report.borrow().clone();
    Ok(SimResult {
        stats: f.stats,
        connections: f.connections,
        report,
        end_ns: f.end_ns,
        packets,
        pcap: f.written.pcap,
        interrupted: f.interrupted,
        filtered: f.written.filtered,
        wall,
        interrupted_by: f.interrupted_by,
    })
}

/// Survey the capture, then replay it to the end, writing what `plan` asks for. pcapng timestamps are the
/// capture's first timestamp plus virtual time.
pub fn run_replay(spec: &ReplaySpec, plan: &ExportPlan) -> anyhow::Result<ReplayResult> {
    run_replay_watched(spec, plan, &mut Unwatched)
}

/// `run_replay`, with `watch` told of every batch (and able to stop the run).
pub fn run_replay_watched(
    spec: &ReplaySpec,
    plan: &ExportPlan,
    watch: &mut dyn Watch,
) -> anyhow::Result<ReplayResult> {
    let (f, packets, wall) = run_headless(&Spec::Replay(spec.clone()), plan, watch)?;
    let (SourceState::Replay { prepared, .. }, Some(end)) = (f.source, f.replay) else {
        unreachable!("a replay's source is the capture")
    };
    let played_flows = f
        .connections
        .iter()
        .filter(|c| c.app == AppKind::Recorded.name())
        .count();
    let config = &prepared.config;
    let apps = (config.tcp_apps.iter().map(|(p, k)| format!("{p}={k}")))
        .chain(config.udp_apps.iter().map(|(p, k)| format!("{p}/udp={k}")))
        .collect();
    Ok(ReplayResult {
        apps,
        format: prepared.format,
        base_ns: prepared.base_ns(),
        identity: prepared.identity,
        frames_read: end.frames_read,
        stopped: end.stopped,
        stats: f.stats,
        connections: f.connections,
        diffs: end.diffs,
        wire: end.wire,
        not_played: end.not_played,
        end_ns: f.end_ns,
        packets,
        played_flows,
        pcap: f.written.pcap,
        interrupted: f.interrupted,
        filtered: f.written.filtered,
        wall,
        interrupted_by: f.interrupted_by,
    })
}

/// Write the run of `spec` as it stands after `moves` debugger moves to the files of `plan`, its header
/// marked as the TUI's: the run is made afresh and moved exactly as far; packets still on their way end
/// `in_flight`. Returns how many packets were written and what the writers wrote.
pub fn export_after_moves(
    spec: &Spec,
    plan: &ExportPlan,
    moves: u64,
) -> anyhow::Result<(u64, Written)> {
    let mut built = Built::open(spec)?;
    built.header.exported_from_tui(moves);
    let mut exports = built.exports(plan)?;
    let packets = built.run_moves(&mut exports, moves)?;
    let (finished, last) = built.finish(exports)?;
    Ok((packets + last, finished.written))
}

/// The debugger over a deterministic run, for a front end: it rebuilds the run from `spec` for every step
/// back, and `e` writes it through `export_after_moves`. The run is built once here, so a bad capture is an
/// error now rather than at the first step back. Also returns how the screen names the run and its pace.
pub fn debugger(spec: &Spec) -> anyhow::Result<(Debugger, Mode, Option<f64>)> {
    let first = Built::open(spec)?;
    let (mode, speed) = match spec {
        Spec::Sim(_) => (Mode::Sim, Some(1.0)),
        Spec::Replay(r) => (
            Mode::Replay {
                file: r.source.name(),
            },
            r.speed,
        ),
    };
    let mut first = Some(first.pipeline);
    let build_spec = spec.clone();
    let rebuild = move || match first.take() {
        Some(pipeline) => pipeline,
        None => {
            Built::open(&build_spec)
                .expect("the run was built once already from the same spec")
                .pipeline
        }
    };
    let export_spec = spec.clone();
    let export = move |plan: &ExportPlan, moves: u64| {
        export_after_moves(&export_spec, plan, moves).map_err(|e| format!("{e:#}"))
    };
    let debugger = Debugger::new(Box::new(rebuild)).with_export(Box::new(export));
    Ok((debugger, mode, speed))
}
