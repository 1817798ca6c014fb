//! TCP connections: made from a listener a SYN took or by an app connecting, serviced (socket ⇄ their
//! buffers ⇄ app) in turns, their state changes recorded, and ended once their socket closes.

use std::net::SocketAddr;

use smoltcp::socket::tcp;

use super::{Action, Pipeline};
use crate::pipeline::apps::{App, AppKind};
use crate::pipeline::clock::Nanos;
use crate::pipeline::config::{SYN_BACKLOG, SYN_RECEIVED_TIMEOUT_NS};
use crate::pipeline::connection::{Progress, TcpConn};
use crate::pipeline::ids::{ConnId, PacketId};
use crate::pipeline::reason::Reason;
use crate::pipeline::stack::endpoint_addr;
use crate::pipeline::stage::{OutcomeKind, Stage};
use crate::pipeline::trace::{ConnEventKind, Role, StateChange};

impl Pipeline {
    /// Let every open connection's app run again: an app fed from outside the core (a process, a socket) may
    /// have data the core has no way to know of. A live run calls this while connections are open.
    pub fn wake_connections(&mut self) {
        self.ready.extend(self.conns.keys().copied());
    }

    pub(super) fn accept_new(&mut self, now: Nanos, by_packet: PacketId) {
        let (taken, created) = self.stack.take_accepted();
        for h in created {
            self.listener_since.insert(h, now);
        }
        for (port, handle) in taken {
            let since = self.listener_since.remove(&handle).unwrap_or(0);
            let s = self.stack.sockets.get::<tcp::Socket>(handle);
            let (Some(local), Some(remote)) = (s.local_endpoint(), s.remote_endpoint()) else {
                continue;
            };
            let (local, remote) = (endpoint_addr(local), endpoint_addr(remote));
            let kind = self
                .tcp_apps
                .get(&port)
                .cloned()
                .unwrap_or(AppKind::Discard);
            let app = kind.instantiate().or_else(|| {
                let source = self.app_source.as_mut()?;
                source.accepted(local, remote)
            });
            let Some(app) = app else {
                // Nothing to play for this connection (a recorded app with no recorded flow): refuse it.
                self.stack.sockets.get_mut::<tcp::Socket>(handle).abort();
                continue;
            };
            let cid = self.next_conn;
            self.next_conn += 1;
            let Ok(mut conn) = TcpConn::new(
                cid,
                handle,
                local,
                remote,
                Role::Accepted,
                &kind.to_string(),
                app,
                tcp::State::Listen,
            ) else {
                // No file descriptors left for the AF_UNIX pair: refuse the connection visibly.
                self.stack.sockets.get_mut::<tcp::Socket>(handle).abort();
                continue;
            };
            conn.event(
                since,
                ConnEventKind::Listen,
                format!("listening on port {port}"),
            );
            conn.event(
                now,
                ConnEventKind::Accept,
                format!(
                    "SYN from {remote} (packet {by_packet}) taken by a listener; app {}",
                    kind
                ),
            );
            self.conn_by_handle.insert(handle, cid);
            self.conn_by_flow.insert((local, remote), cid);
            self.conns.insert(cid, conn);
            self.ready.insert(cid);
            if let Some(p) = self.packets.get_mut(&by_packet) {
                p.flow = Some(cid);
            }
        }
        self.cap_half_open(now);
    }

    /// Past `SYN_BACKLOG` half-open connections (SYN-RECEIVED, the handshake not completed), the oldest is
    /// aborted: a connection holds its socket buffers, its app and its AF_UNIX pair from the SYN on, and a flood
    /// of SYNs from spoofed sources would otherwise hold one per SYN for good. Evicting the oldest (rather than
    /// refusing the newest) keeps the port open to a real client whose handshake completes at once.
    fn cap_half_open(&mut self, now: Nanos) {
        let half_open: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                self.stack.sockets.get::<tcp::Socket>(c.handle).state() == tcp::State::SynReceived
            })
            .map(|(&cid, _)| cid)
            .collect();
        let over = half_open.len().saturating_sub(SYN_BACKLOG);
        for cid in half_open.into_iter().take(over) {
            let why = format!(
                "aborted in SYN-RECEIVED: more than {SYN_BACKLOG} half-open connections, and this the oldest \
                 (a SYN flood cannot hold a connection per SYN)"
            );
            if self.abort_half_open(cid, now, why) {
                self.stats.half_open_evicted += 1;
            }
        }
    }

    /// Abort a half-open connection, saying why on it; its RST goes out with the egress. False if it is gone.
    fn abort_half_open(&mut self, cid: ConnId, now: Nanos, why: String) -> bool {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return false;
        };
        self.stack
            .sockets
            .get_mut::<tcp::Socket>(conn.handle)
            .abort();
        conn.event(now, ConnEventKind::Reset, why);
        self.mark_egress(cid);
        self.ready.insert(cid);
        true
    }

    /// Open a connection from an app behind the stack to `remote` (the connect path).
    pub fn connect(
        &mut self,
        remote: SocketAddr,
        app_name: &str,
        app: Box<dyn App>,
    ) -> Option<ConnId> {
        let local_port = self.next_local_port;
        self.next_local_port = self.next_local_port.checked_add(1).unwrap_or(49152);
        let mut app = Some(app);
        self.connect_from(local_port, remote, app_name, &mut |_| app.take())
    }

    /// A replayed client: connect from the recorded port with the app the app source has for that flow.
    pub(super) fn connect_recorded(
        &mut self,
        local_port: u16,
        remote: SocketAddr,
    ) -> Option<ConnId> {
        let mut source = self.app_source.take()?;
        let name = AppKind::Recorded.name();
        let cid = self.connect_from(local_port, remote, name, &mut |local| {
            source.connecting(local, remote)
        });
        self.app_source = Some(source);
        cid
    }

    /// Connect from `local_port` to `remote`, with the app `make_app` gives for the connection's addresses.
    fn connect_from(
        &mut self,
        local_port: u16,
        remote: SocketAddr,
        app_name: &str,
        make_app: &mut dyn FnMut(SocketAddr) -> Option<Box<dyn App>>,
    ) -> Option<ConnId> {
        let now = self.clock.now();
        let mut socket = self.stack.tcp_socket();
        let remote_ep = smoltcp::wire::IpEndpoint::new(remote.ip().into(), remote.port());
        socket
            .connect(self.stack.iface.context(), remote_ep, local_port)
            .ok()?;
        let local_ip = socket.local_endpoint().map(|e| endpoint_addr(e).ip());
        let local = SocketAddr::new(local_ip.unwrap_or(self.stack.ipv4().into()), local_port);
        let app = make_app(local)?;
        let handle = self.stack.sockets.add(socket);
        let cid = self.next_conn;
        self.next_conn += 1;
        let mut conn = TcpConn::new(
            cid,
            handle,
            local,
            remote,
            Role::Connected,
            app_name,
            app,
            tcp::State::SynSent,
        )
        .ok()?;
        conn.event(
            now,
            ConnEventKind::Connect,
            format!("app connects to {remote} from port {local_port}"),
        );
        self.conn_by_handle.insert(handle, cid);
        self.conn_by_flow.insert((local, remote), cid);
        self.conns.insert(cid, conn);
        self.egress_pending.insert(cid);
        self.ready.insert(cid);
        Some(cid)
    }

    /// Compare a connection's socket state with what we last saw; record the change.
    pub(super) fn refresh_state(&mut self, cid: ConnId, now: Nanos, by_packet: Option<PacketId>) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let state = self.stack.sockets.get::<tcp::Socket>(conn.handle).state();
        if state == conn.state {
            return;
        }
        let from = conn.state;
        conn.state = state;
        let by = by_packet.map_or(String::new(), |p| format!(" (packet {p})"));
        conn.event(now, ConnEventKind::State, format!("{from} → {state}{by}"));
        if state == tcp::State::Established {
            conn.event(
                now,
                ConnEventKind::Established,
                format!("{} ⇄ {}", conn.record.local, conn.record.remote),
            );
        }
        let reset = matches!(state, tcp::State::Closed | tcp::State::Listen)
            && !matches!(
                from,
                tcp::State::LastAck | tcp::State::TimeWait | tcp::State::Closing
            );
        if reset {
            conn.event(
                now,
                ConnEventKind::Reset,
                format!("connection ended abruptly in {from}"),
            );
        }
        if let Some(pid) = by_packet
            && let Some(p) = self.packets.get_mut(&pid)
        {
            p.state_changes.push(StateChange {
                conn: cid,
                from: from.to_string(),
                to: state.to_string(),
            });
        }
    }

    /// End connections whose socket has closed, and release sockets that finished TIME-WAIT.
    /// Half-open connections whose handshake has not completed `SYN_RECEIVED_TIMEOUT_NS` after their SYN are
    /// aborted: a SYN from a source that never answers would otherwise keep its connection (smoltcp resends
    /// the SYN-ACK for as long as the socket lives).
    fn expire_half_open(&mut self, now: Nanos) {
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                self.stack.sockets.get::<tcp::Socket>(c.handle).state() == tcp::State::SynReceived
                    && c.record
                        .events
                        .iter()
                        .find(|e| e.kind == ConnEventKind::Accept)
                        .is_some_and(|e| now.saturating_sub(e.t_ns) >= SYN_RECEIVED_TIMEOUT_NS)
            })
            .map(|(&cid, _)| cid)
            .collect();
        for cid in expired {
            let why = format!(
                "aborted in SYN-RECEIVED: the handshake did not complete within {} s of the SYN",
                SYN_RECEIVED_TIMEOUT_NS / 1_000_000_000
            );
            if self.abort_half_open(cid, now, why) {
                self.stats.half_open_expired += 1;
            }
        }
    }

    pub(super) fn sweep(&mut self, now: Nanos) {
        self.expire_half_open(now);
        let ended: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| match c.state {
                // A connection reset by its app still has its RST to send: it goes with the egress.
                tcp::State::Closed | tcp::State::Listen => !self.egress_pending.contains(id),
                tcp::State::TimeWait => c.finished_in_time_wait(),
                _ => false,
            })
            .map(|(&id, _)| id)
            .collect();
        for cid in ended {
            let Some(mut conn) = self.conns.remove(&cid) else {
                continue;
            };
            let detail = if conn.state == tcp::State::TimeWait {
                "closed (socket lingers in TIME-WAIT)".to_string()
            } else {
                "closed".to_string()
            };
            conn.event(now, ConnEventKind::Closed, detail);
            let why = if conn
                .record
                .events
                .iter()
                .any(|e| e.kind == ConnEventKind::Reset)
            {
                "the connection was reset"
            } else {
                "the connection closed"
            };
            for pid in conn.stranded() {
                self.drop_packet(
                    pid,
                    self.packets
                        .get(&pid)
                        .and_then(|p| p.last_stage())
                        .unwrap_or(Stage::Stack),
                    Reason::ConnectionClosed { detail: why.into() },
                );
            }
            self.conn_by_handle.remove(&conn.handle);
            self.conn_by_flow
                .remove(&(conn.record.local, conn.record.remote));
            self.egress_pending.remove(&cid);
            self.ready.remove(&cid);
            if conn.state == tcp::State::TimeWait {
                self.lingering.push(conn.handle);
            } else {
                self.stack.sockets.remove(conn.handle);
            }
            self.closed.push(conn.record);
        }
        let sockets = &mut self.stack.sockets;
        self.lingering.retain(|&h| {
            let closed = sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed;
            if closed {
                sockets.remove(h);
            }
            !closed
        });
    }

    pub(super) fn service_connections(&mut self, now: Nanos) -> Option<Action> {
        let order: Vec<ConnId> = self
            .ready
            .range(self.service_cursor + 1..)
            .chain(self.ready.range(..=self.service_cursor))
            .copied()
            .collect();
        for cid in order {
            let mut p = Progress::default();
            let Some(conn) = self.conns.get_mut(&cid) else {
                self.ready.remove(&cid);
                continue;
            };
            {
                let socket = self.stack.sockets.get_mut::<tcp::Socket>(conn.handle);
                conn.pump_rx(socket, now, &mut p);
                if !p.moved {
                    conn.run_app(now, &mut p);
                }
                if !p.moved {
                    conn.pump_tx(socket, now, &mut p, &mut self.scratch);
                }
                let acked = conn.tx_sock_sent - socket.send_queue() as u64;
                conn.prune_acked(acked);
            }
            if !p.moved {
                // An app waiting on a process or a real socket stays ready: its work arrives from outside.
                if !conn.app_wants_service() {
                    self.ready.remove(&cid);
                    // Its app just finished with its outside end: a connection in TIME-WAIT can end now.
                    if conn.state == tcp::State::TimeWait {
                        self.sweep(now);
                        if !self.conns.contains_key(&cid) {
                            return Some(Action::Connection(cid));
                        }
                    }
                }
                continue;
            }
            self.service_cursor = cid;
            for pid in p.to_conn {
                self.hop(pid, Stage::ConnBuffer, now);
            }
            for pid in p.to_app {
                self.hop(pid, Stage::App, now);
                self.conclude(pid, OutcomeKind::Delivered, Stage::App, None, None);
            }
            if p.egress_needed {
                self.egress_pending.insert(cid);
            }
            self.refresh_state(cid, now, None);
            self.sweep(now);
            return Some(Action::Connection(cid));
        }
        None
    }
}
