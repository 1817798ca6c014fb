//! The trait every timeline writer (JSON, JSON Lines, Chrome trace) implements: it streams packets, buffer
//! levels and the closing records into its file.

use std::io;

use serde_json::Value;

use crate::pipeline::clock::Nanos;
use crate::pipeline::trace::{ConnectionRecord, PacketRecord, Stats};

pub trait TimelineWriter: Send {
    fn packet(&mut self, p: &PacketRecord) -> io::Result<()>;
    /// Does this writer want `occupancy` called after every step?
    fn wants_occupancy(&self) -> bool {
        false
    }
    /// Buffer levels after a step that happened at `t_ns`: the frame buffer's rx and tx depth, and each open
    /// connection's (id, rx bytes, tx bytes).
    fn occupancy(
        &mut self,
        _t_ns: Nanos,
        _frame_buffer: (usize, usize),
        _conns: &[(u64, usize, usize)],
    ) -> io::Result<()> {
        Ok(())
    }
    /// Close the export; `extra` (replay: the diff and what the wire did) goes in after the stats.
    fn finish(
        self: Box<Self>,
        conns: &[ConnectionRecord],
        stats: &Stats,
        extra: Option<&Value>,
    ) -> io::Result<()>;
}
