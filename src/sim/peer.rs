//! The simulated peer: a second, independent smoltcp instance on the far side of an in-memory wire. It runs real
//! TCP clients (or, with `outbound`, real echo servers) and a UDP sender, with its own timers, in virtual time.
//! It is the outside world: its own log lines are muted and none of its work is traced.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};

use crate::pipeline::capture;
use crate::pipeline::clock::{Nanos, from_smoltcp, to_smoltcp};
use crate::pipeline::device::StepDevice;
use crate::pipeline::trace::StreamDigest;
use crate::pipeline::wire::Wire;

use super::report::{ClientOutcome, SimReport, UdpOutcome};

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub clients: usize,
    pub bytes: usize,
    pub port: u16,
    pub udp: usize,
    pub outbound: bool,
    pub seed: u64,
    /// One-way delay of the in-memory wire.
    pub link_delay: Nanos,
    pub peer_mac: [u8; 6],
    pub peer_ip: Ipv4Address,
    pub stack_ip: Ipv4Address,
    /// Clients send an HTTP GET instead of random bytes (the port is served by `http`).
    pub http: bool,
    /// The app on the port echoes, so clients expect their bytes back.
    pub expect_echo: bool,
    /// UDP datagrams get replies.
    pub udp_echo: bool,
}

/// First local port of the simulated clients.
pub const CLIENT_PORT_BASE: u16 = 40000;
/// The peer's UDP port.
pub const UDP_PORT: u16 = 5000;
/// How long after its last datagram the UDP sender waits for replies it does not expect.
const UDP_GRACE: Nanos = 200_000_000;
const UDP_INTERVAL: Nanos = 1_000_000;

/// Deterministic bytes from a seed (splitmix64).
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn http_request(stack_ip: Ipv4Address) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {stack_ip}\r\nUser-Agent: pktpath-sim\r\nAccept: */*\r\n\r\n")
        .into_bytes()
}

struct TcpEnd {
    handle: SocketHandle,
    local_port: u16,
    payload: Vec<u8>,
    sent: usize,
    /// Every byte this end wrote, in order.
    sent_digest: StreamDigest,
    closed_write: bool,
    received: StreamDigest,
    established: bool,
    /// The other end, remembered once connected (a closed socket forgets it).
    remote: Option<std::net::SocketAddr>,
    /// Outbound mode: this end echoes what it reads instead of sending a payload.
    server: bool,
    echo_backlog: Vec<u8>,
}

struct UdpSender {
    handle: SocketHandle,
    datagrams: Vec<Vec<u8>>,
    next: usize,
    replies: Vec<StreamDigest>,
}

pub struct SimPeer {
    config: PeerConfig,
    iface: Interface,
    device: StepDevice,
    sockets: SocketSet<'static>,
    ends: Vec<TcpEnd>,
    udp: Option<UdpSender>,
    /// Frames from the pipeline, with the time they reach the peer.
    inbound: VecDeque<(Nanos, Vec<u8>)>,
    /// Frames to the pipeline, with the time they reach it.
    outbound: VecDeque<(Nanos, Vec<u8>)>,
    last_run: Option<Nanos>,
    /// The latest time the pipeline has let the peer see.
    seen: Nanos,
    next_timer: Option<Nanos>,
    report: Rc<RefCell<SimReport>>,
}

impl SimPeer {
    pub fn new(config: PeerConfig, report: Rc<RefCell<SimReport>>) -> Self {
        let mut device = StepDevice::new();
        let mut iface_config =
            Config::new(HardwareAddress::Ethernet(EthernetAddress(config.peer_mac)));
        iface_config.random_seed = config.seed ^ 0x005e_ed0f_9ee4;
        let mut iface = Interface::new(iface_config, &mut device, to_smoltcp(0));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(config.peer_ip.into(), 24));
        });
        let mut sockets = SocketSet::new(vec![]);
        let mut ends = Vec::new();
        for i in 0..config.clients {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            );
            s.set_ack_delay(None);
            let local_port = CLIENT_PORT_BASE + i as u16;
            let payload = if config.outbound {
                Vec::new()
            } else if config.http {
                http_request(config.stack_ip)
            } else {
                seeded_bytes(config.seed.wrapping_add(i as u64 + 1), config.bytes)
            };
            if config.outbound {
                let _ = s.listen(config.port);
            } else {
                let remote = IpEndpoint::new(IpAddress::Ipv4(config.stack_ip), config.port);
                let _ = capture::muted(|| s.connect(iface.context(), remote, local_port));
            }
            let handle = sockets.add(s);
            ends.push(TcpEnd {
                handle,
                local_port,
                payload,
                sent: 0,
                sent_digest: StreamDigest::default(),
                closed_write: false,
                received: StreamDigest::default(),
                established: false,
                remote: None,
                server: config.outbound,
                echo_backlog: Vec::new(),
            });
        }
        let udp = (config.udp > 0).then(|| {
            let buffer =
                || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1536]);
            let mut s = udp::Socket::new(buffer(), buffer());
            let _ = s.bind(UDP_PORT);
            let datagrams = (0..config.udp)
                .map(|i| {
                    let len = 16 + (seeded_bytes(config.seed ^ (i as u64) << 8, 2)[0] as usize * 4);
                    seeded_bytes(config.seed.wrapping_mul(31).wrapping_add(i as u64), len)
                })
                .collect();
            UdpSender {
                handle: sockets.add(s),
                datagrams,
                next: 0,
                replies: Vec::new(),
            }
        });
        let peer = SimPeer {
            config,
            iface,
            device,
            sockets,
            ends,
            udp,
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
            last_run: None,
            seen: 0,
            next_timer: Some(0),
            report,
        };
        peer.publish();
        peer
    }

    /// The peer's IP endpoint for the server it runs in outbound mode.
    pub fn server_endpoint(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.config.peer_ip.into(), self.config.port)
    }

    fn udp_due(&self) -> Option<Nanos> {
        let u = self.udp.as_ref()?;
        (u.next < u.datagrams.len()).then_some(UDP_INTERVAL * (u.next as u64 + 1))
    }

    fn run_at(&mut self, t: Nanos) {
        let ts = to_smoltcp(t);
        capture::muted(|| {
            if self.inbound.front().is_some_and(|(at, _)| *at <= t) {
                let (_, frame) = self.inbound.pop_front().expect("checked");
                self.device.offer(frame, 0);
                self.iface
                    .poll_ingress_single(ts, &mut self.device, &mut self.sockets);
            }
            self.drive_sockets(t);
            for _ in 0..10_000 {
                if self
                    .iface
                    .poll_egress(ts, &mut self.device, &mut self.sockets)
                    == PollResult::None
                {
                    break;
                }
            }
        });
        for e in self.device.take_emitted() {
            self.outbound
                .push_back((t + self.config.link_delay, e.frame));
        }
        self.last_run = Some(t);
        let at = self.iface.poll_at(ts, &self.sockets).map(from_smoltcp);
        // A timer that is still due right after running cannot do anything new before the next microsecond.
        self.next_timer = at.map(|a| if a <= t { t + 1000 } else { a });
        self.publish();
    }

    fn drive_sockets(&mut self, t: Nanos) {
        for end in &mut self.ends {
            let s = self.sockets.get_mut::<tcp::Socket>(end.handle);
            if s.state() == tcp::State::Established {
                end.established = true;
                end.remote = s
                    .remote_endpoint()
                    .map(|e| std::net::SocketAddr::new(e.addr.into(), e.port));
            }
            let mut buf = [0u8; 16 * 1024];
            while s.can_recv() {
                match s.recv_slice(&mut buf) {
                    Ok(n) if n > 0 => {
                        end.received.update(&buf[..n]);
                        if end.server {
                            end.echo_backlog.extend_from_slice(&buf[..n]);
                        }
                    }
                    _ => break,
                }
            }
            if end.server {
                if !end.echo_backlog.is_empty()
                    && s.can_send()
                    && let Ok(n) = s.send_slice(&end.echo_backlog)
                {
                    end.sent_digest.update(&end.echo_backlog[..n]);
                    end.echo_backlog.drain(..n);
                }
                if end.established
                    && !s.may_recv()
                    && end.echo_backlog.is_empty()
                    && !end.closed_write
                {
                    s.close();
                    end.closed_write = true;
                }
                continue;
            }
            while end.sent < end.payload.len() && s.can_send() {
                match s.send_slice(&end.payload[end.sent..]) {
                    Ok(n) if n > 0 => {
                        end.sent_digest.update(&end.payload[end.sent..end.sent + n]);
                        end.sent += n;
                    }
                    _ => break,
                }
            }
            if end.sent == end.payload.len() && end.established && !end.closed_write {
                s.close();
                end.closed_write = true;
            }
        }
        if let Some(u) = &mut self.udp {
            let s = self.sockets.get_mut::<udp::Socket>(u.handle);
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = s.recv_slice(&mut buf) {
                u.replies.push(StreamDigest::of(&buf[..n]));
            }
            while u.next < u.datagrams.len() && UDP_INTERVAL * (u.next as u64 + 1) <= t {
                let dst = IpEndpoint::new(IpAddress::Ipv4(self.config.stack_ip), self.config.port);
                if s.send_slice(&u.datagrams[u.next], dst).is_err() {
                    break;
                }
                u.next += 1;
            }
        }
    }

    fn end_done(&self, end: &TcpEnd) -> bool {
        let s = self.sockets.get::<tcp::Socket>(end.handle);
        let finished_state = matches!(s.state(), tcp::State::TimeWait | tcp::State::Closed);
        finished_state && end.closed_write && end.established
    }

    fn udp_done(&self) -> bool {
        match &self.udp {
            None => true,
            Some(u) if u.next < u.datagrams.len() => false,
            Some(u) if self.config.udp_echo => u.replies.len() >= u.datagrams.len(),
            Some(_) => self.seen >= self.udp_deadline(),
        }
    }

    fn udp_deadline(&self) -> Nanos {
        UDP_INTERVAL * (self.config.udp as u64) + UDP_GRACE
    }

    fn publish(&self) {
        let mut r = self.report.borrow_mut();
        r.clients = self
            .ends
            .iter()
            .map(|end| {
                let s = self.sockets.get::<tcp::Socket>(end.handle);
                ClientOutcome {
                    local_port: end.local_port,
                    remote: end.remote,
                    sent: end.sent_digest,
                    received: end.received,
                    state: s.state().to_string(),
                    completed: self.end_done(end),
                    reset: end.established && s.state() == tcp::State::Closed && !end.closed_write,
                }
            })
            .collect();
        r.udp = self.udp.as_ref().map(|u| UdpOutcome {
            sent: u.datagrams[..u.next]
                .iter()
                .map(|d| StreamDigest::of(d))
                .collect(),
            replies: u.replies.clone(),
        });
        r.peer_done = self.ends.iter().all(|e| self.end_done(e)) && self.udp_done();
    }
}

impl Wire for SimPeer {
    fn advance(&mut self, now: Nanos) {
        loop {
            let next = [
                self.inbound.front().map(|(t, _)| *t),
                self.next_timer,
                self.udp_due(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= now => self.run_at(t.max(self.last_run.unwrap_or(0))),
                _ => break,
            }
        }
        self.seen = self.seen.max(now);
        self.publish();
    }

    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>> {
        if self.outbound.front().is_some_and(|(t, _)| *t <= now) {
            return self.outbound.pop_front().map(|(_, f)| f);
        }
        None
    }

    fn transmit(&mut self, now: Nanos, frame: &[u8]) {
        self.inbound
            .push_back((now + self.config.link_delay, frame.to_vec()));
    }

    fn next_event(&self) -> Option<Nanos> {
        let grace = (!self.udp_done() && !self.config.udp_echo && self.udp.is_some())
            .then(|| self.udp_deadline());
        [
            self.inbound.front().map(|(t, _)| *t),
            self.outbound.front().map(|(t, _)| *t),
            self.next_timer,
            self.udp_due(),
            grace,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_done(&self) -> bool {
        self.outbound.is_empty() && self.inbound.is_empty() && self.report.borrow().peer_done
    }
}
