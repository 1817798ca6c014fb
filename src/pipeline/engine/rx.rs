//! The rx path: a frame from the wire into the rx frame buffer, and from there through smoltcp to the socket
//! that takes it, with the verdict on what the stack did with it.

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::{Action, Pipeline};
use crate::pipeline::capture::LogLine;
use crate::pipeline::clock::Nanos;
use crate::pipeline::connection::RxSpan;
use crate::pipeline::dissect::{self, FlowKey, FrameInfo, Proto, Transport};
use crate::pipeline::ids::PacketId;
use crate::pipeline::reason::Reason;
use crate::pipeline::stack::{Fragment, FragmentState, REASSEMBLY_TIMEOUT_NS, Window};
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
        let frame_info = self.packets[&id].info.clone();
        self.hop(id, Stage::Stack, now);

        // Datagrams whose reassembly time ran out end first: smoltcp expires its own as this frame goes in.
        self.expire_fragments(now);
        let fragment = (frame_info.dst_mac == self.stack.mac)
            .then(|| self.stack.fragments.add(now, &frame, id as u32))
            .flatten();
        // What smoltcp is given, and what the verdict reads: the whole datagram once this fragment completes
        // it. IPv6 fragments are held by pktpath's table (smoltcp 0.14 does not reassemble them over
        // Ethernet): smoltcp sees only the datagram; IPv4 fragments all go to smoltcp, which reassembles.
        let (feed, info) = match &fragment {
            Some(Fragment {
                state: FragmentState::Complete { frame: whole, .. },
                ipv6,
                ..
            }) => (
                Some(if *ipv6 { whole.clone() } else { frame }),
                dissect::dissect(whole),
            ),
            Some(Fragment { ipv6: true, .. }) => (None, frame_info),
            _ => (Some(frame), frame_info),
        };

        let tcp_key = info.flow_key().filter(|k| k.proto == Proto::Tcp);
        let syn_only = matches!(&info.transport, Transport::Tcp { flags, .. } if flags.syn && !flags.ack && !flags.rst);
        let target = tcp_key.as_ref().and_then(|k| self.tcp_target(k, syn_only));
        let before = target.map(|h| {
            let s = self.stack.sockets.get::<tcp::Socket>(h);
            (s.state(), s.recv_queue())
        });

        let window = match feed {
            Some(frame) => self.stack.ingress(now, frame, id as u32),
            None => Window::default(),
        };
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
        let (verdict, held) = match &fragment {
            Some(f) => match &f.state {
                FragmentState::Held => match verdict::reassembly_refused(&logs) {
                    Some(detail) => {
                        self.stack.fragments.forget(id as u32);
                        let datagram = f.datagram.clone();
                        (
                            Verdict::Dropped(Reason::ReassemblyFailed { datagram, detail }),
                            None,
                        )
                    }
                    None => (
                        Verdict::Consumed {
                            note: String::new(),
                        },
                        Some(f),
                    ),
                },
                FragmentState::Refused(why) => (
                    Verdict::Dropped(Reason::ReassemblyFailed {
                        datagram: f.datagram.clone(),
                        detail: why.clone(),
                    }),
                    None,
                ),
                FragmentState::Complete { .. } => (
                    verdict::classify(&info, self.stack.mac, &logs, &replies, &effect),
                    None,
                ),
            },
            None => (
                verdict::classify(&info, self.stack.mac, &logs, &replies, &effect),
                None,
            ),
        };
        // A datagram of a UDP flow already open belongs to it, whatever became of it (a full socket drops it
        // before the flow takes it, and the drop still names the flow).
        let udp_flow = info
            .flow_key()
            .filter(|k| k.proto == Proto::Udp)
            .and_then(|k| self.udp.flow_id(k.dst.port(), k.src));

        if let Some(p) = self.packets.get_mut(&id) {
            p.caused = immediate.iter().chain(&egress).copied().collect();
            // After the wire's notes on the arrival (made up MAC, no timestamp, …), which would be lost if the
            // window's lines replaced them.
            p.stack_log.extend(logs);
            p.flow = target_conn.or(udp_flow).or(p.flow);
        }
        if let Some(cid) = target_conn {
            self.refresh_state(cid, now, Some(id));
            self.ready.insert(cid);
        }
        if let Some(f) = &fragment {
            self.note_fragment(id, f);
        }
        if held.is_some() {
            // Held for reassembly: the packet stays at `stack` until its datagram completes (then
            // `consumed`), or expires or the run ends (then dropped, reason `reassembly_*`).
            self.sweep(now);
            return;
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

    /// What the fragment's packet says about it; once it completes its datagram, the fragments held before it
    /// end `consumed`, pointing at the packet that carries the datagram on.
    fn note_fragment(&mut self, id: PacketId, f: &Fragment) {
        let end = (f.offset + f.len).saturating_sub(1);
        let who = if f.ipv6 {
            "pktpath holds it (smoltcp 0.14 does not reassemble IPv6 over Ethernet)"
        } else {
            "smoltcp holds it"
        };
        let note = match &f.state {
            FragmentState::Held => format!(
                "held for reassembly: fragment {} of {}, bytes {}–{end}; {who}",
                f.n, f.datagram, f.offset
            ),
            FragmentState::Complete { held, bytes, .. } => {
                for (i, &p) in held.iter().enumerate() {
                    let note = format!(
                        "fragment {} of {}: reassembled; the datagram went on with packet {id}",
                        i + 1,
                        f.datagram
                    );
                    self.conclude(
                        PacketId::from(p),
                        OutcomeKind::Consumed,
                        Stage::Stack,
                        None,
                        Some(note),
                    );
                }
                format!(
                    "fragment {} of {}, bytes {}–{end}, completed it: the {bytes}-byte datagram (packets \
                     {}) goes on with this packet",
                    f.n,
                    f.datagram,
                    f.offset,
                    held.iter()
                        .chain(std::iter::once(&(id as u32)))
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            FragmentState::Refused(_) => return,
        };
        if let Some(p) = self.packets.get_mut(&id) {
            p.stack_log.push(LogLine::note(note));
        }
    }

    /// Fragments whose datagram did not complete within the reassembly timeout: dropped.
    fn expire_fragments(&mut self, now: Nanos) {
        if self.stack.fragments.is_empty() {
            return;
        }
        for u in self.stack.fragments.expire(now) {
            for &p in &u.packets {
                let reason = Reason::ReassemblyTimeout {
                    datagram: u.datagram.clone(),
                    have: u.have.clone(),
                    secs: REASSEMBLY_TIMEOUT_NS / 1_000_000_000,
                };
                self.drop_packet(PacketId::from(p), Stage::Stack, reason);
            }
        }
    }

    /// The end of a run: fragments still held are dropped, their datagram incomplete (or timed out, if its
    /// time ran out with no frame after it to notice).
    pub(super) fn end_reassembly(&mut self, now: Nanos) {
        self.expire_fragments(now);
        for u in self.stack.fragments.take_all() {
            for &p in &u.packets {
                let reason = Reason::ReassemblyIncomplete {
                    datagram: u.datagram.clone(),
                    have: u.have.clone(),
                };
                self.drop_packet(PacketId::from(p), Stage::Stack, reason);
            }
        }
    }
}
