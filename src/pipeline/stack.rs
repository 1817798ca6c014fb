//! The smoltcp adapter: one `Interface`, its sockets and the step device, driven in windows. A window is one
//! bounded stretch of smoltcp work — one rx frame (ingress then egress until quiet), one round of due timers,
//! or the egress that app writes made possible — and everything emitted and logged inside it belongs to it.
//! It also keeps listening sockets in supply, because smoltcp has no backlog (docs/architecture.md,
//! "What smoltcp tells us").

use std::collections::BTreeMap;
use std::net::SocketAddr;

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv6Address};

mod fragments;

pub use fragments::{
    Fragment, FragmentState, Fragments, MAX_DATAGRAM, REASSEMBLY_BUFFERS, REASSEMBLY_TIMEOUT_NS,
    Unfinished,
};

use super::capture::{self, LogLine};
use super::clock::{Nanos, from_smoltcp, to_smoltcp};
use super::device::{Emitted, StepDevice};

/// TCP socket buffer sizes, per direction: 64 KiB less one byte, the largest that needs no window scaling.
/// smoltcp 0.14 offers a window scale of 1 for a 64 KiB receive buffer, and then judges the segments that
/// follow its SYN-ACK by that SYN-ACK's unscaled window shifted by the scale (tcp.rs, `process`): up to
/// 128 KiB, twice the buffer, so a segment just past the buffer was taken and written short (a debug
/// assertion, `len_written == payload_len`; in release, bytes the assembler counts and the buffer never
/// got). At 65535 bytes the scale is 0 and the window smoltcp checks is the one it has.
pub const TCP_BUFFER: usize = 64 * 1024 - 1;
/// The largest UDP payload over a 1500-byte IP MTU.
pub const MAX_UDP_PAYLOAD: usize = 1472;
/// UDP sockets hold many datagrams, and their payload storage holds at least two of the largest (the
/// ring-contiguity rule: a datagram that would wrap needs room for itself at the front too).
pub const UDP_PACKETS: usize = 32;
pub const UDP_PAYLOAD_BUFFER: usize = UDP_PACKETS * MAX_UDP_PAYLOAD;

#[derive(Debug, Clone)]
pub struct StackConfig {
    pub mac: [u8; 6],
    pub ipv4: (Ipv4Address, u8),
    pub ipv6: Option<(Ipv6Address, u8)>,
    pub random_seed: u64,
    /// Listening sockets kept idle per TCP port, beyond those already turned into connections.
    pub spare_listeners: usize,
    /// smoltcp's delayed ACK. `None` (deterministic runs): an ACK goes out in the window of the frame that
    /// earned it. A live run may delay ACKs as kernels do, halving the frames a bulk receiver sends.
    pub ack_delay_ms: Option<u64>,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            mac: [0x02, 0, 0, 0, 0, 0x01],
            ipv4: (Ipv4Address::new(10, 0, 0, 1), 24),
            ipv6: Some((Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1), 64)),
            random_seed: 0,
            spare_listeners: 2,
            ack_delay_ms: None,
        }
    }
}

/// What one window produced.
#[derive(Debug, Default)]
pub struct Window {
    /// Frames sent during ingress itself: the immediate replies (RST, ICMP, ARP, challenge ACK).
    pub immediate: Vec<Emitted>,
    /// Frames sent by the egress passes that followed.
    pub egress: Vec<Emitted>,
    pub logs: Vec<LogLine>,
}

impl Window {
    pub fn all_emitted(self) -> (Vec<Emitted>, Vec<LogLine>) {
        let mut all = self.immediate;
        all.extend(self.egress);
        (all, self.logs)
    }
}

pub struct Stack {
    /// Boxed: with fragmentation on, smoltcp keeps a 64 KiB tx fragmentation buffer inside the
    /// `Interface`, too large to move around on the stack with the pipeline.
    pub iface: Box<Interface>,
    pub device: StepDevice,
    pub sockets: SocketSet<'static>,
    pub mac: [u8; 6],
    /// The IP fragments on their way to a datagram (`fragments.rs`): smoltcp reassembles IPv4 itself, this
    /// table reassembles IPv6 and follows both.
    pub fragments: Fragments,
    listeners: BTreeMap<u16, Vec<SocketHandle>>,
    spare_listeners: usize,
    ack_delay: Option<smoltcp::time::Duration>,
    /// The smoltcp instant of the last timer window, so a timer that stays due without doing anything
    /// cannot make the pipeline spin at one instant.
    last_timer_at: Option<i64>,
}

impl Stack {
    pub fn new(config: &StackConfig) -> Self {
        let mut device = StepDevice::new();
        let hw = HardwareAddress::Ethernet(EthernetAddress(config.mac));
        let mut iface_config = Config::new(hw);
        iface_config.random_seed = config.random_seed;
        let mut iface = Box::new(Interface::new(iface_config, &mut device, to_smoltcp(0)));
        // The table of fragments expires datagrams on the same clock (smoltcp's default, said here so the
        // two cannot drift apart).
        iface.set_reassembly_timeout(smoltcp::time::Duration::from_micros(
            REASSEMBLY_TIMEOUT_NS / 1000,
        ));
        iface.update_ip_addrs(|addrs| {
            let (v4, len) = config.ipv4;
            // Two slots exist (IFACE_MAX_ADDR_COUNT); both pushes fit.
            let _ = addrs.push(IpCidr::new(v4.into(), len));
            if let Some((v6, len)) = config.ipv6 {
                let _ = addrs.push(IpCidr::new(v6.into(), len));
            }
        });
        Stack {
            iface,
            device,
            sockets: SocketSet::new(vec![]),
            mac: config.mac,
            fragments: Fragments::default(),
            listeners: BTreeMap::new(),
            spare_listeners: config.spare_listeners.max(1),
            ack_delay: config
                .ack_delay_ms
                .map(smoltcp::time::Duration::from_millis),
            last_timer_at: None,
        }
    }

    /// A TCP socket with this stack's ACK delay.
    pub fn tcp_socket(&self) -> tcp::Socket<'static> {
        let mut s = Self::new_tcp_socket();
        s.set_ack_delay(self.ack_delay);
        s
    }

    pub fn new_tcp_socket() -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        // Deterministic runs: ACKs go out in the window of the frame that earned them, not on a 10 ms timer.
        s.set_ack_delay(None);
        s
    }

    /// Start listening on a TCP port; returns the handles of the listening sockets created.
    pub fn listen_tcp(&mut self, port: u16) -> Vec<SocketHandle> {
        let mut created = Vec::new();
        while self.listeners.get(&port).map_or(0, Vec::len) < self.spare_listeners {
            let mut s = self.tcp_socket();
            // A fresh socket listening on a non-zero port cannot fail.
            let _ = s.listen(port);
            let h = self.sockets.add(s);
            self.listeners.entry(port).or_default().push(h);
            created.push(h);
        }
        created
    }

    pub fn bind_udp(&mut self, port: u16) -> SocketHandle {
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_PAYLOAD_BUFFER],
            )
        };
        let mut s = udp::Socket::new(buffer(), buffer());
        let _ = s.bind(port);
        self.sockets.add(s)
    }

    /// Listening sockets that a SYN has taken since the last call (they are now connections), after which the
    /// supply is replenished. Returns (port, taken handle) pairs and the new listeners' handles.
    pub fn take_accepted(&mut self) -> (Vec<(u16, SocketHandle)>, Vec<SocketHandle>) {
        let mut taken = Vec::new();
        for (&port, handles) in self.listeners.iter_mut() {
            handles.retain(|&h| {
                let listening = self.sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen;
                if !listening {
                    taken.push((port, h));
                }
                listening
            });
        }
        let mut created = Vec::new();
        if !taken.is_empty() {
            let ports: Vec<u16> = self.listeners.keys().copied().collect();
            for port in ports {
                created.extend(self.listen_tcp(port));
            }
        }
        (taken, created)
    }

    /// The listener smoltcp tries first for a new SYN on `port` (sockets are tried in set order).
    pub fn first_listener(&self, port: u16) -> Option<SocketHandle> {
        self.listeners
            .get(&port)
            .and_then(|v| v.iter().min().copied())
    }

    pub fn ipv4(&self) -> Ipv4Address {
        self.iface
            .ip_addrs()
            .iter()
            .find_map(|c| match c.address() {
                smoltcp::wire::IpAddress::Ipv4(a) => Some(a),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .unwrap_or(Ipv4Address::UNSPECIFIED)
    }

    pub fn is_listening_port(&self, port: u16) -> bool {
        self.listeners.contains_key(&port)
    }

    /// Feed exactly one frame: ingress, then egress until smoltcp has nothing more to send.
    pub fn ingress(&mut self, now: Nanos, frame: Vec<u8>, meta_id: u32) -> Window {
        let t = to_smoltcp(now);
        let _stale = capture::take();
        self.device.offer(frame, meta_id);
        self.iface
            .poll_ingress_single(t, &mut self.device, &mut self.sockets);
        let immediate = self.device.take_emitted();
        self.drain_egress(t);
        Window {
            immediate,
            egress: self.device.take_emitted(),
            logs: capture::take(),
        }
    }

    /// Egress after app activity (writes, connects, closes).
    pub fn egress(&mut self, now: Nanos) -> Window {
        let t = to_smoltcp(now);
        let _stale = capture::take();
        self.drain_egress(t);
        Window {
            immediate: Vec::new(),
            egress: self.device.take_emitted(),
            logs: capture::take(),
        }
    }

    /// When smoltcp next wants to run a timer, if ever.
    pub fn next_timer(&mut self, now: Nanos) -> Option<Nanos> {
        let at = self.iface.poll_at(to_smoltcp(now), &self.sockets)?;
        let at_ns = from_smoltcp(at);
        match self.last_timer_at {
            // Already ran at that instant: the earliest it can do anything new is the next microsecond.
            Some(last) if at.total_micros() <= last => Some(((last + 1) as u64) * 1000),
            _ => Some(at_ns),
        }
    }

    /// Run due timers (retransmission, TIME-WAIT, zero-window probes, keep-alives).
    pub fn timers(&mut self, now: Nanos) -> Window {
        self.last_timer_at = Some(to_smoltcp(now).total_micros());
        self.egress(now)
    }

    fn drain_egress(&mut self, t: smoltcp::time::Instant) {
        // Bounded: each pass that emits moves a socket's state forward; the cap only guards against a bug.
        for _ in 0..10_000 {
            if self
                .iface
                .poll_egress(t, &mut self.device, &mut self.sockets)
                == PollResult::None
            {
                break;
            }
        }
    }
}

/// A smoltcp endpoint as a std socket address.
pub(crate) fn endpoint_addr(e: smoltcp::wire::IpEndpoint) -> SocketAddr {
    SocketAddr::new(e.addr.into(), e.port)
}
