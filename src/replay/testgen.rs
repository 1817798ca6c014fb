//! Test-only builders: pcap and pcapng byte images from a list of records, and minimal frames
//! (Ethernet, 802.1Q, IPv4/IPv6, TCP/UDP, link headers). Exact, hand-checkable layouts; no validation —
//! tests also use them to build deliberately odd captures.

/// One record of a classic pcap file.
#[derive(Debug, Clone)]
pub struct PcapRecord {
    pub ts_sec: u32,
    /// Microseconds, or nanoseconds in a nanosecond file.
    pub ts_frac: u32,
    pub data: Vec<u8>,
    pub orig_len: u32,
}

impl PcapRecord {
    /// A whole (untruncated) record.
    pub fn new(ts_sec: u32, ts_frac: u32, data: Vec<u8>) -> Self {
        let orig_len = data.len() as u32;
        PcapRecord {
            ts_sec,
            ts_frac,
            data,
            orig_len,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// Appends integers in one byte order.
struct Out {
    buf: Vec<u8>,
    big: bool,
}

impl Out {
    /// A pcap file header, version 2.4, with this magic.
    fn file_header(&mut self, magic: u32, snaplen: u32, linktype: u32) {
        self.u32(magic);
        self.u16(2);
        self.u16(4);
        self.u32(0); // thiszone
        self.u32(0); // sigfigs
        self.u32(snaplen);
        self.u32(linktype);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
}

/// A classic pcap file (version 2.4).
pub fn pcap(
    endian: Endian,
    nanos: bool,
    linktype: u32,
    snaplen: u32,
    records: &[PcapRecord],
) -> Vec<u8> {
    let mut o = Out {
        buf: Vec::new(),
        big: endian == Endian::Big,
    };
    o.file_header(
        if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 },
        snaplen,
        linktype,
    );
    for r in records {
        o.u32(r.ts_sec);
        o.u32(r.ts_frac);
        o.u32(r.data.len() as u32);
        o.u32(r.orig_len);
        o.buf.extend_from_slice(&r.data);
    }
    o.buf
}

/// Kuznetzov's modified pcap (magic a1b2cd34, little-endian as libpcap writes it on x86): each record
/// header is the classic 16 bytes then ifindex (4), protocol (2), packet type (1) and a pad byte.
pub fn pcap_modified(linktype: u32, snaplen: u32, records: &[PcapRecord]) -> Vec<u8> {
    let mut o = Out {
        buf: Vec::new(),
        big: false,
    };
    o.file_header(0xa1b2_cd34, snaplen, linktype);
    for (i, r) in records.iter().enumerate() {
        o.u32(r.ts_sec);
        o.u32(r.ts_frac);
        o.u32(r.data.len() as u32);
        o.u32(r.orig_len);
        o.u32(i as u32 + 1); // ifindex
        o.u16(0x0800); // protocol
        o.buf.push(4); // packet type: outgoing
        o.buf.push(0); // pad
        o.buf.extend_from_slice(&r.data);
    }
    o.buf
}

/// An Interface Description Block's content.
#[derive(Debug, Clone)]
pub struct NgInterface {
    pub linktype: u16,
    pub snaplen: u32,
    /// The raw if_tsresol byte (bit 7 set: 2^-n), None for the default 10^-6.
    pub tsresol: Option<u8>,
    /// if_tsoffset in seconds.
    pub tsoffset: Option<i64>,
}

impl NgInterface {
    pub fn new(linktype: u16) -> Self {
        NgInterface {
            linktype,
            snaplen: 0,
            tsresol: None,
            tsoffset: None,
        }
    }
}

/// One pcapng block; the byte order is that of the latest `Section`.
#[derive(Debug, Clone)]
pub enum NgBlock {
    Section {
        big_endian: bool,
    },
    Interface(NgInterface),
    Enhanced {
        interface: u32,
        ts: u64,
        data: Vec<u8>,
        orig_len: u32,
        comment: Option<String>,
    },
    Simple {
        data: Vec<u8>,
        orig_len: u32,
    },
    /// The obsolete Packet Block (type 2).
    Packet {
        interface: u16,
        ts: u64,
        data: Vec<u8>,
        orig_len: u32,
    },
    /// Any other block, body given raw (e.g. an NRB, ISB or custom block).
    Other {
        block_type: u32,
        body: Vec<u8>,
    },
}

impl NgBlock {
    /// A whole EPB without comment.
    pub fn epb(interface: u32, ts: u64, data: Vec<u8>) -> Self {
        let orig_len = data.len() as u32;
        NgBlock::Enhanced {
            interface,
            ts,
            data,
            orig_len,
            comment: None,
        }
    }
}

/// A pcapng file from blocks; the first block should be a `Section`.
pub fn pcapng(blocks: &[NgBlock]) -> Vec<u8> {
    let mut big = false;
    let mut out = Vec::new();
    for b in blocks {
        if let NgBlock::Section { big_endian } = b {
            big = *big_endian;
        }
        let mut body = Out {
            buf: Vec::new(),
            big,
        };
        let block_type = ng_body(b, &mut body);
        let mut o = Out {
            buf: Vec::new(),
            big,
        };
        let total = 12 + body.buf.len() as u32;
        o.u32(block_type);
        o.u32(total);
        o.buf.extend_from_slice(&body.buf);
        o.u32(total);
        out.extend_from_slice(&o.buf);
    }
    out
}

/// Writes a block's body (padded to 32 bits) and returns its type.
fn ng_body(b: &NgBlock, o: &mut Out) -> u32 {
    match b {
        NgBlock::Section { .. } => {
            o.u32(0x1a2b_3c4d);
            o.u16(1);
            o.u16(0);
            o.u64(u64::MAX); // section length unknown
            0x0a0d_0d0a
        }
        NgBlock::Interface(i) => {
            o.u16(i.linktype);
            o.u16(0);
            o.u32(i.snaplen);
            let mut opts = Vec::new();
            if let Some(r) = i.tsresol {
                opts.push((9u16, vec![r]));
            }
            if let Some(off) = i.tsoffset {
                let bytes = if o.big {
                    off.to_be_bytes()
                } else {
                    off.to_le_bytes()
                };
                opts.push((14, bytes.to_vec()));
            }
            options(o, &opts);
            1
        }
        NgBlock::Enhanced {
            interface,
            ts,
            data,
            orig_len,
            comment,
        } => {
            o.u32(*interface);
            o.u32((*ts >> 32) as u32);
            o.u32(*ts as u32);
            o.u32(data.len() as u32);
            o.u32(*orig_len);
            padded(o, data);
            let opts: Vec<(u16, Vec<u8>)> = comment
                .iter()
                .map(|c| (1u16, c.as_bytes().to_vec()))
                .collect();
            options(o, &opts);
            6
        }
        NgBlock::Simple { data, orig_len } => {
            o.u32(*orig_len);
            padded(o, data);
            3
        }
        NgBlock::Packet {
            interface,
            ts,
            data,
            orig_len,
        } => {
            o.u16(*interface);
            o.u16(0); // drops
            o.u32((*ts >> 32) as u32);
            o.u32(*ts as u32);
            o.u32(data.len() as u32);
            o.u32(*orig_len);
            padded(o, data);
            2
        }
        NgBlock::Other { block_type, body } => {
            padded(o, body);
            *block_type
        }
    }
}

fn padded(o: &mut Out, data: &[u8]) {
    o.buf.extend_from_slice(data);
    o.buf.resize(o.buf.len() + (4 - data.len() % 4) % 4, 0);
}

/// Options followed by opt_endofopt, or nothing when there are none.
fn options(o: &mut Out, opts: &[(u16, Vec<u8>)]) {
    if opts.is_empty() {
        return;
    }
    for (code, value) in opts {
        o.u16(*code);
        o.u16(value.len() as u16);
        padded(o, value);
    }
    o.u32(0);
}

// ---- frames ----

pub const MAC_A: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x0b];

/// An Ethernet II frame.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet frame with 802.1Q/802.1ad tags (tpid, vid) inserted, outermost first.
pub fn ethernet_tagged(
    dst: [u8; 6],
    src: [u8; 6],
    tags: &[(u16, u16)],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A minimal TCP header (20 bytes, no options) plus payload; checksum left zero.
pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

/// A minimal UDP datagram; checksum left zero.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An IPv4 packet (20-byte header with a correct checksum) around `payload` of `protocol` (6 TCP, 17 UDP).
pub fn ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An IPv6 packet (40-byte header) around `payload` with next header `next`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// The Internet checksum of `b`.
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A Linux cooked (SLL) header: packet type, ARPHRD_ETHER, link-layer address, protocol.
pub fn sll(packet_type: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&packet_type.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes());
    f.extend_from_slice(&(addr.len() as u16).to_be_bytes());
    let mut a = [0u8; 8];
    a[..addr.len().min(8)].copy_from_slice(&addr[..addr.len().min(8)]);
    f.extend_from_slice(&a);
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A Linux cooked v2 (SLL2) header: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address.
pub fn sll2(packet_type: u8, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&3u32.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes());
    f.push(packet_type);
    f.push(addr.len() as u8);
    let mut a = [0u8; 8];
    a[..addr.len().min(8)].copy_from_slice(&addr[..addr.len().min(8)]);
    f.extend_from_slice(&a);
    f.extend_from_slice(payload);
    f
}

/// A BSD loopback header: the address family as 4 bytes in the given order.
pub fn null(family: u32, big_endian: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = if big_endian {
        family.to_be_bytes()
    } else {
        family.to_le_bytes()
    }
    .to_vec();
    f.extend_from_slice(payload);
    f
}

/// A small TCP SYN from 10.0.0.1:40000 to 10.0.0.2:80 as an IPv4 packet (40 bytes).
pub fn sample_ipv4() -> Vec<u8> {
    ipv4(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        6,
        &tcp(40000, 80, 1000, 0, 0x02, &[]),
    )
}

/// A UDP datagram from 2001:db8::1 to 2001:db8::2 as an IPv6 packet.
pub fn sample_ipv6() -> Vec<u8> {
    ipv6(v6(1), v6(2), 17, &udp(5353, 53, b"hello"))
}

/// 2001:db8::`last`.
pub fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

/// An Ethernet frame as the capture reader yields it: record `index`, timestamped, nothing cut or made up.
pub fn captured(index: u64, eth: Vec<u8>) -> crate::replay::capture::CapturedFrame {
    crate::replay::capture::CapturedFrame {
        index,
        t_ns: index.max(1),
        timestamped: true,
        interface: 0,
        linktype: 1,
        orig_len: eth.len() as u32,
        frame: eth,
        truncated: false,
        synthetic_l2: false,
        vlan: Vec::new(),
        renamed: None,
        comment: None,
        problem: None,
    }
}
