//! The rx path: a frame from the wire into the rx frame buffer, and from there through smoltcp to the socket
//! that takes it, with the verdict on what the stack did with it.

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::{Action, Pipeline};
use crate::pipeline::capture::LogLine;
use crate::pipeline::clock::Nanos;
use crate::pipeline::connection::RxSpan;
use crate::pipeline::dissect::{FlowKey, FrameInfo, Proto, Transport};
use crate::pipeline::ids::PacketId;
use crate::pipeline::reason::Reason;
use crate::pipeline::stage::{Dir, OutcomeKind, Stage};
use crate::pipeline::trace::Trigger;
use crate::pipeline::verdict::{self, Reply, SocketEffect, Verdict};
use crate::pipeline::wire::Fate;

impl Pipeline {
    pub(super) fn tap_reader(&mut self, now: Nanos) -> Option<Action> {
        if let Some((id, at)) = self.wire_slot.take() {
            self.enqueue_rx(id, at.unwrap_or(now));
            return Some(Action::FrameBufferIn);
        }
        if self.wire.waits_for_room() && self.rx_queue.len() >= self.rx_queue.capacity() {
            return None;
        }
        let arrival = self.wire.arrive(now)?;
        self.stats.frames_in += 1;
        // A recorded frame of the stack marks when its app wrote: wake that flow's app (a replayed one plays
        // its next turn once the capture has reached it).
        if let Fate::Recorded { flow: Some(flow) } = &arrival.fate
            && let Some(&cid) = self.conn_by_flow.get(flow)
        {
            self.ready.insert(cid);
        }
        let id = self.new_packet(Dir::Rx, arrival.frame, Trigger::Wire);
        self.hop(id, Stage::Wire, arrival.at.unwrap_or(now));
        if let Some(p) = self.packets.get_mut(&id) {
            p.capture_frame = arrival.capture_frame;
            p.recorded = matches!(arrival.fate, Fate::Recorded { .. } | Fate::Connect { .. });
            if let Some(note) = arrival.note {
                p.stack_log.push(LogLine::note(note));
            }
            // A record that could not be made Ethernet is not dissected as Ethernet: it says what it is.
            if let Fate::Refused(Reason::NotInjectable { detail }) = &arrival.fate {
                p.info = FrameInfo::foreign(p.info.len, detail.clone());
            }
        }
        match arrival.fate {
            Fate::Inject => self.wire_slot = Some((id, arrival.at)),
            Fate::Overflowed { capacity } => {
                self.hop(id, Stage::FrameBuffer, arrival.at.unwrap_or(now));
                self.drop_packet(id, Stage::FrameBuffer, Reason::FrameBufferFull { capacity });
            }
            Fate::Recorded { .. } => {
                let note = "recorded response of the stack: kept for the diff, not injected";
                self.conclude(
                    id,
                    OutcomeKind::Consumed,
                    Stage::Wire,
                    None,
                    Some(note.into()),
                );
            }
            Fate::Refused(reason) => self.drop_packet(id, Stage::Wire, reason),
            Fate::Connect { local_port, remote } => {
                let note = "recorded SYN of the stack: not injected; its app connects now instead";
                self.conclude(
                    id,
                    OutcomeKind::Consumed,
                    Stage::Wire,
                    None,
                    Some(note.into()),
                );
                if self.connect_recorded(local_port, remote).is_none()
                    && let Some(p) = self.packets.get_mut(&id)
                {
                    p.stack_log.push(LogLine::note(format!(
                        "no app could connect from port {local_port} to {remote}"
                    )));
                }
            }
        }
        Some(Action::WireIn)
    }

    /// End of a live run: take every frame the far side has already read but the pipeline has not (at most
    /// `max`), recording its `wire` and `frame_buffer` hops, so `finish` gives it `in_flight` at the frame
    /// buffer instead of it vanishing. Overflow records are dropped as usual. Returns how many were taken.
    pub fn admit_waiting(&mut self, max: usize) -> u64 {
        let now = self.clock.now();
        let mut n = 0;
        while n < max as u64 {
            let Some(arrival) = self.wire.arrive(now) else {
                break;
            };
            n += 1;
            self.stats.frames_in += 1;
            let at = arrival.at.unwrap_or(now);
            let id = self.new_packet(Dir::Rx, arrival.frame, Trigger::Wire);
            self.hop(id, Stage::Wire, at);
            self.hop(id, Stage::FrameBuffer, at);
            if let Fate::Overflowed { capacity } = arrival.fate {
                self.drop_packet(id, Stage::FrameBuffer, Reason::FrameBufferFull { capacity });
            }
        }
        n
    }

    fn enqueue_rx(&mut self, id: PacketId, now: Nanos) {
        match self.rx_queue.push(id) {
            Ok(()) => self.hop(id, Stage::FrameBuffer, now),
            Err(id) => {
                let capacity = self.rx_queue.capacity();
                self.hop(id, Stage::FrameBuffer, now);
                self.drop_packet(id, Stage::FrameBuffer, Reason::FrameBufferFull { capacity });
            }
        }
    }

    /// The TCP socket (connection or listener) that smoltcp will hand this frame to, if any.
    fn tcp_target(&self, key: &FlowKey, syn_only: bool) -> Option<SocketHandle> {
        if let Some(cid) = self.conn_by_flow.get(&(key.dst, key.src)) {
            return self.conns.get(cid).map(|c| c.handle);
        }
        if syn_only && self.stack.is_listening_port(key.dst.port()) {
            return self.stack.first_listener(key.dst.port());
        }
        None
    }

    pub(super) fn stack_rx(&mut self, id: PacketId, now: Nanos) {
        let frame = self.packets[&id].frame.clone();
        let info = self.packets[&id].info.clone();
        self.hop(id, Stage::Stack, now);

        let tcp_key = info.flow_key().filter(|k| k.proto == Proto::Tcp);
        let syn_only = matches!(&info.transport, Transport::Tcp { flags, .. } if flags.syn && !flags.ack && !flags.rst);
        let target = tcp_key.as_ref().and_then(|k| self.tcp_target(k, syn_only));
        let before = target.map(|h| {
            let s = self.stack.sockets.get::<tcp::Socket>(h);
            (s.state(), s.recv_queue())
        });

        let window = self.stack.ingress(now, frame, id as u32);
        // Listeners a SYN took become connections (before their SYN-ACK is traced, so it maps to them).
        self.accept_new(now, id);
        let immediate = self.emit(window.immediate, Trigger::Frame(id), now);
        let egress = self.emit(window.egress, Trigger::Frame(id), now);
        let logs = window.logs;

        let mut effect = SocketEffect::default();
        let mut target_conn = None;
        if let (Some(h), Some((state_before, queue_before))) = (target, before) {
            let s = self.stack.sockets.get::<tcp::Socket>(h);
            effect.touched = state_before != tcp::State::Closed;
            if s.state() != state_before {
                effect.state_change = Some(format!("{state_before} → {}", s.state()));
            }
            target_conn = self.conn_by_handle.get(&h).copied();
            let accepted = logs
                .iter()
                .filter(|l| l.target.ends_with("socket::tcp"))
                .find_map(|l| verdict::parse_receiving(&l.message));
            if let (Some((offset, n)), Some(cid)) = (accepted, target_conn) {
                let conn = &self.conns[&cid];
                let readable_end = conn.rx_taken + queue_before as u64;
                effect.tcp_accepted = Some((readable_end + offset, n));
            }
        }
        effect.udp_queued = logs
            .iter()
            .any(|l| l.target.ends_with("socket::udp") && l.message.contains(": receiving "))
            && !logs
                .iter()
                .any(|l| l.message.contains("buffer full, dropped incoming packet"));

        let replies: Vec<Reply> = immediate
            .iter()
            .filter_map(|rid| {
                self.packets
                    .get(rid)
                    .or_else(|| self.finished.iter().rev().find(|p| p.id == *rid))
                    .map(|p| Reply {
                        id: *rid,
                        info: p.info.clone(),
                    })
            })
            .collect();
        let verdict = verdict::classify(&info, self.stack.mac, &logs, &replies, &effect);

        if let Some(p) = self.packets.get_mut(&id) {
            p.caused = immediate.iter().chain(&egress).copied().collect();
            // After the wire's notes on the arrival (made up MAC, no timestamp, …), which would be lost if the
            // window's lines replaced them.
            p.stack_log.extend(logs);
            p.flow = target_conn.or(p.flow);
        }
        if let Some(cid) = target_conn {
            self.refresh_state(cid, now, Some(id));
            self.ready.insert(cid);
        }

        match verdict {
            Verdict::Consumed { note } => {
                self.conclude(id, OutcomeKind::Consumed, Stage::Stack, None, Some(note));
            }
            Verdict::Dropped(reason) => self.drop_packet(id, Stage::Stack, reason),
            Verdict::DroppedAtSocket(reason) => {
                self.hop(id, Stage::SocketBuffer, now);
                self.drop_packet(id, Stage::SocketBuffer, reason);
            }
            Verdict::ToSocket { note } => {
                self.hop(id, Stage::SocketBuffer, now);
                if let Some(p) = self.packets.get_mut(&id)
                    && let Some(note) = note
                {
                    p.stack_log.push(LogLine::note(note));
                }
                // TCP payload waits for the connection to copy it out; a UDP datagram's packet id travels in
                // smoltcp's packet-meta id, so it needs no bookkeeping here.
                if let (Some((start, n)), Some(cid)) = (effect.tcp_accepted, target_conn) {
                    let end = start + n;
                    if let Some(p) = self.packets.get_mut(&id) {
                        p.stream = Some((start, end));
                    }
                    if let Some(conn) = self.conns.get_mut(&cid) {
                        conn.at_socket.push(RxSpan { packet: id, end });
                    }
                }
            }
        }
        self.sweep(now);
    }
}
