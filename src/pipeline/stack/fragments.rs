//! IP fragments on their way to a datagram: which datagram each rx fragment belongs to, whether it completes
//! it, and the datagram it completes, so the verdict can say what happened to every fragment.
//!
//! IPv4 fragments are reassembled by smoltcp itself (`proto-ipv4-fragmentation`); this table follows the
//! same fragments alongside, because smoltcp says nothing about which frame completed which datagram.
//! smoltcp 0.14 reassembles IPv6 fragments only under 6LoWPAN, not over Ethernet, so for IPv6 this table is
//! the reassembler: fragments are held here and smoltcp is given the complete datagram, with the fragment
//! header taken out, in the window of the fragment that completed it. Both families keep smoltcp's limits:
//! `REASSEMBLY_BUFFERS` datagrams in progress, `REASSEMBLY_TIMEOUT_NS` from a datagram's first fragment,
//! and no datagram beyond 65535 bytes (the IP length fields' own limit), so the memory is bounded.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Datagrams being reassembled at once (smoltcp's `reassembly-buffer-count-4`, set in Cargo.toml).
pub const REASSEMBLY_BUFFERS: usize = 4;
/// How long a datagram's fragments are kept after its first one arrived (smoltcp's default, 60 s).
pub const REASSEMBLY_TIMEOUT_NS: u64 = 60_000_000_000;
/// The largest datagram payload either family's length fields allow.
pub const MAX_DATAGRAM: usize = 65535;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

#[derive(Debug)]
struct Piece {
    packet: u32,
    offset: usize,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Datagram {
    started: u64,
    pieces: Vec<Piece>,
    total: Option<usize>,
    /// The Ethernet and IP header the complete datagram is given: the first fragment's, once it came.
    header: Option<Vec<u8>>,
}

/// One fragment, as the table saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub ipv6: bool,
    /// Which fragment of its datagram this is, in arrival order, from 1.
    pub n: usize,
    pub offset: usize,
    pub len: usize,
    /// "datagram id 0x1bbc from 10.77.0.1 to 10.77.0.2 (UDP)".
    pub datagram: String,
    pub state: FragmentState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentState {
    /// Kept until the datagram is whole.
    Held,
    /// This fragment completed the datagram: the datagram as one unfragmented frame, the packets of the
    /// fragments before it, and how many payload bytes it has.
    Complete {
        frame: Vec<u8>,
        held: Vec<u32>,
        bytes: usize,
    },
    /// Not taken (no buffer free, too large, inconsistent lengths): why.
    Refused(String),
}

/// Fragments whose datagram expired or never completed: their packets and the datagram's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub packets: Vec<u32>,
    pub datagram: String,
    /// The fragments' byte ranges seen, and the datagram's length if its last fragment came.
    pub have: String,
    pub started: u64,
}

#[derive(Debug, Default)]
pub struct Fragments {
    datagrams: BTreeMap<Key, Datagram>,
}

/// A fragment read out of a frame: its datagram, where it goes, whether more follow, and its bytes.
struct Parsed<'a> {
    key: Key,
    ipv6: bool,
    offset: usize,
    more: bool,
    data: &'a [u8],
    /// The header a complete datagram gets, when this is the first fragment (Ethernet + IP, the fragment
    /// header left out for IPv6).
    header: Option<Vec<u8>>,
}

fn checksum_ok(header: &[u8]) -> bool {
    let mut s: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

fn parse(frame: &[u8]) -> Option<Parsed<'_>> {
    match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        0x0800 => {
            let ip = frame.get(14..)?;
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            let h = ip.get(..ihl.max(20))?;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let flags = u16::from_be_bytes([h[6], h[7]]);
            let (more, offset) = (flags & 0x2000 != 0, usize::from(flags & 0x1fff) * 8);
            // smoltcp refuses these before reassembly: they never reach its assembler.
            if h[0] >> 4 != 4 || ihl < 20 || total < ihl || ip.len() < total || !checksum_ok(h) {
                return None;
            }
            if !more && offset == 0 {
                return None;
            }
            let key = Key {
                src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
                dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
                proto: h[9],
                id: u32::from(u16::from_be_bytes([h[4], h[5]])),
            };
            let header = (offset == 0).then(|| frame[..14 + ihl].to_vec());
            Some(Parsed {
                key,
                ipv6: false,
                offset,
                more,
                data: &ip[ihl..total],
                header,
            })
        }
        0x86dd => {
            let ip = frame.get(14..)?;
            let h = ip.get(..48)?;
            // Only a fragment header right after the fixed header; behind other extension headers it is
            // smoltcp's to refuse (Parameter Problem).
            if h[0] >> 4 != 6 || h[6] != 44 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if len < 8 || ip.len() < 40 + len {
                return None;
            }
            let f = &h[40..48];
            let off = u16::from_be_bytes([f[2], f[3]]);
            let (more, offset) = (off & 1 != 0, usize::from(off >> 3) * 8);
            let octets = |b: &[u8]| {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Ipv6Addr::from(a)
            };
            let key = Key {
                src: IpAddr::V6(octets(&h[8..24])),
                dst: IpAddr::V6(octets(&h[24..40])),
                proto: f[0],
                id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
            };
            let header = (offset == 0).then(|| {
                let mut hdr = frame[..54].to_vec();
                hdr[14 + 6] = f[0];
                hdr
            });
            Some(Parsed {
                key,
                ipv6: true,
                offset,
                more,
                data: &ip[48..40 + len],
                header,
            })
        }
        _ => None,
    }
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "TCP".into(),
        17 => "UDP".into(),
        1 => "ICMP".into(),
        58 => "ICMPv6".into(),
        p => format!("protocol {p}"),
    }
}

fn describe(key: &Key) -> String {
    format!(
        "datagram id 0x{:x} from {} to {} ({})",
        key.id,
        key.src,
        key.dst,
        protocol_name(key.proto)
    )
}

impl Datagram {
    /// The datagram, if every byte from 0 to its end has come.
    fn assemble(&self) -> Option<Vec<u8>> {
        let total = self.total?;
        let header = self.header.as_ref()?;
        let mut ranges: Vec<(usize, usize)> = self
            .pieces
            .iter()
            .map(|p| (p.offset, p.offset + p.data.len()))
            .collect();
        ranges.sort_unstable();
        let mut covered = 0;
        for (start, end) in ranges {
            if start > covered {
                return None;
            }
            covered = covered.max(end);
        }
        if covered < total {
            return None;
        }
        let mut payload = vec![0u8; total];
        for p in &self.pieces {
            let end = (p.offset + p.data.len()).min(total);
            if p.offset < end {
                payload[p.offset..end].copy_from_slice(&p.data[..end - p.offset]);
            }
        }
        let mut frame = header.clone();
        if frame[12..14] == [0x08, 0x00] {
            let ihl = frame.len() - 14;
            let len = (ihl + total) as u16;
            frame[16..18].copy_from_slice(&len.to_be_bytes());
            frame[20..22].copy_from_slice(&[0, 0]);
            frame[24..26].copy_from_slice(&[0, 0]);
            let mut s: u32 = frame[14..]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
                .sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            frame[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
        } else {
            frame[18..20].copy_from_slice(&(total as u16).to_be_bytes());
        }
        frame.extend_from_slice(&payload);
        Some(frame)
    }

    fn have(&self) -> String {
        let mut ranges: Vec<(usize, usize)> = self
            .pieces
            .iter()
            .map(|p| (p.offset, p.offset + p.data.len()))
            .collect();
        ranges.sort_unstable();
        let bytes: Vec<String> = ranges
            .iter()
            .map(|(s, e)| format!("{s}–{}", e.saturating_sub(1)))
            .collect();
        let n = self.pieces.len();
        let total = match self.total {
            Some(t) => format!(" of its {t}"),
            None => "; its last fragment never came".into(),
        };
        format!(
            "{n} fragment{} held, bytes {}{total}",
            if n == 1 { "" } else { "s" },
            bytes.join(", ")
        )
    }
}

impl Fragments {
    /// Take one rx frame at `now`: None when it is no fragment (or one smoltcp refuses before
    /// reassembly, such as a bad IPv4 header checksum).
    pub fn add(&mut self, now: u64, frame: &[u8], packet: u32) -> Option<Fragment> {
        let f = parse(frame)?;
        let datagram = describe(&f.key);
        let end = f.offset + f.data.len();
        let mut out = Fragment {
            ipv6: f.ipv6,
            n: 1,
            offset: f.offset,
            len: f.data.len(),
            datagram,
            state: FragmentState::Held,
        };
        if end > MAX_DATAGRAM {
            out.state = FragmentState::Refused(format!(
                "it reaches byte {end}, past the {MAX_DATAGRAM} an IP datagram can hold"
            ));
            return Some(out);
        }
        if !self.datagrams.contains_key(&f.key) && self.datagrams.len() >= REASSEMBLY_BUFFERS {
            out.state = FragmentState::Refused(format!(
                "all {REASSEMBLY_BUFFERS} reassembly buffers hold unfinished datagrams"
            ));
            return Some(out);
        }
        let d = self.datagrams.entry(f.key.clone()).or_insert(Datagram {
            started: now,
            pieces: Vec::new(),
            total: None,
            header: None,
        });
        if !f.more {
            if d.total.is_some_and(|t| t != end) {
                out.state = FragmentState::Refused(format!(
                    "it ends the datagram at byte {end}, an earlier last fragment at {}",
                    d.total.unwrap_or(0)
                ));
                return Some(out);
            }
            d.total = Some(end);
        }
        if f.header.is_some() {
            d.header = f.header;
        }
        d.pieces.push(Piece {
            packet,
            offset: f.offset,
            data: f.data.to_vec(),
        });
        out.n = d.pieces.len();
        if let Some(frame) = d.assemble() {
            let bytes = d.total.unwrap_or(0);
            let held = d
                .pieces
                .iter()
                .map(|p| p.packet)
                .filter(|&p| p != packet)
                .collect();
            self.datagrams.remove(&f.key);
            out.state = FragmentState::Complete { frame, held, bytes };
        }
        Some(out)
    }

    /// Forget a fragment the stack refused after all (smoltcp's assembler said no).
    pub fn forget(&mut self, packet: u32) {
        for d in self.datagrams.values_mut() {
            d.pieces.retain(|p| p.packet != packet);
        }
        self.datagrams.retain(|_, d| !d.pieces.is_empty());
    }

    /// Datagrams whose time ran out by `now` (as smoltcp: expired once past the deadline), taken out.
    pub fn expire(&mut self, now: u64) -> Vec<Unfinished> {
        self.take(|d| now > d.started + REASSEMBLY_TIMEOUT_NS)
    }

    /// Every datagram still incomplete (the end of a run), taken out.
    pub fn take_all(&mut self) -> Vec<Unfinished> {
        self.take(|_| true)
    }

    fn take(&mut self, which: impl Fn(&Datagram) -> bool) -> Vec<Unfinished> {
        let keys: Vec<Key> = self
            .datagrams
            .iter()
            .filter(|(_, d)| which(d))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let d = self.datagrams.remove(&k)?;
                Some(Unfinished {
                    packets: d.pieces.iter().map(|p| p.packet).collect(),
                    datagram: describe(&k),
                    have: d.have(),
                    started: d.started,
                })
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 fragment of datagram 7 (10.0.0.2 → 10.0.0.1, UDP) at `offset` with `data`.
    fn v4(offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + data.len()) as u16;
        let flags = (if more { 0x2000 } else { 0 }) | (offset / 8) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0, 7]);
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
        let mut s: u32 = h
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        h[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn fragments_in_any_order_complete_one_datagram() {
        let mut t = Fragments::default();
        let last = t.add(0, &v4(16, false, b"tail"), 3).unwrap();
        assert_eq!(
            (last.n, last.offset, last.state),
            (1, 16, FragmentState::Held)
        );
        assert_eq!(
            last.datagram,
            "datagram id 0x7 from 10.0.0.2 to 10.0.0.1 (UDP)"
        );
        assert_eq!(
            t.add(5, &v4(0, true, b"01234567"), 1).unwrap().state,
            FragmentState::Held
        );
        let done = t.add(9, &v4(8, true, b"89abcdef"), 2).unwrap();
        let FragmentState::Complete { frame, held, bytes } = done.state else {
            panic!("{done:?}")
        };
        assert_eq!((done.n, held, bytes), (3, vec![3, 1], 20));
        assert_eq!(&frame[34..], b"0123456789abcdeftail");
        // One unfragmented datagram with a correct header checksum.
        assert_eq!(&frame[16..18], &40u16.to_be_bytes());
        assert_eq!(&frame[20..22], &[0, 0]);
        assert!(checksum_ok(&frame[14..34]));
        assert!(t.is_empty());
        // Not a fragment: not taken.
        assert!(t.add(0, &v4(0, false, b"whole"), 4).is_none());
    }

    #[test]
    fn a_datagram_missing_a_fragment_expires_or_stays_unfinished() {
        let mut t = Fragments::default();
        t.add(0, &v4(0, true, b"01234567"), 1);
        t.add(1, &v4(16, false, b"tail"), 2);
        assert!(t.expire(REASSEMBLY_TIMEOUT_NS).is_empty());
        let gone = t.expire(REASSEMBLY_TIMEOUT_NS + 1);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].packets, [1, 2]);
        assert_eq!(gone[0].have, "2 fragments held, bytes 0–7, 16–19 of its 20");
        t.add(0, &v4(8, true, b"89abcdef"), 3);
        let left = t.take_all();
        assert_eq!(
            left[0].have,
            "1 fragment held, bytes 8–15; its last fragment never came"
        );
    }

    #[test]
    fn the_buffers_and_the_ip_length_bound_what_is_held() {
        let mut t = Fragments::default();
        for id in 0..REASSEMBLY_BUFFERS as u8 {
            let mut f = v4(0, true, b"01234567");
            f[19] = id + 100;
            f[24..26].copy_from_slice(&[0, 0]);
            let mut s: u32 = f[14..34]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            f[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
            assert_eq!(
                t.add(0, &f, u32::from(id)).unwrap().state,
                FragmentState::Held
            );
        }
        let refused = t.add(0, &v4(0, true, b"01234567"), 9).unwrap();
        assert_eq!(
            refused.state,
            FragmentState::Refused("all 4 reassembly buffers hold unfinished datagrams".into())
        );
        let far = t.add(0, &v4(65528, false, b"01234567"), 10).unwrap();
        assert!(matches!(far.state, FragmentState::Refused(_)), "{far:?}");
    }
}
