//! Frame dissector: Ethernet frame bytes → layers, summary and flow key; never panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Packet,
    Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// Everything the dissector could learn about one Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub len: usize,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub ethertype: u16,
    pub net: Net,
    pub transport: Transport,
    /// First layer that failed to parse, e.g. "truncated IPv4 header".
    pub malformed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    None,
    Ipv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        ttl: u8,
        header_checksum_ok: bool,
        fragment: bool,
    },
    Ipv6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        hop_limit: u8,
    },
    Arp {
        operation: u16,
        sender_mac: [u8; 6],
        sender_ip: Ipv4Addr,
        target_mac: [u8; 6],
        target_ip: Ipv4Addr,
    },
    Other {
        ethertype: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub urg: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    None,
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        window: u16,
        payload_len: usize,
        checksum_ok: bool,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        payload_len: usize,
        checksum_ok: bool,
    },
    Icmpv4 {
        icmp_type: u8,
        code: u8,
    },
    Icmpv6 {
        icmp_type: u8,
        code: u8,
    },
    Other {
        protocol: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Transport 5-tuple as seen from the frame's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    /// The same flow seen from the other end.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
        }
    }
}

/// "02:00:00:00:00:01"
pub fn format_mac(mac: &[u8; 6]) -> String {
    // By hand rather than six `format!`s and a join: every exported packet's summary may need two of these.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// Dissect one Ethernet frame. Never panics; parsing stops at the first bad layer.
pub fn dissect(frame: &[u8]) -> FrameInfo {
    let mut info = FrameInfo {
        len: frame.len(),
        dst_mac: [0; 6],
        src_mac: [0; 6],
        ethertype: 0,
        net: Net::None,
        transport: Transport::None,
        malformed: None,
    };
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        info.set_malformed("truncated Ethernet header");
        return info;
    };
    (info.dst_mac, info.src_mac) = (eth.dst_addr().0, eth.src_addr().0);
    info.ethertype = u16::from(eth.ethertype());
    let b = eth.payload();
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => dissect_ipv4(&mut info, b),
        EthernetProtocol::Ipv6 => dissect_ipv6(&mut info, b),
        EthernetProtocol::Arp => dissect_arp(&mut info, b),
        _ => {
            info.net = Net::Other {
                ethertype: info.ethertype,
            }
        }
    }
    info
}

fn dissect_ipv4(info: &mut FrameInfo, b: &[u8]) {
    let ip = match Ipv4Packet::new_checked(b) {
        Ok(ip) if ip.version() == 4 => ip,
        Ok(ip) => return info.set_malformed(&format!("bad IPv4 version {}", ip.version())),
        Err(_) => {
            // Say why, using bounds-checked reads of the raw header.
            let ihl = b.first().map_or(0, |v| usize::from(v & 0x0f) * 4);
            let total = b
                .get(2..4)
                .map_or(0, |t| usize::from(t[0]) << 8 | usize::from(t[1]));
            let why = if b.len() < ihl.max(20) {
                "truncated IPv4 header"
            } else if ihl >= 20 && total >= ihl {
                "truncated IPv4 packet"
            } else {
                "bad IPv4 length field"
            };
            return info.set_malformed(why);
        }
    };
    let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), u8::from(ip.next_header()));
    let fragment = ip.more_frags() || ip.frag_offset() != 0;
    let (ttl, header_checksum_ok) = (ip.hop_limit(), ip.verify_checksum());
    info.net = Net::Ipv4 {
        src,
        dst,
        protocol,
        ttl,
        header_checksum_ok,
        fragment,
    };
    if !fragment {
        dissect_transport(info, protocol, src.into(), dst.into(), ip.payload());
    }
}

fn dissect_ipv6(info: &mut FrameInfo, b: &[u8]) {
    let ip = match Ipv6Packet::new_checked(b) {
        Ok(ip) if ip.version() == 6 => ip,
        Ok(ip) => return info.set_malformed(&format!("bad IPv6 version {}", ip.version())),
        Err(_) if b.len() < 40 => return info.set_malformed("truncated IPv6 header"),
        Err(_) => return info.set_malformed("truncated IPv6 payload"),
    };
    let (src, dst, next_header) = (ip.src_addr(), ip.dst_addr(), u8::from(ip.next_header()));
    let hop_limit = ip.hop_limit();
    info.net = Net::Ipv6 {
        src,
        dst,
        next_header,
        hop_limit,
    };
    dissect_transport(info, next_header, src.into(), dst.into(), ip.payload());
}

fn dissect_arp(info: &mut FrameInfo, b: &[u8]) {
    let Ok(pkt) = ArpPacket::new_checked(b) else {
        return info.set_malformed("truncated ARP packet");
    };
    match ArpRepr::parse(&pkt) {
        Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sm,
            source_protocol_addr: sender_ip,
            target_hardware_addr: tm,
            target_protocol_addr: target_ip,
        }) => {
            let (operation, sender_mac, target_mac) = (u16::from(operation), sm.0, tm.0);
            info.net = Net::Arp {
                operation,
                sender_mac,
                sender_ip,
                target_mac,
                target_ip,
            };
        }
        _ => info.set_malformed("unsupported ARP hardware/protocol type"),
    }
}

/// `payload` is exactly the IP payload (Ethernet padding already excluded).
fn dissect_transport(info: &mut FrameInfo, proto: u8, src: IpAddress, dst: IpAddress, b: &[u8]) {
    let v6 = matches!(src, IpAddress::Ipv6(_));
    info.transport = match IpProtocol::from(proto) {
        IpProtocol::Tcp => match TcpPacket::new_checked(b) {
            Ok(tcp) => Transport::Tcp {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                seq: tcp.seq_number().0 as u32,
                ack: tcp.ack_number().0 as u32,
                flags: TcpFlags {
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                    psh: tcp.psh(),
                    urg: tcp.urg(),
                },
                window: tcp.window_len(),
                payload_len: b.len().saturating_sub(usize::from(tcp.header_len())),
                checksum_ok: tcp.verify_checksum(&src, &dst),
            },
            Err(_) if b.len() >= 20 && b[12] >> 4 < 5 => {
                return info.set_malformed("bad TCP data offset");
            }
            Err(_) => return info.set_malformed("truncated TCP header"),
        },
        IpProtocol::Udp => match UdpPacket::new_checked(b) {
            Ok(udp) => Transport::Udp {
                src_port: udp.src_port(),
                dst_port: udp.dst_port(),
                payload_len: usize::from(udp.len()).saturating_sub(8),
                checksum_ok: udp.verify_checksum(&src, &dst),
            },
            Err(_) if b.len() < 8 => return info.set_malformed("truncated UDP header"),
            Err(_) => return info.set_malformed("bad UDP length"),
        },
        IpProtocol::Icmp if !v6 => match Icmpv4Packet::new_checked(b) {
            Ok(p) => Transport::Icmpv4 {
                icmp_type: p.msg_type().into(),
                code: p.msg_code(),
            },
            Err(_) => return info.set_malformed("truncated ICMP header"),
        },
        // smoltcp's check rejects ICMPv6 types it does not know, so read type/code directly.
        IpProtocol::Icmpv6 if v6 => match (Icmpv6Packet::new_checked(b), b.get(..4)) {
            (Ok(p), _) => Transport::Icmpv6 {
                icmp_type: p.msg_type().into(),
                code: p.msg_code(),
            },
            (Err(_), Some(h)) => Transport::Icmpv6 {
                icmp_type: h[0],
                code: h[1],
            },
            (Err(_), None) => return info.set_malformed("truncated ICMPv6 header"),
        },
        _ => Transport::Other { protocol: proto },
    };
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        _ => p.to_string(),
    }
}

fn icmp_name(v6: bool, t: u8, code: u8) -> String {
    let name = match (v6, t, code) {
        (false, 8, _) | (true, 128, _) => "echo request",
        (false, 0, _) | (true, 129, _) => "echo reply",
        (false, 3, 3) => "port unreachable",
        (true, 133, _) => "router solicitation",
        (true, 134, _) => "router advertisement",
        (true, 135, _) => "neighbor solicitation",
        (true, 136, _) => "neighbor advertisement",
        _ => return format!("type {t} code {code}"),
    };
    name.to_string()
}

impl TcpFlags {
    /// tcpdump order: S F R P U, then "." for ACK; "none" if no flag is set.
    pub fn letters(&self) -> String {
        let mut s = String::with_capacity(6);
        self.push_letters(&mut s);
        s
    }

    fn push_letters(&self, line: &mut String) {
        let all = [self.syn, self.fin, self.rst, self.psh, self.urg, self.ack];
        let start = line.len();
        for (_, letter) in all.iter().zip("SFRPU.".chars()).filter(|f| *f.0) {
            line.push(letter);
        }
        if line.len() == start {
            line.push_str("none");
        }
    }
}

/// Appends to a summary line without `format!`: the summary is made for every exported packet, and the
/// formatting machinery (an address is a dozen nested `Display` calls) was most of the export's cost per packet.
trait SummaryLine {
    fn num(&mut self, n: impl itoa::Integer) -> &mut Self;
    fn addr(&mut self, a: SocketAddr) -> &mut Self;
    fn text(&mut self, s: &str) -> &mut Self;
}

impl SummaryLine for String {
    fn num(&mut self, n: impl itoa::Integer) -> &mut Self {
        self.push_str(itoa::Buffer::new().format(n));
        self
    }

    fn addr(&mut self, a: SocketAddr) -> &mut Self {
        match a {
            SocketAddr::V4(v4) => {
                for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        self.push('.');
                    }
                    self.num(octet);
                }
                self.push(':');
                self.num(v4.port())
            }
            // IPv6 text (zero compression, embedded IPv4) is the standard library's to get right.
            SocketAddr::V6(_) => {
                use std::fmt::Write;
                let _ = write!(self, "{a}");
                self
            }
        }
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.push_str(s);
        self
    }
}

/// `describe`'s detail lines, formatted only when wanted.
struct Lines {
    lines: Vec<String>,
    on: bool,
}

impl Lines {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.on {
            self.lines.push(line());
        }
    }
}

fn ok_str(ok: bool) -> &'static str {
    if ok { "ok" } else { "BAD" }
}

impl FrameInfo {
    fn set_malformed(&mut self, what: &str) {
        self.malformed.get_or_insert_with(|| what.to_string());
    }

    /// One pass over the layers: (summary line, detail lines). With `details` false the detail lines are
    /// left out (empty): the summary alone is made for every exported packet, and the detail lines' formatting
    /// was most of its cost.
    fn describe(&self, details: bool) -> (String, Vec<String>) {
        let macs = || (format_mac(&self.src_mac), format_mac(&self.dst_mac));
        let et = self.ethertype;
        let mut v = Lines {
            lines: Vec::new(),
            on: details,
        };
        if self.len >= 14 {
            let names = [(0x0800, "IPv4"), (0x86dd, "IPv6"), (0x0806, "ARP")];
            let name = names.iter().find(|n| n.0 == et).map(|n| n.1.to_string());
            let ty = name.unwrap_or_else(|| format!("0x{et:04x}"));
            v.push(|| {
                let (smac, dmac) = macs();
                format!("Ethernet {smac} > {dmac} type {ty}")
            });
        }
        let mut bad = false;
        let (s, d, proto): (IpAddr, IpAddr, u8) = match &self.net {
            Net::Ipv4 {
                src,
                dst,
                protocol: p,
                ttl,
                header_checksum_ok: ok,
                fragment,
            } => {
                let frag = if *fragment { " fragment" } else { "" };
                let (name, k) = (proto_name(*p), ok_str(*ok));
                v.push(|| format!("IPv4 {src} > {dst} proto {name} ttl {ttl} checksum {k}{frag}"));
                bad |= !ok;
                ((*src).into(), (*dst).into(), *p)
            }
            Net::Ipv6 {
                src,
                dst,
                next_header: p,
                hop_limit: h,
            } => {
                let name = proto_name(*p);
                v.push(|| format!("IPv6 {src} > {dst} next-header {name} hop-limit {h}"));
                ((*src).into(), (*dst).into(), *p)
            }
            Net::Arp {
                operation: op,
                sender_mac,
                sender_ip: si,
                target_mac,
                target_ip: ti,
            } => {
                let (sm, tm) = (format_mac(sender_mac), format_mac(target_mac));
                v.push(|| format!("ARP op {op} sender {sm} {si} target {tm} {ti}"));
                let line = match op {
                    1 => format!("ARP who-has {ti} tell {si}"),
                    2 => format!("ARP {si} is-at {sm}"),
                    _ => format!("ARP op {op} {si} > {ti}"),
                };
                return self.finish(line, v, false);
            }
            Net::Other { .. } | Net::None => {
                let (smac, dmac) = macs();
                let line = format!("{smac} > {dmac} ethertype 0x{et:04x} len={}", self.len);
                return self.finish(line, v, false);
            }
        };
        let line = match &self.transport {
            Transport::Tcp {
                src_port: a,
                dst_port: b,
                seq,
                ack,
                flags,
                window: w,
                payload_len: n,
                checksum_ok: ok,
            } => {
                let k = ok_str(*ok);
                v.push(|| {
                    let f = flags.letters();
                    format!(
                        "TCP {a} > {b} seq={seq} ack={ack} flags [{f}] win={w} payload {n} checksum {k}"
                    )
                });
                let (s, d) = (SocketAddr::new(s, *a), SocketAddr::new(d, *b));
                bad |= !ok;
                let mut line = String::with_capacity(96);
                line.addr(s).text(" > ").addr(d).text(" TCP [");
                flags.push_letters(&mut line);
                line.text("] seq=").num(*seq);
                if flags.ack {
                    line.text(" ack=").num(*ack);
                }
                line.text(" win=").num(*w).text(" len=").num(*n);
                line
            }
            Transport::Udp {
                src_port: a,
                dst_port: b,
                payload_len: n,
                checksum_ok: ok,
            } => {
                let k = ok_str(*ok);
                v.push(|| format!("UDP {a} > {b} payload {n} checksum {k}"));
                let (s, d) = (SocketAddr::new(s, *a), SocketAddr::new(d, *b));
                bad |= !ok;
                let mut line = String::with_capacity(64);
                line.addr(s).text(" > ").addr(d).text(" UDP len=").num(*n);
                line
            }
            Transport::Icmpv4 { icmp_type: t, code } => {
                v.push(|| format!("ICMP type {t} code {code}"));
                format!("{s} > {d} ICMP {}", icmp_name(false, *t, *code))
            }
            Transport::Icmpv6 { icmp_type: t, code } => {
                v.push(|| format!("ICMPv6 type {t} code {code}"));
                format!("{s} > {d} ICMP6 {}", icmp_name(true, *t, *code))
            }
            Transport::Other { protocol: p } => {
                v.push(|| format!("Payload protocol {}", proto_name(*p)));
                format!("{s} > {d} proto {}", proto_name(*p))
            }
            Transport::None => {
                let frag = matches!(self.net, Net::Ipv4 { fragment: true, .. });
                let frag = if frag { " fragment" } else { "" };
                format!("{s} > {d} proto {}{frag}", proto_name(proto))
            }
        };
        self.finish(line, v, bad)
    }

    fn finish(&self, mut line: String, mut v: Lines, bad: bool) -> (String, Vec<String>) {
        if bad {
            line.push_str(" bad-checksum");
        }
        if let Some(m) = &self.malformed {
            line.push_str(&format!(" (malformed: {m})"));
            v.push(|| format!("Malformed: {m}"));
        }
        (line, v.lines)
    }

    /// tcpdump-like one-liner, e.g. "10.0.0.2:40000 > 10.0.0.1:7 TCP [S] seq=1000 win=64240 len=0";
    /// " bad-checksum" marks a wrong IPv4/TCP/UDP checksum, " (malformed: …)" an early stop.
    pub fn summary(&self) -> String {
        self.describe(false).0
    }

    /// Layer-by-layer lines for a detail pane ("Ethernet …", "IPv4 …", "TCP …", "Malformed: …").
    pub fn layers(&self) -> Vec<String> {
        self.describe(true).1
    }

    /// The transport 5-tuple seen from the frame's sender, if TCP or UDP over IPv4/IPv6.
    pub fn flow_key(&self) -> Option<FlowKey> {
        let (s, d): (IpAddr, IpAddr) = match self.net {
            Net::Ipv4 { src, dst, .. } => (src.into(), dst.into()),
            Net::Ipv6 { src, dst, .. } => (src.into(), dst.into()),
            _ => return None,
        };
        let (proto, a, b) = match self.transport {
            Transport::Tcp {
                src_port: a,
                dst_port: b,
                ..
            } => (Proto::Tcp, a, b),
            Transport::Udp {
                src_port: a,
                dst_port: b,
                ..
            } => (Proto::Udp, a, b),
            _ => return None,
        };
        let (src, dst) = (SocketAddr::new(s, a), SocketAddr::new(d, b));
        Some(FlowKey { proto, src, dst })
    }

    /// TCP payload length (from the IP length, so Ethernet padding is excluded); 0 if not TCP.
    pub fn tcp_payload_len(&self) -> usize {
        match self.transport {
            Transport::Tcp { payload_len, .. } => payload_len,
            _ => 0,
        }
    }

    /// Destination MAC is broadcast or has the multicast (group) bit set.
    pub fn is_broadcast_or_multicast_dst(&self) -> bool {
        EthernetAddress(self.dst_mac).is_multicast() // broadcast has the group bit too
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities as Caps;
    use smoltcp::wire::{ArpOperation as Op, EthernetRepr, Icmpv4Repr, Ipv4Repr, Ipv6Repr};
    use smoltcp::wire::{TcpControl as Ctl, TcpRepr, TcpSeqNumber as Seq, UdpRepr};

    const SRV_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const CLI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const SRV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const CLI: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn eth(ty: EthernetProtocol, src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let (src_addr, dst_addr) = (EthernetAddress(src), EthernetAddress(dst));
        let mut buf = vec![0u8; 14 + payload.len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr,
            dst_addr,
            ethertype: ty,
        }
        .emit(&mut frame);
        frame.payload_mut().copy_from_slice(payload);
        buf
    }

    /// IPv4 frame between CLI and SRV carrying `l4` (already checksummed for these addresses).
    fn v4(src: Ipv4Addr, dst: Ipv4Addr, next_header: IpProtocol, l4: &[u8]) -> Vec<u8> {
        let (payload_len, hop_limit) = (l4.len(), 64);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            payload_len,
            hop_limit,
        };
        let mut buf = vec![0u8; ip.buffer_len() + l4.len()];
        let mut pkt = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.emit(&mut pkt, &Caps::default());
        pkt.payload_mut().copy_from_slice(l4);
        let macs = if src == CLI {
            (CLI_MAC, SRV_MAC)
        } else {
            (SRV_MAC, CLI_MAC)
        };
        eth(EthernetProtocol::Ipv4, macs.0, macs.1, &buf)
    }

    /// TCP segment bytes checksummed for `ips`: window 64240, no options.
    fn seg(
        ips: (IpAddress, IpAddress),
        ports: (u16, u16),
        ctl: Ctl,
        seq: (i32, Option<i32>),
        payload: &[u8],
    ) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: ports.0,
            dst_port: ports.1,
            control: ctl,
            seq_number: Seq(seq.0),
            ack_number: seq.1.map(Seq),
            window_len: 64240,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let pkt = &mut TcpPacket::new_unchecked(&mut buf[..]);
        repr.emit(pkt, &ips.0, &ips.1, &Caps::default());
        buf
    }

    /// TCP over IPv4, client 10.0.0.2:40000 <-> server 10.0.0.1:7.
    fn tcp4(from_srv: bool, ctl: Ctl, seq: (i32, Option<i32>), payload: &[u8]) -> Vec<u8> {
        let (s, d, ports) = if from_srv {
            (SRV, CLI, (7, 40000))
        } else {
            (CLI, SRV, (40000, 7))
        };
        v4(
            s,
            d,
            IpProtocol::Tcp,
            &seg((s.into(), d.into()), ports, ctl, seq, payload),
        )
    }

    fn syn() -> Vec<u8> {
        tcp4(false, Ctl::Syn, (1000, None), &[])
    }

    fn arp(operation: Op, src: ([u8; 6], Ipv4Addr), dst: ([u8; 6], Ipv4Addr)) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: EthernetAddress(src.0),
            source_protocol_addr: src.1,
            target_hardware_addr: EthernetAddress(dst.0),
            target_protocol_addr: dst.1,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        let eth_dst = if operation == Op::Request {
            [0xff; 6]
        } else {
            dst.0
        };
        eth(EthernetProtocol::Arp, src.0, eth_dst, &buf)
    }

    fn dbg(x: &impl std::fmt::Debug) -> String {
        format!("{x:?}")
    }

    #[test]
    fn a_segment_without_flags_says_none_and_its_sequence_number_is_unsigned() {
        let frame = tcp4(false, Ctl::None, (-1, None), &[]);
        assert_eq!(
            dissect(&frame).summary(),
            "10.0.0.2:40000 > 10.0.0.1:7 TCP [none] seq=4294967295 win=64240 len=0"
        );
    }

    #[test]
    fn summaries() {
        let mut bad = tcp4(false, Ctl::Psh, (1001, Some(6)), b"hello");
        *bad.last_mut().unwrap() ^= 0xff;
        let (mut udp, s, d) = (vec![0u8; 8 + 64], CLI.into(), SRV.into());
        let pkt = &mut UdpPacket::new_unchecked(&mut udp[..]);
        let ports = UdpRepr {
            src_port: 5353,
            dst_port: 7,
        };
        ports.emit(pkt, &s, &d, 64, |p| p.fill(7), &Caps::default());
        let (ident, seq_no, data) = (1, 2, &b"ping"[..]);
        let echo = Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let mut icmp = vec![0u8; echo.buffer_len()];
        let pkt = &mut Icmpv4Packet::new_unchecked(&mut icmp[..]);
        echo.emit(pkt, &Caps::default());
        let lldp = EthernetProtocol::Unknown(0x88cc);
        let cases = [
            (
                syn(),
                "10.0.0.2:40000 > 10.0.0.1:7 TCP [S] seq=1000 win=64240 len=0",
            ),
            (
                tcp4(true, Ctl::Syn, (5, Some(1001)), &[]),
                "10.0.0.1:7 > 10.0.0.2:40000 TCP [S.] seq=5 ack=1001 win=64240 len=0",
            ),
            (
                tcp4(false, Ctl::Psh, (1001, Some(6)), &[0xab; 1448]),
                "10.0.0.2:40000 > 10.0.0.1:7 TCP [P.] seq=1001 ack=6 win=64240 len=1448",
            ),
            (
                bad,
                "10.0.0.2:40000 > 10.0.0.1:7 TCP [P.] seq=1001 ack=6 win=64240 len=5 bad-checksum",
            ),
            (
                v4(CLI, SRV, IpProtocol::Udp, &udp),
                "10.0.0.2:5353 > 10.0.0.1:7 UDP len=64",
            ),
            (
                v4(CLI, SRV, IpProtocol::Icmp, &icmp),
                "10.0.0.2 > 10.0.0.1 ICMP echo request",
            ),
            (
                arp(Op::Request, (CLI_MAC, CLI), ([0; 6], SRV)),
                "ARP who-has 10.0.0.1 tell 10.0.0.2",
            ),
            (
                arp(Op::Reply, (SRV_MAC, SRV), (CLI_MAC, CLI)),
                "ARP 10.0.0.1 is-at 02:00:00:00:00:01",
            ),
            (
                eth(lldp, CLI_MAC, SRV_MAC, &[0; 46]),
                "02:00:00:00:00:02 > 02:00:00:00:00:01 ethertype 0x88cc len=60",
            ),
        ];
        let mut infos = Vec::new();
        for (frame, want) in cases {
            infos.push(dissect(&frame));
            assert_eq!(infos.last().unwrap().summary(), want);
        }
        let fields: Vec<String> = infos.iter().map(|f| dbg(&f.transport)).collect();
        assert!(fields[2].contains("psh: true, urg: false }, window: 64240, payload_len: 1448,"));
        assert!(fields[2].starts_with("Tcp { src_port: 40000, dst_port: 7, seq: 1001, ack: 6, flags: TcpFlags { syn: false, ack: true, fin: false, rst: false,"));
        assert!(fields[3].ends_with("payload_len: 5, checksum_ok: false }"));
        assert_eq!(
            fields[4],
            "Udp { src_port: 5353, dst_port: 7, payload_len: 64, checksum_ok: true }"
        );
        assert_eq!(fields[5], "Icmpv4 { icmp_type: 8, code: 0 }");
        assert_eq!(
            dbg(&infos[6].net),
            "Arp { operation: 1, sender_mac: [2, 0, 0, 0, 0, 2], sender_ip: 10.0.0.2, target_mac: [0, 0, 0, 0, 0, 0], target_ip: 10.0.0.1 }"
        );
        assert_eq!(
            dbg(&infos[7].net),
            "Arp { operation: 2, sender_mac: [2, 0, 0, 0, 0, 1], sender_ip: 10.0.0.1, target_mac: [2, 0, 0, 0, 0, 2], target_ip: 10.0.0.2 }"
        );
        assert!(
            infos[6].is_broadcast_or_multicast_dst() && !infos[7].is_broadcast_or_multicast_dst()
        );
        assert_eq!(infos[8].net, Net::Other { ethertype: 0x88cc });
        let tcp_lens: Vec<usize> = infos.iter().map(FrameInfo::tcp_payload_len).collect();
        assert_eq!(tcp_lens, [0, 0, 1448, 5, 0, 0, 0, 0, 0]);
        let protos: Vec<_> = infos
            .iter()
            .map(|f| f.flow_key().map(|k| k.proto))
            .collect();
        let (t, u) = (Some(Proto::Tcp), Some(Proto::Udp));
        assert_eq!(protos, [t, t, t, t, u, None, None, None, None]);
    }

    #[test]
    fn tcp_syn_fields_flow_key_and_layers() {
        let f = dissect(&syn());
        assert_eq!(
            (f.len, f.src_mac, f.dst_mac, f.ethertype),
            (54, CLI_MAC, SRV_MAC, 0x0800)
        );
        assert_eq!(
            dbg(&f.net),
            "Ipv4 { src: 10.0.0.2, dst: 10.0.0.1, protocol: 6, ttl: 64, header_checksum_ok: true, fragment: false }"
        );
        let flags =
            "TcpFlags { syn: true, ack: false, fin: false, rst: false, psh: false, urg: false }";
        let want = format!(
            "Tcp {{ src_port: 40000, dst_port: 7, seq: 1000, ack: 0, flags: {flags}, window: 64240, payload_len: 0, checksum_ok: true }}"
        );
        assert_eq!((dbg(&f.transport), f.malformed.clone()), (want, None));
        let layers = [
            "Ethernet 02:00:00:00:00:02 > 02:00:00:00:00:01 type IPv4",
            "IPv4 10.0.0.2 > 10.0.0.1 proto TCP ttl 64 checksum ok",
            "TCP 40000 > 7 seq=1000 ack=0 flags [S] win=64240 payload 0 checksum ok",
        ];
        assert_eq!(f.layers(), layers);
        let key = f.flow_key().unwrap();
        assert_eq!(
            dbg(&key),
            "FlowKey { proto: Tcp, src: 10.0.0.2:40000, dst: 10.0.0.1:7 }"
        );
        assert_eq!(
            (key.reversed().src, key.reversed().reversed()),
            (key.dst, key)
        );
        let f = dissect(&tcp4(true, Ctl::Syn, (5, Some(1001)), &[]));
        assert_eq!(f.flow_key(), Some(key.reversed()));
    }

    #[test]
    fn ipv4_header_checksum_and_ipv6() {
        let mut frame = syn();
        frame[14 + 8] = 1; // TTL: now the IPv4 header checksum is wrong, TCP's is not
        let f = dissect(&frame);
        assert!(dbg(&f.net).ends_with("ttl: 1, header_checksum_ok: false, fragment: false }"));
        assert!(dbg(&f.transport).ends_with("checksum_ok: true }"));
        assert!(f.summary().ends_with("len=0 bad-checksum"));
        assert!(f.layers()[1].ends_with("ttl 1 checksum BAD"));

        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("fd00::2".parse().unwrap(), "fd00::1".parse().unwrap());
        let l4 = seg(
            (src.into(), dst.into()),
            (40000, 7),
            Ctl::Syn,
            (1000, None),
            &[],
        );
        let (next_header, payload_len, hop_limit) = (IpProtocol::Tcp, l4.len(), 64);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header,
            payload_len,
            hop_limit,
        };
        let mut buf = vec![0u8; ip.buffer_len() + l4.len()];
        let mut pkt = Ipv6Packet::new_unchecked(&mut buf[..]);
        ip.emit(&mut pkt);
        pkt.payload_mut().copy_from_slice(&l4);
        let f = dissect(&eth(EthernetProtocol::Ipv6, CLI_MAC, SRV_MAC, &buf));
        assert_eq!(
            f.summary(),
            "[fd00::2]:40000 > [fd00::1]:7 TCP [S] seq=1000 win=64240 len=0"
        );
        assert_eq!(
            dbg(&f.net),
            "Ipv6 { src: fd00::2, dst: fd00::1, next_header: 6, hop_limit: 64 }"
        );
        assert!(dbg(&f.transport).ends_with("payload_len: 0, checksum_ok: true }"));
        assert_eq!(dbg(&f.flow_key().unwrap().src), "[fd00::2]:40000");
    }

    #[test]
    fn truncated_and_garbage_frames_never_panic() {
        let frame = tcp4(false, Ctl::Psh, (1001, Some(6)), b"12345678");
        for n in 0..=frame.len() {
            let f = dissect(&frame[..n]);
            let _ = (f.summary(), f.layers(), f.flow_key(), f.tcp_payload_len());
            assert_eq!(f.malformed.is_none(), n == frame.len(), "prefix {n}");
        }
        let empty = dissect(&[]);
        assert_eq!((empty.dst_mac, empty.ethertype), ([0; 6], 0));
        let why = |n: usize| dissect(&frame[..n]).malformed.unwrap_or_default();
        assert_eq!(
            [why(0), why(24)],
            ["truncated Ethernet header", "truncated IPv4 header"]
        );
        let cut = "02:00:00:00:00:02 > 02:00:00:00:00:01 ethertype 0x0800 len=40 (malformed: truncated IPv4 packet)";
        assert_eq!(dissect(&frame[..40]).summary(), cut);
        // IPv4 total length says 30: the IP layer parses, the TCP header is cut short.
        let mut short = frame.clone();
        short[16..18].copy_from_slice(&30u16.to_be_bytes());
        let f = dissect(&short);
        let want = "10.0.0.2 > 10.0.0.1 proto TCP bad-checksum (malformed: truncated TCP header)";
        assert_eq!(f.summary(), want);
        assert_eq!(
            f.layers().last().unwrap(),
            "Malformed: truncated TCP header"
        );
        let mut x: u32 = 12345; // pseudo-random garbage behind each ethertype we parse
        for i in 0..4000 {
            let mut rand = || {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            };
            let mut buf: Vec<u8> = (0..i % 120).map(|_| rand()).collect();
            if buf.len() >= 15 {
                let ty = [0x0800u16, 0x86dd, 0x0806, 0x88cc][i % 4];
                buf[12..14].copy_from_slice(&ty.to_be_bytes());
                buf[14] = [0x45, 0x60, buf[14], buf[14]][i % 4];
            }
            let f = dissect(&buf);
            let _ = (f.summary(), f.layers(), f.flow_key(), f.tcp_payload_len());
        }
    }

    #[test]
    fn padding_and_fragments() {
        let mut frame = syn();
        frame.resize(60, 0);
        let f = dissect(&frame);
        assert_eq!(
            (f.len, f.tcp_payload_len(), f.malformed.clone()),
            (60, 0, None)
        );
        assert!(dbg(&f.transport).ends_with("payload_len: 0, checksum_ok: true }"));
        let mut frame = syn();
        frame[14 + 6] |= 0x20; // more-fragments (and so a stale header checksum)
        let f = dissect(&frame);
        assert!(dbg(&f.net).ends_with("fragment: true }"));
        assert_eq!(f.transport, Transport::None);
        assert_eq!(
            f.summary(),
            "10.0.0.2 > 10.0.0.1 proto TCP fragment bad-checksum"
        );
        assert_eq!(format_mac(&[0xff; 6]), "ff:ff:ff:ff:ff:ff");
    }
}
