//! Just enough of an Ethernet frame's IP and TCP layers to replay it: where the TCP header and payload are, as
//! the dissector read the headers (`dissect::Headers`) and as far as the frame went on the wire (a capture may
//! have cut it short), and in-place rewriting of what refers to the other side's sequence space (ack, SACK
//! edges, timestamp echo), with the checksum recomputed.

use std::net::{IpAddr, SocketAddr};

use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket};

use crate::pipeline::dissect::{ETHERNET_HEADER, Headers, L4Header};

/// Where a frame's layers are, and its TCP header fields when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// Offset of the transport header in the frame.
    pub l4: usize,
    /// End of the IP payload in the frame (Ethernet padding excluded).
    pub end: usize,
    pub tcp: Option<Tcp>,
    /// UDP source and destination ports.
    pub udp: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    pub window: u16,
    /// Payload offset in the frame and length on the wire (which may exceed what the frame holds).
    pub payload_at: usize,
    pub payload_len: usize,
}

impl Tcp {
    /// Sequence space the segment occupies: payload plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload_len as u32 + u32::from(self.syn) + u32::from(self.fin)
    }
}

impl Layers {
    /// The layers of a frame whose headers the dissector read (`parse` for a frame not yet read).
    pub(crate) fn of(h: &Headers, on_wire: usize) -> Option<Layers> {
        let ip = h.ip.as_ref()?;
        // A header shorter than its fixed part, or longer than the packet says it is, is no IP packet to
        // rewrite: the frame goes to the stack as it is, which drops it and says why.
        if ip.src.is_ipv4()
            && (ip.version != 4 || ip.header_len < 20 || ip.total_len < ip.header_len)
        {
            return None;
        }
        let l4 = ETHERNET_HEADER + ip.header_len;
        let ip_end = ETHERNET_HEADER + ip.total_len;
        let end = ip_end.min(on_wire.max(h.len));
        let mut layers = Layers {
            src: ip.src,
            dst: ip.dst,
            protocol: ip.protocol,
            l4,
            end,
            tcp: None,
            udp: None,
        };
        // A transport header is only read where the IP packet holds all of it (a damaged capture can say a TCP
        // header is shorter than 20 bytes, or an IP packet shorter than its headers).
        match &ip.transport {
            Some(L4Header::Tcp(t)) => {
                let payload_at = l4 + t.header_len;
                if t.header_len < 20 || payload_at > end {
                    return Some(layers);
                }
                layers.tcp = Some(Tcp {
                    src_port: t.src_port,
                    dst_port: t.dst_port,
                    seq: t.seq,
                    ack: t.ack,
                    syn: t.flags.syn,
                    ack_flag: t.flags.ack,
                    fin: t.flags.fin,
                    rst: t.flags.rst,
                    window: t.window,
                    payload_at,
                    payload_len: ip_end.saturating_sub(payload_at),
                });
            }
            Some(L4Header::Udp(u)) if end >= l4 + 8 => layers.udp = Some((u.src_port, u.dst_port)),
            _ => {}
        }
        Some(layers)
    }

    pub fn src_addr(&self) -> Option<SocketAddr> {
        self.ports().map(|(s, _)| SocketAddr::new(self.src, s))
    }

    pub fn dst_addr(&self) -> Option<SocketAddr> {
        self.ports().map(|(_, d)| SocketAddr::new(self.dst, d))
    }

    fn ports(&self) -> Option<(u16, u16)> {
        self.tcp.map(|t| (t.src_port, t.dst_port)).or(self.udp)
    }
}

/// The IP and TCP/UDP layers of an Ethernet frame, if it carries IP. `on_wire` is the frame's length as it was
/// on the wire, so a truncated capture still gives true payload lengths.
pub fn parse(frame: &[u8], on_wire: usize) -> Option<Layers> {
    Layers::of(&Headers::read(frame)?, on_wire)
}

/// The payload bytes the frame holds (possibly fewer than `payload_len` in a truncated capture).
pub fn payload<'a>(frame: &'a [u8], tcp: &Tcp) -> &'a [u8] {
    let start = tcp.payload_at.min(frame.len());
    let end = (tcp.payload_at + tcp.payload_len).min(frame.len());
    &frame[start..end]
}

/// A UDP datagram's payload, as far as the frame holds it.
pub fn udp_payload<'a>(frame: &'a [u8], layers: &Layers) -> &'a [u8] {
    let end = layers.end.min(frame.len());
    let start = (layers.l4 + 8).min(end);
    &frame[start..end]
}

/// Rewrite a TCP frame's references to the other side's sequence space: `ack` (and SACK edges) through
/// `map_ack`, the timestamp echo to `tsecr` when given; then recompute the TCP checksum.
pub fn rewrite_acks(
    frame: &mut [u8],
    layers: &Layers,
    map_ack: impl Fn(u32) -> u32,
    tsecr: Option<u32>,
) {
    let Some(tcp) = layers.tcp else { return };
    let l4 = layers.l4;
    let end = layers.end.min(frame.len());
    if tcp.ack_flag {
        let ack = map_ack(tcp.ack);
        frame[l4 + 8..l4 + 12].copy_from_slice(&ack.to_be_bytes());
    }
    // Options: kind 5 (SACK: pairs of edges in the other side's space), kind 8 (timestamps: TSval, TSecr).
    let mut i = l4 + 20;
    let opts_end = tcp.payload_at.min(end);
    while i < opts_end {
        match frame[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = frame.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > opts_end {
                    break;
                }
                if kind == 5 {
                    let mut e = i + 2;
                    while e + 4 <= i + len {
                        let v = u32::from_be_bytes([
                            frame[e],
                            frame[e + 1],
                            frame[e + 2],
                            frame[e + 3],
                        ]);
                        frame[e..e + 4].copy_from_slice(&map_ack(v).to_be_bytes());
                        e += 4;
                    }
                } else if kind == 8
                    && len == 10
                    && let Some(echo) = tsecr
                {
                    frame[i + 6..i + 10].copy_from_slice(&echo.to_be_bytes());
                }
                i += len;
            }
        }
    }
    let (src, dst): (IpAddress, IpAddress) = (layers.src.into(), layers.dst.into());
    let mut packet = TcpPacket::new_unchecked(&mut frame[l4..end]);
    packet.fill_checksum(&src, &dst);
}

/// A pure ACK from the same peer as `pattern` (a frame's bytes up to its TCP payload): the peer's next
/// sequence number, no payload, no SYN/FIN/RST/PSH, acknowledging `ack`, its timestamp echo set to `tsecr`
/// when given; lengths and checksums recomputed. Options are kept as the pattern has them (already in the
/// stack's sequence space when the pattern is a frame the replay injected).
pub fn pure_ack(pattern: &[u8], layers: &Layers, ack: u32, tsecr: Option<u32>) -> Option<Vec<u8>> {
    let tcp = layers.tcp?;
    let l4 = layers.l4;
    if pattern.len() < tcp.payload_at || tcp.payload_at < l4 + 20 {
        return None;
    }
    let mut frame = pattern[..tcp.payload_at].to_vec();
    let next_seq = tcp.seq.wrapping_add(tcp.seq_len());
    frame[l4 + 4..l4 + 8].copy_from_slice(&next_seq.to_be_bytes());
    // Flags: ACK only.
    frame[l4 + 13] = 0x10;
    let ip_len = tcp.payload_at - 14;
    match layers.src {
        IpAddr::V4(_) => {
            frame[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
            let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
            ip.fill_checksum();
        }
        IpAddr::V6(_) => {
            let payload = tcp.payload_at - 14 - 40;
            frame[18..20].copy_from_slice(&(payload as u16).to_be_bytes());
        }
    }
    let trimmed = Layers {
        end: tcp.payload_at,
        tcp: Some(Tcp {
            seq: next_seq,
            ack,
            syn: false,
            fin: false,
            rst: false,
            ack_flag: true,
            payload_len: 0,
            ..tcp
        }),
        ..layers.clone()
    };
    // The ack is already in the live space: write it as is.
    rewrite_acks(&mut frame, &trimmed, |a| a, tsecr);
    frame[l4 + 8..l4 + 12].copy_from_slice(&ack.to_be_bytes());
    let (src, dst): (IpAddress, IpAddress) = (layers.src.into(), layers.dst.into());
    TcpPacket::new_unchecked(&mut frame[l4..]).fill_checksum(&src, &dst);
    Some(frame)
}

/// The TSval of a TCP frame's timestamp option, if it has one.
pub fn tsval(frame: &[u8], layers: &Layers) -> Option<u32> {
    let tcp = layers.tcp?;
    let mut i = layers.l4 + 20;
    let opts_end = tcp.payload_at.min(frame.len());
    while i < opts_end {
        match frame[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*frame.get(i + 1)?);
                if len < 2 || i + len > opts_end {
                    return None;
                }
                if kind == 8 && len == 10 {
                    return Some(u32::from_be_bytes(frame[i + 2..i + 6].try_into().ok()?));
                }
                i += len;
            }
        }
    }
    None
}
