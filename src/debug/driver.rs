//! What the app drives: a run it can look at and move. The deterministic `Debugger` (sim and replay, on the
//! UI's own thread, with step back) is one; a live run on its own threads, seen through the snapshots it
//! publishes, is the other. The app never touches a `Pipeline` itself.

use crate::export::sinks::{ExportPlan, Written};
use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::StepReport;
use crate::pipeline::ids::PacketId;
use crate::pipeline::trace::PacketRecord;

use super::breakpoints::{Breakpoint, Hit};
use super::filter::Filter;
use super::history::History;
use super::snapshot::Snapshot;

/// What one debugger move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// One engine step, with its hops.
    Stepped(StepReport),
    /// Nothing could act: virtual time jumped to the next event.
    Waited { until: Nanos },
    /// The run has nothing more to do.
    Ended,
    /// A live run was asked to step and has not yet (nothing to do until traffic comes).
    Pending,
}

/// What `advance` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advanced {
    /// The run got as far as it was asked to (or, live, took in what happened meanwhile).
    Reached,
    /// The run has nothing more to do.
    Ended,
    /// A breakpoint stopped it.
    Hit(Hit),
}

pub trait Driver {
    /// The run's counters, lanes and connections (no list rows).
    fn counters(&self) -> Snapshot;
    /// Packets on their way, at most `MAX_IN_FLIGHT_ROWS` of them, oldest first.
    fn in_flight(&self) -> Vec<&PacketRecord>;
    /// A packet on its way, or finished and still kept whole.
    fn packet(&self, id: PacketId) -> Option<&PacketRecord>;
    /// Every finished packet's list entry.
    fn history(&self) -> &History;
    fn history_mut(&mut self) -> &mut History;
    fn set_list_filter(&mut self, filter: Filter) {
        self.history_mut().set_filter(filter);
    }
    /// The run's clock.
    fn now(&self) -> Nanos;
    /// Moves made since the start.
    fn moves(&self) -> u64;
    fn breakpoints(&self) -> &[Breakpoint];
    fn add_breakpoint(&mut self, breakpoint: Breakpoint);
    fn clear_breakpoints(&mut self);
    /// One hop.
    fn step(&mut self) -> Moved;
    /// Move until `packet` has its outcome (or `limit` moves).
    fn next(&mut self, packet: PacketId, limit: u64) -> Moved;
    /// Move until a breakpoint hits (or `limit` moves, or the end).
    fn cont(&mut self, limit: u64) -> Option<Hit>;
    /// Running, not paused: go on until the run's clock reaches `target_ns` (at most `limit` moves), stopping
    /// at a breakpoint. A live run goes on by itself; this takes in what it did.
    fn advance(&mut self, target_ns: Nanos, limit: u64) -> Advanced;
    /// Go back to just after move `target`; `Err` says why this run cannot.
    fn rewind_to(&mut self, target: u64) -> Result<(), String>;
    /// Write the run so far to the files of `plan` (its header says the TUI wrote it, and at which move);
    /// `Err` says why it could not, in one line.
    fn export(&mut self, plan: &ExportPlan) -> Result<(u64, Written), String>;
    /// Take in what happened meanwhile, paused or not (a live run publishes from its own thread).
    fn refresh(&mut self) {}
    /// The user paused or resumed; a live run holds or releases its stack thread.
    fn set_paused(&mut self, _paused: bool) {}
    /// Real time drives the run (live): no speed to change, nothing to step back to.
    fn is_live(&self) -> bool {
        false
    }
}
