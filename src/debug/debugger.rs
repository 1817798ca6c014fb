//! The debugger behind the TUI's keys: step one hop, finish the selected packet's path, continue to a
//! breakpoint, and step back — by re-running the deterministic run from the start to the step before, since a
//! run is a pure function of its inputs. It drives a real `Pipeline` one engine step at a time.

use std::collections::{BTreeMap, VecDeque};

use crate::pipeline::Pipeline;
use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::{Step, StepReport};

use crate::pipeline::ids::PacketId;
use crate::pipeline::trace::PacketRecord;

pub use super::breakpoints::{Breakpoint, Checker, Hit};
use super::driver::{Advanced, Driver, Moved};
use super::filter::Filter;
use super::history::History;
use super::snapshot::{MAX_IN_FLIGHT_ROWS, Snapshot};
use crate::export::sinks::{ExportPlan, Written};

/// Finished packets whose whole record (hops, log, frame) the debugger keeps for the detail pane and
/// breakpoints; older ones keep only their list entry (see `History`).
pub const HISTORY: usize = 100_000;

/// Writes the run as it stands after the given number of moves to the files of a plan — by making it afresh
/// and moving it as far, which only whoever built the run knows how to do (the session layer). Returns how
/// many packets were written and what the writers wrote, or why it could not, in one line.
pub type Exporter = Box<dyn FnMut(&ExportPlan, u64) -> Result<(u64, Written), String>>;

/// A pipeline under the debugger's control.
pub struct Debugger {
    build: Box<dyn FnMut() -> Pipeline>,
    pipeline: Pipeline,
    /// Moves made since the start (steps and waits), which `step_back` replays one fewer of.
    moves: u64,
    finished: VecDeque<PacketRecord>,
    finished_index: BTreeMap<PacketId, usize>,
    first_kept: usize,
    /// State changes seen so far per live packet, to notice new ones.
    checker: Checker,
    /// Every finished packet's list entry.
    history: History,
    pub breakpoints: Vec<Breakpoint>,
    export: Option<Exporter>,
}

impl Debugger {
    /// Control a run; `build` makes it afresh (identically) for every step back.
    pub fn new(mut build: Box<dyn FnMut() -> Pipeline>) -> Self {
        let pipeline = build();
        Debugger {
            build,
            pipeline,
            moves: 0,
            finished: VecDeque::new(),
            finished_index: BTreeMap::new(),
            first_kept: 0,
            checker: Checker::default(),
            history: History::new(),
            breakpoints: Vec::new(),
            export: None,
        }
    }

    /// The list's entries for every finished packet.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The history itself, for benchmarks and tests that fill it.
    pub fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    /// Filter the list.
    pub fn set_list_filter(&mut self, filter: Filter) {
        self.history.set_filter(filter);
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// Finished packets still kept, oldest first.
    pub fn finished(&self) -> impl Iterator<Item = &PacketRecord> {
        self.finished.iter()
    }

    /// A packet, on its way or finished (if still kept).
    pub fn packet(&self, id: PacketId) -> Option<&PacketRecord> {
        self.pipeline.packet(id).or_else(|| {
            let i = *self.finished_index.get(&id)?;
            self.finished.get(i - self.first_kept)
        })
    }

    /// One move: an engine step, or a wait for the next event when nothing can act.
    pub fn step(&mut self) -> Moved {
        let moved = move_once(&mut self.pipeline);
        if moved == Moved::Ended {
            return moved;
        }
        self.moves += 1;
        self.keep_finished();
        moved
    }

    /// Step until `packet` has reached its outcome (or the run ends, or `limit` moves were made).
    pub fn next(&mut self, packet: PacketId, limit: u64) -> Moved {
        let mut last = Moved::Ended;
        for _ in 0..limit {
            if self.finished_index.contains_key(&packet) {
                break;
            }
            last = self.step();
            if last == Moved::Ended {
                break;
            }
        }
        last
    }

    /// Step until a breakpoint hits, the run ends, or `limit` moves were made.
    pub fn cont(&mut self, limit: u64) -> Option<Hit> {
        for _ in 0..limit {
            match self.step() {
                Moved::Stepped(report) => {
                    if let Some(hit) = self.check(&report) {
                        return Some(hit);
                    }
                }
                Moved::Waited { .. } | Moved::Pending => {}
                Moved::Ended => return None,
            }
        }
        None
    }

    /// Go back one move: rebuild the run and replay all moves but the last.
    pub fn step_back(&mut self) {
        self.rewind_to(self.moves.saturating_sub(1));
    }

    /// Go back to just after move `target` (no further than the start) with one rebuild, however far back
    /// that is; going forward is what `step` is for, so a later `target` replays only up to the current move.
    pub fn rewind_to(&mut self, target: u64) {
        let target = target.min(self.moves);
        self.pipeline = (self.build)();
        self.moves = 0;
        self.finished.clear();
        self.finished_index.clear();
        self.first_kept = 0;
        self.checker = Checker::default();
        self.history.clear();
        while self.moves < target {
            if self.step() == Moved::Ended {
                break;
            }
        }
    }

    /// Let `export` write the run as it stands (see `Exporter`).
    pub fn with_export(mut self, export: Exporter) -> Self {
        self.export = Some(export);
        self
    }

    fn keep_finished(&mut self) {
        let done: Vec<PacketRecord> = self.pipeline.drain_finished().collect();
        for p in done {
            self.checker.forget(p.id);
            self.history.push(&p);
            self.finished_index
                .insert(p.id, self.first_kept + self.finished.len());
            self.finished.push_back(p);
            if self.finished.len() > HISTORY
                && let Some(old) = self.finished.pop_front()
            {
                self.finished_index.remove(&old.id);
                self.first_kept += 1;
            }
        }
    }

    /// The first breakpoint this step hit, if any.
    fn check(&mut self, report: &StepReport) -> Option<Hit> {
        let (pipeline, finished, index, first_kept) = (
            &self.pipeline,
            &self.finished,
            &self.finished_index,
            self.first_kept,
        );
        let lookup = |id: PacketId| {
            pipeline.packet(id).or_else(|| {
                let i = *index.get(&id)?;
                finished.get(i - first_kept)
            })
        };
        self.checker.check(&self.breakpoints, report, &lookup, &|| {
            pipeline.conn_buffer_levels().collect()
        })
    }
}

/// One move of `pipeline`: the next engine step, or a wait for the next event when nothing can act now.
/// What the debugger's moves count, so that a run made afresh and moved as often is the same run.
pub fn move_once(pipeline: &mut Pipeline) -> Moved {
    match pipeline.step() {
        Step::Progress(report) => Moved::Stepped(report),
        Step::Idle { next: Some(t), .. } if !pipeline.wire().is_done() || !pipeline.is_quiet() => {
            pipeline.wait_until(t);
            Moved::Waited { until: t }
        }
        Step::Idle { .. } => Moved::Ended,
    }
}

impl Driver for Debugger {
    fn counters(&self) -> Snapshot {
        Snapshot::counters(&self.pipeline)
    }
    fn in_flight(&self) -> Vec<&PacketRecord> {
        self.pipeline.in_flight().take(MAX_IN_FLIGHT_ROWS).collect()
    }
    fn packet(&self, id: PacketId) -> Option<&PacketRecord> {
        Debugger::packet(self, id)
    }
    fn history(&self) -> &History {
        &self.history
    }
    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }
    fn now(&self) -> Nanos {
        self.pipeline.now()
    }
    fn moves(&self) -> u64 {
        self.moves
    }
    fn breakpoints(&self) -> &[Breakpoint] {
        &self.breakpoints
    }
    fn add_breakpoint(&mut self, breakpoint: Breakpoint) {
        self.breakpoints.push(breakpoint);
    }
    fn clear_breakpoints(&mut self) {
        self.breakpoints.clear();
    }
    fn step(&mut self) -> Moved {
        Debugger::step(self)
    }
    fn next(&mut self, packet: PacketId, limit: u64) -> Moved {
        Debugger::next(self, packet, limit)
    }
    fn cont(&mut self, limit: u64) -> Option<Hit> {
        Debugger::cont(self, limit)
    }
    fn advance(&mut self, target_ns: Nanos, limit: u64) -> Advanced {
        let mut moves = 0;
        while self.pipeline.now() < target_ns && moves < limit {
            let before = self.moves;
            // `cont(1)` is one move with the breakpoints checked.
            let hit = Debugger::cont(self, 1);
            if self.moves == before {
                return Advanced::Ended;
            }
            moves += 1;
            if let Some(hit) = hit {
                return Advanced::Hit(hit);
            }
        }
        Advanced::Reached
    }
    fn rewind_to(&mut self, target: u64) -> Result<(), String> {
        Debugger::rewind_to(self, target);
        Ok(())
    }
    fn export(&mut self, plan: &ExportPlan) -> Result<(u64, Written), String> {
        let moves = self.moves;
        match self.export.as_mut() {
            Some(export) => export(plan, moves),
            None => Err("this run cannot be exported".into()),
        }
    }
}

#[cfg(test)]
mod tests;
