//! The engine's UDP turn: a datagram out of a port's socket into its flow, or one flow's round (socket ⇄ the
//! flow's queues ⇄ app), with the hops and outcomes they make. The flows themselves are `UdpService`'s.

use std::io;
use std::net::SocketAddr;

use super::{Action, Pipeline};
use crate::pipeline::apps::AppKind;
use crate::pipeline::clock::Nanos;
use crate::pipeline::ids::{ConnId, PacketId};
use crate::pipeline::reason::Reason;
use crate::pipeline::stack::endpoint_addr;
use crate::pipeline::stage::{OutcomeKind, Stage};
use crate::pipeline::udp::FLOW_QUEUE;

impl Pipeline {
    /// One UDP action: take a datagram out of a port's socket into its flow, or service one flow.
    pub(super) fn udp_service(&mut self, now: Nanos) -> Option<Action> {
        if let Some((port, datagram, meta)) = self.udp.next_datagram(&mut self.stack) {
            let pid = meta.meta.id as PacketId;
            let remote = endpoint_addr(meta.endpoint);
            let cid = match self.udp_flow(port, remote, meta.local_address, now) {
                Ok(cid) => cid,
                Err(e) => {
                    // No descriptors for the AF_UNIX pair: the datagram cannot reach an app.
                    self.hop(pid, Stage::ConnBuffer, now);
                    self.drop_packet(
                        pid,
                        Stage::ConnBuffer,
                        Reason::ConnectionClosed {
                            detail: format!("cannot open the AF_UNIX pair for a new flow: {e}"),
                        },
                    );
                    return Some(Action::StackRx);
                }
            };
            self.hop(pid, Stage::ConnBuffer, now);
            if let Some(p) = self.packets_mut(pid) {
                p.flow = Some(cid);
            }
            if !self.udp.buffer_rx(cid, pid, datagram) {
                self.drop_packet(
                    pid,
                    Stage::ConnBuffer,
                    Reason::SocketBufferFull {
                        detail: format!("flow {cid}'s queue holds {FLOW_QUEUE} datagrams already"),
                    },
                );
            }
            return Some(Action::Connection(cid));
        }
        for cid in self.udp.flow_ids() {
            if self.udp_flow_round(cid, now) {
                return Some(Action::Connection(cid));
            }
        }
        None
    }

    fn udp_flow(
        &mut self,
        port: u16,
        remote: SocketAddr,
        local: Option<smoltcp::wire::IpAddress>,
        now: Nanos,
    ) -> io::Result<ConnId> {
        if let Some(cid) = self.udp.flow_id(port, remote) {
            return Ok(cid);
        }
        let cid = self.alloc_conn_id();
        let local_ip = local.map(Into::into).unwrap_or(self.stack.ipv4().into());
        let app = self.udp.port_app(port);
        let local = SocketAddr::new(local_ip, port);
        let replier = match (&app, self.app_source.as_mut()) {
            (AppKind::Recorded, Some(source)) => source.datagrams(local, remote),
            _ => None,
        };
        self.udp.open_flow(cid, local, remote, app, replier, now)?;
        Ok(cid)
    }

    /// Move datagrams one stage along in one flow; true if anything moved.
    fn udp_flow_round(&mut self, cid: ConnId, now: Nanos) -> bool {
        let mut delivered = Vec::new();
        let (moved, egress) = self
            .udp
            .flow_round(cid, &mut self.stack, now, &mut delivered);
        for pid in delivered {
            self.hop(pid, Stage::App, now);
            self.conclude(pid, OutcomeKind::Delivered, Stage::App, None, None);
        }
        if egress {
            self.mark_egress(cid);
        }
        moved
    }
}
