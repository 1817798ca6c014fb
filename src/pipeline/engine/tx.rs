//! The tx path: frames smoltcp emits become tx packets, traced back to the app writes they carry, and leave
//! through the tx queue for the wire.

use super::{Action, Pipeline};
use crate::pipeline::clock::Nanos;
use crate::pipeline::device::Emitted;
use crate::pipeline::dissect::{Proto, Transport};
use crate::pipeline::ids::{ConnId, PacketId};
use crate::pipeline::reason::Reason;
use crate::pipeline::stage::{Dir, OutcomeKind, Stage};
use crate::pipeline::trace::{Hop, Trigger};

impl Pipeline {
    pub(super) fn tap_writer(&mut self, now: Nanos) -> Option<Action> {
        let id = self.tx_queue.pop()?;
        self.hop(id, Stage::Wire, now);
        self.stats.frames_out += 1;
        if let Some(p) = self.packets.get(&id) {
            self.wire.transmit(now, &p.frame);
        }
        self.conclude(id, OutcomeKind::Sent, Stage::Wire, None, None);
        Some(Action::WireOut)
    }

    pub(super) fn mark_egress(&mut self, cid: ConnId) {
        self.egress_pending.insert(cid);
    }

    /// Turn frames smoltcp emitted into tx packets: stack hop, then the tx queue.
    pub(super) fn emit(
        &mut self,
        emitted: Vec<Emitted>,
        trigger: Trigger,
        now: Nanos,
    ) -> Vec<PacketId> {
        let mut ids = Vec::with_capacity(emitted.len());
        for e in emitted {
            let id = self.new_packet(Dir::Tx, e.frame, trigger);
            let info = self.packets[&id].info.clone();
            let mut earlier: Vec<Hop> = Vec::new();
            let mut flow = None;
            let mut payload_of = Vec::new();
            let mut stream = None;
            match (info.flow_key(), &info.transport) {
                (
                    Some(key),
                    Transport::Tcp {
                        seq,
                        flags,
                        payload_len,
                        ..
                    },
                ) => {
                    if let Some(&cid) = self.conn_by_flow.get(&(key.src, key.dst)) {
                        flow = Some(cid);
                        let conn = self
                            .conns
                            .get_mut(&cid)
                            .expect("flow map points at live conns");
                        if flags.syn {
                            conn.iss = Some(*seq);
                        }
                        if *payload_len > 0
                            && let Some(iss) = conn.iss
                        {
                            let start = seq.wrapping_sub(iss.wrapping_add(1)) as u64;
                            let end = start + *payload_len as u64;
                            stream = Some((start, end));
                            let last = end - 1;
                            for (stage, marks) in [
                                (Stage::App, &conn.tx_app_marks),
                                (Stage::ConnBuffer, &conn.tx_conn_marks),
                                (Stage::SocketBuffer, &conn.tx_sock_marks),
                            ] {
                                if let Some(t) = marks.time_of(last) {
                                    earlier.push(Hop { stage, t_ns: t });
                                }
                            }
                            payload_of = conn.sources_of(start, end);
                        }
                    }
                }
                (Some(key), Transport::Udp { .. }) if key.proto == Proto::Udp => {
                    if let Some((cid, hops, sources)) = self.udp.tx_origin(e.meta_id) {
                        flow = Some(cid);
                        earlier = hops;
                        payload_of = sources;
                    }
                }
                _ => {}
            }
            if let Some(p) = self.packets.get_mut(&id) {
                p.flow = flow;
                p.payload_of = payload_of;
                p.stream = stream;
                p.hops = earlier.clone();
            }
            if let Some(r) = &mut self.report {
                r.hops.extend(earlier.iter().map(|h| (id, h.stage)));
            }
            self.hop(id, Stage::Stack, now);
            match self.tx_queue.push(id) {
                Ok(()) => self.hop(id, Stage::FrameBuffer, now),
                Err(id) => {
                    let capacity = self.tx_queue.capacity();
                    self.hop(id, Stage::FrameBuffer, now);
                    self.drop_packet(id, Stage::FrameBuffer, Reason::TxQueueFull { capacity });
                }
            }
            ids.push(id);
        }
        ids
    }

    pub(super) fn app_egress(&mut self, now: Nanos) {
        let pending = std::mem::take(&mut self.egress_pending);
        let window = self.stack.egress(now);
        let (emitted, _logs) = window.all_emitted();
        // Everything sent here is the apps' doing: each frame goes to its own connection when its flow names
        // one of them; frames with no flow (the ARP a connect needs) go to the first.
        let first = pending.iter().next().copied().unwrap_or_default();
        let ids = self.emit(emitted, Trigger::App(first), now);
        for id in ids {
            let p = self
                .packets
                .get_mut(&id)
                .or_else(|| self.finished.iter_mut().rev().find(|p| p.id == id));
            if let Some(p) = p
                && let Some(c) = p.flow.filter(|c| pending.contains(c))
            {
                p.trigger = Trigger::App(c);
            }
        }
        for cid in pending {
            self.refresh_state(cid, now, None);
            self.ready.insert(cid);
        }
        self.sweep(now);
    }
}
