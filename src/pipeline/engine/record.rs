//! The trace bookkeeping: numbering packets and connections, adding hops, and giving each packet its one
//! outcome.

use super::Pipeline;
use crate::pipeline::clock::Nanos;
use crate::pipeline::ids::{ConnId, PacketId};
use crate::pipeline::reason::Reason;
use crate::pipeline::stage::{Dir, OutcomeKind, Stage};
use crate::pipeline::trace::{Hop, Outcome, PacketRecord, Trigger};

impl Pipeline {
    pub(super) fn new_packet(&mut self, dir: Dir, frame: Vec<u8>, trigger: Trigger) -> PacketId {
        let id = self.next_packet;
        self.next_packet += 1;
        let mut record = PacketRecord::new(id, dir, frame, trigger);
        // An rx frame of a known connection belongs to its flow from the wire on, so a drop before the stack
        // (a full frame buffer) is still found under its connection. (A tx frame's flow is set by `emit`.)
        if dir == Dir::Rx {
            record.flow = record
                .info
                .flow_key()
                .and_then(|k| self.conn_by_flow.get(&(k.dst, k.src)).copied());
        }
        self.packets.insert(id, record);
        id
    }

    pub(super) fn hop(&mut self, id: PacketId, stage: Stage, t_ns: Nanos) {
        if let Some(p) = self.packets.get_mut(&id) {
            let t_ns = p.hops.last().map_or(t_ns, |h| h.t_ns.max(t_ns));
            p.hops.push(Hop { stage, t_ns });
            if let Some(r) = &mut self.report {
                r.hops.push((id, stage));
            }
        }
    }

    /// Give a packet its one outcome and hand it to the finished queue.
    pub(super) fn conclude(
        &mut self,
        id: PacketId,
        kind: OutcomeKind,
        stage: Stage,
        reason: Option<Reason>,
        note: Option<String>,
    ) {
        let Some(mut p) = self.packets.remove(&id) else {
            return;
        };
        p.outcome = Some(Outcome {
            kind,
            stage,
            reason,
            note,
        });
        self.stats.record_outcome(&p);
        if let Some(r) = &mut self.report {
            r.finished.push(id);
        }
        self.finished.push_back(p);
    }

    pub(super) fn drop_packet(&mut self, id: PacketId, stage: Stage, reason: Reason) {
        self.conclude(id, OutcomeKind::Dropped, stage, Some(reason), None);
    }

    pub(super) fn packets_mut(&mut self, id: PacketId) -> Option<&mut PacketRecord> {
        self.packets.get_mut(&id)
    }

    pub(super) fn alloc_conn_id(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }
}
