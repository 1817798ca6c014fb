//! Breakpoints: where `continue` stops, and the check made after every step — by the deterministic
//! debugger on the UI's thread, and by a live run on its stack thread, so a hit stops the run at that step.

use std::collections::BTreeMap;
use std::fmt;

use crate::pipeline::engine::StepReport;
use crate::pipeline::ids::{ConnId, PacketId};
use crate::pipeline::stage::{OutcomeKind, Stage};
use crate::pipeline::trace::PacketRecord;

use super::filter::Filter;

/// Where `continue` stops.
#[derive(Debug, Clone)]
pub enum Breakpoint {
    /// A packet reaches this stage.
    Stage(Stage),
    /// A packet matching the filter moves.
    Filter(Filter),
    /// A packet is dropped, anywhere.
    AnyDrop,
    /// A TCP connection changes state.
    TcpStateChange,
    /// A connection's own rx or tx buffer holds more than this many bytes.
    BufferAbove(usize),
}

impl fmt::Display for Breakpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breakpoint::Stage(s) => write!(f, "stage {}", s.name()),
            Breakpoint::Filter(x) => write!(f, "filter '{x}'"),
            Breakpoint::AnyDrop => f.write_str("any drop"),
            Breakpoint::TcpStateChange => f.write_str("TCP state change"),
            Breakpoint::BufferAbove(n) => write!(f, "buffer above {n} bytes"),
        }
    }
}

/// A breakpoint that stopped the run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index into the debugger's breakpoints.
    pub breakpoint: usize,
    pub packet: Option<PacketId>,
    /// One line: which breakpoint and what happened, e.g. "any drop: #12 dropped at frame_buffer (…)".
    pub why: String,
}

/// What the check remembers between steps: how many TCP state changes each packet on its way had.
#[derive(Debug, Default)]
pub struct Checker {
    changes_seen: BTreeMap<PacketId, usize>,
}

impl Checker {
    /// A packet finished: nothing more to remember about it.
    pub fn forget(&mut self, id: PacketId) {
        self.changes_seen.remove(&id);
    }

    /// The first of `breakpoints` that this step hit, if any. `packet` finds a packet that moved (on its way
    /// or just finished); `levels` gives the connections' buffer levels after the step (asked only for a `buffer` breakpoint).
    pub fn check<'a>(
        &mut self,
        breakpoints: &[Breakpoint],
        report: &StepReport,
        packet: &dyn Fn(PacketId) -> Option<&'a PacketRecord>,
        levels: &dyn Fn() -> Vec<(ConnId, usize, usize)>,
    ) -> Option<Hit> {
        let moved: Vec<PacketId> = {
            let mut ids: Vec<PacketId> = report.hops.iter().map(|(id, _)| *id).collect();
            ids.extend(&report.finished);
            ids.dedup();
            ids
        };
        let new_state_change = moved.iter().find(|id| {
            let n = packet(**id).map_or(0, |p| p.state_changes.len());
            n > self.changes_seen.get(id).copied().unwrap_or(0)
        });
        let new_state_change = new_state_change.copied();
        for id in &moved {
            if let Some(p) = packet(*id)
                && p.outcome.is_none()
            {
                let n = p.state_changes.len();
                self.changes_seen.insert(*id, n);
            }
        }
        for (i, bp) in breakpoints.iter().enumerate() {
            let hit = |packet: Option<PacketId>, what: String| Hit {
                breakpoint: i,
                packet,
                why: format!("{bp}: {what}"),
            };
            match bp {
                Breakpoint::Stage(stage) => {
                    if let Some((id, _)) = report.hops.iter().find(|(_, s)| s == stage) {
                        return Some(hit(Some(*id), format!("#{id} reached {}", stage.name())));
                    }
                }
                Breakpoint::Filter(f) => {
                    if let Some(id) = moved
                        .iter()
                        .find(|id| packet(**id).is_some_and(|p| f.matches(p)))
                    {
                        return Some(hit(Some(*id), format!("#{id} matches")));
                    }
                }
                Breakpoint::AnyDrop => {
                    let dropped = report.finished.iter().find_map(|id| {
                        let p = packet(*id)?;
                        let o = p.outcome.as_ref()?;
                        (o.kind == OutcomeKind::Dropped).then(|| (*id, o.stage, o.reason.clone()))
                    });
                    if let Some((id, stage, reason)) = dropped {
                        let why = reason.map_or(String::new(), |r| format!(" ({r})"));
                        return Some(hit(
                            Some(id),
                            format!("#{id} dropped at {}{why}", stage.name()),
                        ));
                    }
                }
                Breakpoint::TcpStateChange => {
                    if let Some(id) = new_state_change
                        && let Some(c) = packet(id).and_then(|p| p.state_changes.last())
                    {
                        return Some(hit(
                            Some(id),
                            format!("connection {}: {} → {} (#{id})", c.conn, c.from, c.to),
                        ));
                    }
                }
                Breakpoint::BufferAbove(n) => {
                    if let Some((conn, rx, tx)) =
                        levels().into_iter().find(|(_, rx, tx)| rx.max(tx) > n)
                    {
                        return Some(hit(
                            None,
                            format!("connection {conn} holds {rx} bytes rx, {tx} bytes tx"),
                        ));
                    }
                }
            }
        }
        None
    }
}
