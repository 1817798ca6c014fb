//! UDP behind the stack: one smoltcp socket per bound port, and one flow per remote endpoint, each flow with its
//! own queue and its own real AF_UNIX datagram pair to the app. Packet identity rides through smoltcp in the
//! packet-meta id: rx datagrams carry their packet id, tx datagrams a token naming where their bytes came from.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;

use smoltcp::iface::SocketHandle;
use smoltcp::phy::PacketMeta;
use smoltcp::socket::udp;

use super::apps::{AppKind, DatagramApp};
use super::clock::Nanos;
use super::ids::{ConnId, PacketId};
use super::stack::{MAX_UDP_PAYLOAD, Stack, endpoint_addr};
use super::stage::Stage;
use super::trace::{
    ConnEvent, ConnEventKind, ConnProto, ConnectionRecord, Hop, Role, StreamDigest,
};

/// Datagrams a flow holds in each direction before it stops taking more.
pub(crate) const FLOW_QUEUE: usize = 64;
/// The most bytes a flow's buffer can hold in one direction: a full queue of the largest datagrams.
pub const FLOW_BUFFER_BYTES: usize = FLOW_QUEUE * MAX_UDP_PAYLOAD;
/// Large enough for any datagram an app can write to its AF_UNIX end, so none is cut short on reading.
const DATAGRAM_READ: usize = 65536;

struct UdpPort {
    handle: SocketHandle,
    app: AppKind,
}

struct TxDatagram {
    data: Vec<u8>,
    app_t: Nanos,
    conn_t: Nanos,
    sources: Vec<PacketId>,
}

/// Where a tx datagram's bytes came from, for the frame that carries it.
struct TxOrigin {
    conn: ConnId,
    hops: Vec<Hop>,
    sources: Vec<PacketId>,
}

struct UdpFlow {
    port: u16,
    remote: SocketAddr,
    record: ConnectionRecord,
    conn_end: UnixDatagram,
    app_end: UnixDatagram,
    app: AppKind,
    /// The app's flow-aware side, for apps that answer from what they know of the flow (replay's `recorded`).
    replier: Option<Box<dyn DatagramApp>>,
    /// In the connection's buffer, not yet handed to the AF_UNIX socket.
    rx_buf: VecDeque<(PacketId, Vec<u8>)>,
    /// Handed to the AF_UNIX socket, in order, not yet read by the app.
    to_app: VecDeque<PacketId>,
    tx_buf: VecDeque<TxDatagram>,
    read_since_write: Vec<PacketId>,
    /// Echo replies the app could not write yet.
    app_pending: VecDeque<Vec<u8>>,
    /// Datagrams the app wrote that the connection has not read yet (they sit in the AF_UNIX socket).
    from_app_unread: usize,
}

#[derive(Default)]
pub struct UdpService {
    ports: BTreeMap<u16, UdpPort>,
    flows: BTreeMap<ConnId, UdpFlow>,
    flow_by_key: BTreeMap<(u16, SocketAddr), ConnId>,
    origins: BTreeMap<u32, TxOrigin>,
    next_token: u32,
    /// One receive buffer for every flow's AF_UNIX reads (a datagram is read whole or not at all).
    scratch: Vec<u8>,
}

impl UdpService {
    pub fn new(stack: &mut Stack, apps: &BTreeMap<u16, AppKind>) -> Self {
        let mut svc = UdpService {
            next_token: 1,
            scratch: vec![0; DATAGRAM_READ],
            ..Default::default()
        };
        for (&port, app) in apps {
            let handle = stack.bind_udp(port);
            svc.ports.insert(
                port,
                UdpPort {
                    handle,
                    app: app.clone(),
                },
            );
        }
        svc
    }

    /// UDP flows stay open for the whole run; quiet means no datagram waits anywhere: in a port's socket, in a
    /// flow's queues, or in the AF_UNIX socket for the app to read.
    pub fn is_quiet(&self, stack: &Stack) -> bool {
        self.ports
            .values()
            .all(|p| !stack.sockets.get::<udp::Socket>(p.handle).can_recv())
            && self.flows.values().all(|f| {
                f.rx_buf.is_empty()
                    && f.to_app.is_empty()
                    && f.tx_buf.is_empty()
                    && f.app_pending.is_empty()
                    && f.from_app_unread == 0
            })
    }

    /// Some datagram waits in a port's socket for its flow to take it.
    pub(crate) fn has_waiting(&self, stack: &Stack) -> bool {
        self.ports
            .values()
            .any(|p| stack.sockets.get::<udp::Socket>(p.handle).can_recv())
    }

    pub fn records(&self) -> Vec<ConnectionRecord> {
        self.flows.values().map(|f| f.record.clone()).collect()
    }

    /// Each flow's record with the bytes waiting in its own rx and tx buffers.
    pub fn flow_levels(&self) -> impl Iterator<Item = (&ConnectionRecord, usize, usize)> + '_ {
        self.flows.values().map(|f| {
            let rx = f.rx_buf.iter().map(|(_, d)| d.len()).sum();
            let tx = f.tx_buf.iter().map(|d| d.data.len()).sum();
            (&f.record, rx, tx)
        })
    }

    /// The frame smoltcp emitted with this meta id carries a datagram from this origin.
    pub fn tx_origin(&mut self, token: u32) -> Option<(ConnId, Vec<Hop>, Vec<PacketId>)> {
        let o = self.origins.remove(&token)?;
        Some((o.conn, o.hops, o.sources))
    }
}

impl UdpFlow {
    fn event(&mut self, t_ns: Nanos, kind: ConnEventKind, detail: String) {
        self.record.push_event(ConnEvent { t_ns, kind, detail });
    }
}

impl UdpService {
    /// The next datagram waiting in a port's socket that its flow can take: (its port, the datagram, its
    /// metadata). A datagram whose flow's queue is full stays in the socket until the flow drains, so taking
    /// datagrams in never starves the rounds that move them on to the app.
    pub(crate) fn next_datagram(
        &self,
        stack: &mut Stack,
    ) -> Option<(u16, Vec<u8>, udp::UdpMetadata)> {
        for (&port, p) in &self.ports {
            let s = stack.sockets.get_mut::<udp::Socket>(p.handle);
            if !s.can_recv() {
                continue;
            }
            let Ok((_, meta)) = s.peek() else { continue };
            let remote = endpoint_addr(meta.endpoint);
            if self
                .flow_by_key
                .get(&(port, remote))
                .and_then(|cid| self.flows.get(cid))
                .is_some_and(|f| f.rx_buf.len() >= FLOW_QUEUE)
            {
                continue;
            }
            if let Ok((data, meta)) = s.recv() {
                return Some((port, data.to_vec(), meta));
            }
        }
        None
    }

    /// The flow of datagrams between `port` and `remote`, if one has come already.
    pub(crate) fn flow_id(&self, port: u16, remote: SocketAddr) -> Option<ConnId> {
        self.flow_by_key.get(&(port, remote)).copied()
    }

    /// The app serving a bound port.
    pub(crate) fn port_app(&self, port: u16) -> AppKind {
        self.ports[&port].app.clone()
    }

    /// The flows, by id.
    pub(crate) fn flow_ids(&self) -> Vec<ConnId> {
        self.flows.keys().copied().collect()
    }

    /// Open flow `cid` between `local` (a bound port) and `remote`, with its AF_UNIX pair to the app.
    pub(crate) fn open_flow(
        &mut self,
        cid: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        app: AppKind,
        replier: Option<Box<dyn DatagramApp>>,
        now: Nanos,
    ) -> io::Result<()> {
        let port = local.port();
        let (conn_end, app_end) = UnixDatagram::pair()?;
        let _ = conn_end.set_nonblocking(true);
        let _ = app_end.set_nonblocking(true);
        let mut flow = UdpFlow {
            port,
            remote,
            record: ConnectionRecord {
                id: cid,
                proto: ConnProto::Udp,
                local,
                remote,
                role: Role::Accepted,
                app: app.name().to_string(),
                events: Vec::new(),
                events_elided: 0,
                app_read: StreamDigest::default(),
                app_written: StreamDigest::default(),
            },
            conn_end,
            app_end,
            app,
            replier,
            rx_buf: VecDeque::new(),
            to_app: VecDeque::new(),
            tx_buf: VecDeque::new(),
            read_since_write: Vec::new(),
            app_pending: VecDeque::new(),
            from_app_unread: 0,
        };
        flow.event(
            now,
            ConnEventKind::Accept,
            format!("first datagram from {remote} to port {port}"),
        );
        self.flow_by_key.insert((port, remote), cid);
        self.flows.insert(cid, flow);
        Ok(())
    }

    /// Put a datagram a port's socket received into its flow's queue; false when the queue is full
    /// (`FLOW_QUEUE` datagrams).
    pub(crate) fn buffer_rx(&mut self, cid: ConnId, pid: PacketId, datagram: Vec<u8>) -> bool {
        let flow = self.flows.get_mut(&cid).expect("just found or made");
        if flow.rx_buf.len() >= FLOW_QUEUE {
            return false;
        }
        flow.rx_buf.push_back((pid, datagram));
        true
    }

    /// Move datagrams one stage along in one flow: returns (anything moved, a datagram went to the port's
    /// socket). The packets whose datagram the app read are added to `delivered`.
    pub(crate) fn flow_round(
        &mut self,
        cid: ConnId,
        stack: &mut Stack,
        now: Nanos,
        delivered: &mut Vec<PacketId>,
    ) -> (bool, bool) {
        let mut moved = false;
        let mut egress = false;
        {
            let (flow, buf) = (self.flows.get_mut(&cid).expect("listed"), &mut self.scratch);
            // conn buffer → AF_UNIX
            while let Some((pid, data)) = flow.rx_buf.front() {
                match flow.conn_end.send(data) {
                    Ok(_) => {
                        flow.to_app.push_back(*pid);
                        flow.rx_buf.pop_front();
                        moved = true;
                    }
                    Err(_) => break,
                }
            }
            // the app
            if !moved {
                moved |= run_datagram_app(flow, delivered, buf);
            }
            // AF_UNIX → conn tx buffer → socket
            if !moved {
                while flow.tx_buf.len() < FLOW_QUEUE {
                    match flow.conn_end.recv(buf) {
                        Ok(n) => {
                            flow.from_app_unread = flow.from_app_unread.saturating_sub(1);
                            let sources = std::mem::take(&mut flow.read_since_write);
                            flow.tx_buf.push_back(TxDatagram {
                                data: buf[..n.min(MAX_UDP_PAYLOAD)].to_vec(),
                                app_t: now,
                                conn_t: now,
                                sources,
                            });
                            moved = true;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        if !moved {
            let (port, remote) = {
                let f = &self.flows[&cid];
                (f.port, f.remote)
            };
            let handle = self.ports[&port].handle;
            while let Some(d) = self.flows.get_mut(&cid).and_then(|f| f.tx_buf.pop_front()) {
                let token = self.next_token;
                let s = stack.sockets.get_mut::<udp::Socket>(handle);
                let mut meta = udp::UdpMetadata::from(smoltcp::wire::IpEndpoint::new(
                    remote.ip().into(),
                    remote.port(),
                ));
                let mut pm = PacketMeta::default();
                pm.id = token;
                meta.meta = pm;
                match s.send_slice(&d.data, meta) {
                    Ok(()) => {
                        self.next_token = token.wrapping_add(1).max(1);
                        self.origins.insert(
                            token,
                            TxOrigin {
                                conn: cid,
                                hops: vec![
                                    Hop {
                                        stage: Stage::App,
                                        t_ns: d.app_t,
                                    },
                                    Hop {
                                        stage: Stage::ConnBuffer,
                                        t_ns: d.conn_t,
                                    },
                                    Hop {
                                        stage: Stage::SocketBuffer,
                                        t_ns: now,
                                    },
                                ],
                                sources: d.sources,
                            },
                        );
                        moved = true;
                        egress = true;
                    }
                    Err(_) => {
                        // The socket's tx buffer is full: keep the datagram for the next round.
                        self.flows.get_mut(&cid).expect("live").tx_buf.push_front(d);
                        break;
                    }
                }
            }
        }
        (moved, egress)
    }
}

/// Run a datagram app on its end; returns whether it did anything. Read datagrams are reported as delivered.
fn run_datagram_app(flow: &mut UdpFlow, delivered: &mut Vec<PacketId>, buf: &mut [u8]) -> bool {
    let mut moved = false;
    while let Some(d) = flow.app_pending.front() {
        match flow.app_end.send(d) {
            Ok(_) => {
                flow.from_app_unread += 1;
                flow.record.app_written.update(d);
                flow.app_pending.pop_front();
                moved = true;
            }
            Err(_) => return moved,
        }
    }
    if flow.app == AppKind::Stall {
        return moved;
    }
    while let Ok(n) = flow.app_end.recv(buf) {
        flow.record.app_read.update(&buf[..n]);
        if let Some(pid) = flow.to_app.pop_front() {
            delivered.push(pid);
            flow.read_since_write.push(pid);
        }
        moved = true;
        if let Some(replier) = flow.replier.as_mut() {
            replier.received(&buf[..n]);
        }
        if flow.app == AppKind::Echo {
            match flow.app_end.send(&buf[..n]) {
                Ok(_) => {
                    flow.from_app_unread += 1;
                    flow.record.app_written.update(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    flow.app_pending.push_back(buf[..n].to_vec())
                }
                Err(_) => {}
            }
        }
    }
    if let Some(replier) = flow.replier.as_mut() {
        while let Some(reply) = replier.next_reply() {
            flow.app_pending.push_back(reply);
            moved = true;
        }
    }
    moved
}
