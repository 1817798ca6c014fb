//! Checksum offload: a frame captured on the host that sent it often holds checksums its NIC had not filled
//! yet (Linux CHECKSUM_PARTIAL: the TCP/UDP field holds the folded pseudo-header sum; some drivers and
//! captures leave 0). The replay completes such checksums before the frame is injected, and says so; a
//! checksum that is wrong in any other way is real damage and goes in as recorded, so the stack drops it
//! `bad_checksum` as it would have.
//!
//! The evidence rule, per frame (docs/architecture.md, "Checksums"): a TCP or UDP checksum is offloaded when
//! it equals the folded pseudo-header sum, with the segment's length or without it (GSO), in either byte
//! order; or when it is 0 where 0 is not a valid checksum (TCP; UDP over IPv6). An IPv4 header checksum is
//! offloaded when it is 0. Nothing else counts: damage lands on one of those few values only by chance (the
//! partial sum depends on the addresses and length, not on the covered data), and a host whose checksums are
//! "consistently wrong" some other way is indistinguishable from a link that damages every frame.

use super::ReplayWire;

/// What the check found in one frame.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// The offloaded checksums found: which (its name and field offset), the recorded value, and why it
    /// looks offloaded. The notes are written once the frame is final (`finish`), with the value it went in with.
    found: Vec<(&'static str, usize, u16, &'static str)>,
    /// The TCP header as it was before the acks were rebased, and the checksum then (completed, or as
    /// recorded): the rewrite's checksum is replaced by the recorded one updated for the changed words
    /// (RFC 1624), so damage stays damage and a first fragment, whose checksum covers bytes in other
    /// fragments, stays right.
    tcp: Option<(usize, Vec<u8>, u16)>,
}

/// Where a frame's checksummed parts are.
struct L4 {
    /// Offset of the transport header and the end of the segment in the frame.
    at: usize,
    end: usize,
    /// Offset of the checksum field.
    field: usize,
    proto: u8,
    ipv6: bool,
    /// The pseudo-header's addresses and protocol summed (not folded), without the length.
    pseudo: u32,
}

fn sum16(b: &[u8]) -> u32 {
    let mut s: u32 = 0;
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        s = s.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        s = s.wrapping_add(u32::from(*last) << 8);
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The transport segment of an IPv4 or IPv6 frame that carries TCP or UDP, whole (not a fragment, not cut
/// short by the capture).
fn locate(frame: &[u8]) -> Option<L4> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = 14;
    let (at, end, proto, ipv6, pseudo) = match ethertype {
        0x0800 => {
            let h = frame.get(ip..ip + 20)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            if h[0] >> 4 != 4 || ihl < 20 || total < ihl || frame.len() < ip + total || fragment {
                return None;
            }
            let pseudo = sum16(&h[12..20]) + u32::from(h[9]);
            (ip + ihl, ip + total, h[9], false, pseudo)
        }
        0x86dd => {
            let h = frame.get(ip..ip + 40)?;
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            // Extension headers are not walked: a fragment (44) or anything else is left alone.
            if h[0] >> 4 != 6 || frame.len() < ip + 40 + len {
                return None;
            }
            let pseudo = sum16(&h[8..40]) + u32::from(h[6]);
            (ip + 40, ip + 40 + len, h[6], true, pseudo)
        }
        _ => return None,
    };
    let field = match proto {
        6 if end >= at + 20 => at + 16,
        17 if end >= at + 8 => at + 6,
        _ => return None,
    };
    Some(L4 {
        at,
        end,
        field,
        proto,
        ipv6,
        pseudo,
    })
}

impl L4 {
    /// The checksum the segment should carry, as it stands now.
    fn correct(&self, frame: &[u8]) -> u16 {
        let len = (self.end - self.at) as u32;
        let recorded = u32::from(u16::from_be_bytes([
            frame[self.field],
            frame[self.field + 1],
        ]));
        // The sum with the field taken out.
        let body = sum16(&frame[self.at..self.end]) + (0xffff - recorded);
        let c = !fold(self.pseudo + len + body);
        // UDP sends 0 as 0xffff: 0 means "no checksum".
        if self.proto == 17 && c == 0 {
            0xffff
        } else {
            c
        }
    }

    fn name(&self) -> &'static str {
        if self.proto == 6 { "TCP" } else { "UDP" }
    }

    /// Why `value` looks like a checksum the sending host's NIC was to fill, if it does.
    fn offloaded(&self, value: u16) -> Option<&'static str> {
        let len = (self.end - self.at) as u32;
        let partial = fold(self.pseudo + len);
        let gso = fold(self.pseudo);
        if value == partial || value == partial.swap_bytes() {
            return Some("the partial pseudo-header sum the sending host's NIC completes");
        }
        if value == gso || value == gso.swap_bytes() {
            return Some(
                "the partial pseudo-header sum without the length, as for segmentation offload",
            );
        }
        // UDP over IPv4 may carry 0 (no checksum); TCP and UDP over IPv6 may not.
        if value == 0 && (self.proto == 6 || self.ipv6) {
            return Some("zero, left for the sending host's NIC to fill");
        }
        None
    }
}

fn field(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

/// The TCP header of an IPv4 or IPv6 frame, whole or a first fragment: (start, end).
fn tcp_header(frame: &[u8]) -> Option<(usize, usize)> {
    let at = match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        0x0800 => {
            let h = frame.get(14..34)?;
            let first = u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0;
            (h[9] == 6 && first).then_some(14 + usize::from(h[0] & 0x0f) * 4)?
        }
        0x86dd => (*frame.get(20)? == 6).then_some(54)?,
        _ => return None,
    };
    let end = at + usize::from(*frame.get(at + 12)? >> 4) * 4;
    (end >= at + 20 && frame.len() >= end).then_some((at, end))
}

/// Check (and, unless `keep`, complete) the offloaded checksums of a frame about to be injected.
pub(super) fn check(frame: &mut [u8], keep: bool) -> Checked {
    let mut out = Checked::default();
    // The IPv4 header first: the transport checksum does not cover it.
    if frame.len() >= 34 && frame[12..14] == [0x08, 0x00] && frame[14] >> 4 == 4 {
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        if ihl >= 20 && frame.len() >= 14 + ihl {
            let recorded = field(frame, 24);
            let sum = sum16(&frame[14..14 + ihl]) + (0xffff - u32::from(recorded));
            let correct = !fold(sum);
            if recorded == 0 && correct != 0 {
                out.found.push((
                    "IPv4 header",
                    24,
                    0,
                    "zero, left for the sending host's NIC to fill",
                ));
                if !keep {
                    frame[24..26].copy_from_slice(&correct.to_be_bytes());
                }
            }
        }
    }
    if let Some(l4) = locate(frame) {
        let recorded = field(frame, l4.field);
        let correct = l4.correct(frame);
        let unchecked = l4.proto == 17 && recorded == 0 && !l4.ipv6;
        if recorded != correct
            && !unchecked
            && let Some(why) = l4.offloaded(recorded)
        {
            out.found.push((l4.name(), l4.field, recorded, why));
            if !keep {
                frame[l4.field..l4.field + 2].copy_from_slice(&correct.to_be_bytes());
            }
        }
    }
    if let Some((at, end)) = tcp_header(frame) {
        out.tcp = Some((at, frame[at..end].to_vec(), field(frame, at + 16)));
    }
    out
}

/// The frame as it goes in: the TCP checksum carried across a rewrite of its header, and the notes.
pub(super) fn finish(frame: &mut [u8], checked: &Checked, keep: bool) -> Vec<String> {
    if let Some((at, before, sum)) = &checked.tcp
        && let Some((now_at, end)) = tcp_header(frame)
        && (now_at, end - now_at) == (*at, before.len())
    {
        // RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m'), over the header words with the checksum left out.
        let words = |b: &[u8]| sum16(b) + (0xffff - u32::from(u16::from_be_bytes([b[16], b[17]])));
        let old = words(before);
        let new = words(&frame[*at..end]);
        let updated = !fold(u32::from(!*sum) + u32::from(!fold(old)) + new);
        frame[at + 16..at + 18].copy_from_slice(&updated.to_be_bytes());
    }
    checked
        .found
        .iter()
        .map(|&(layer, at, recorded, why)| {
            let what = if keep {
                "injected as recorded (--keep-checksums)".to_string()
            } else {
                format!("fixed to 0x{:04x}", field(frame, at))
            };
            format!("{layer} checksum 0x{recorded:04x} looked offloaded ({why}): {what}")
        })
        .collect()
}

impl ReplayWire {
    /// Inject offloaded checksums as recorded instead of completing them (`--keep-checksums`).
    pub fn with_keep_checksums(mut self, keep: bool) -> Self {
        self.keep_checksums = keep;
        self
    }

    /// Check a frame about to be injected (before its acks are rebased), counting what was found.
    pub(super) fn check_checksums(&mut self, frame: &mut [u8]) -> Checked {
        let checked = check(frame, self.keep_checksums);
        let n = checked.found.len() as u64;
        let mut report = self.report.borrow_mut();
        if self.keep_checksums {
            report.checksums_kept += n;
        } else {
            report.checksums_fixed += n;
        }
        checked
    }

    /// The frame's final checksums (after the rebase) and their notes.
    pub(super) fn finish_checksums(&self, frame: &mut [u8], checked: &Checked) -> Vec<String> {
        finish(frame, checked, self.keep_checksums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP frame (10.77.0.1 → 10.77.0.2, no options) with `payload`, checksums correct.
    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = 20 + 20 + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&[10, 77, 0, 1, 10, 77, 0, 2]);
        let c = !fold(sum16(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..4].copy_from_slice(&[0xb8, 0x6c, 0x1f, 0x90]);
        tcp[12] = 0x50;
        tcp[13] = 0x18;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        let l4 = locate(&f).unwrap();
        let c = l4.correct(&f);
        f[l4.field..l4.field + 2].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn a_partial_sum_is_completed_and_a_flipped_bit_is_not() {
        let good = tcp4(b"hello");
        let correct = field(&good, 50);
        // The folded pseudo-header sum: 10.77.0.1 + 10.77.0.2 + proto 6 + length 25.
        let partial: u16 = 0x0a4d + 0x0001 + 0x0a4d + 0x0002 + 6 + 25;
        for value in [partial, partial.swap_bytes(), 0] {
            let mut f = good.clone();
            f[50..52].copy_from_slice(&value.to_be_bytes());
            let c = check(&mut f, false);
            let notes = finish(&mut f, &c, false);
            assert_eq!(f, good, "0x{value:04x}");
            assert_eq!(notes.len(), 1);
            assert!(notes[0].starts_with(&format!("TCP checksum 0x{value:04x} looked offloaded")));
            assert!(
                notes[0].ends_with(&format!("fixed to 0x{correct:04x}")),
                "{notes:?}"
            );
        }
        let mut f = good.clone();
        f[51] ^= 0x04;
        let damaged = f.clone();
        let c = check(&mut f, false);
        assert_eq!(f, damaged);
        // A rewrite of the ack recomputes the checksum; the damage is carried over.
        f[42..46].copy_from_slice(&[1, 2, 3, 4]);
        let l4 = locate(&f).unwrap();
        let now = l4.correct(&f);
        f[50..52].copy_from_slice(&[0, 0]);
        assert!(finish(&mut f, &c, false).is_empty());
        let wrong = field(&f, 50);
        assert_ne!(wrong, now);
        // And a correct one stays correct across the same rewrite.
        let mut f = good.clone();
        let c = check(&mut f, false);
        f[42..46].copy_from_slice(&[1, 2, 3, 4]);
        finish(&mut f, &c, false);
        assert_eq!(field(&f, 50), locate(&f).unwrap().correct(&f));
    }

    #[test]
    fn keep_leaves_the_frame_as_recorded_and_a_zero_ipv4_header_checksum_is_offload() {
        let good = tcp4(b"x");
        let mut f = good.clone();
        f[24..26].copy_from_slice(&[0, 0]);
        let recorded = f.clone();
        let c = check(&mut f, true);
        let notes = finish(&mut f, &c, true);
        assert_eq!(f, recorded);
        assert_eq!(
            notes,
            [
                "IPv4 header checksum 0x0000 looked offloaded (zero, left for the sending host's NIC to \
              fill): injected as recorded (--keep-checksums)"
            ]
        );
        let c = check(&mut f, false);
        finish(&mut f, &c, false);
        assert_eq!(f, good);
        // Cut short: nothing to say.
        let mut short = good[..40].to_vec();
        let c = check(&mut short, false);
        assert!(finish(&mut short, &c, false).is_empty());
    }

    /// An Ethernet + IPv6 + UDP frame (fd77::1 → fd77::2) with `payload`, its checksum correct.
    fn udp6(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let len = (8 + payload.len()) as u16;
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        for last in [1u8, 2] {
            f.extend_from_slice(&[0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
        }
        f.extend_from_slice(&[0x9d, 0x99, 0, 7]);
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        let l4 = locate(&f).unwrap();
        let c = l4.correct(&f);
        f[l4.field..l4.field + 2].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn udp_over_ipv6_zero_and_the_gso_sum_are_offload() {
        let good = udp6(b"datagram");
        let at = 14 + 40 + 6;
        let l4 = locate(&good).unwrap();
        let without_length = fold(l4.pseudo);
        for value in [0, without_length, without_length.swap_bytes()] {
            let mut f = good.clone();
            f[at..at + 2].copy_from_slice(&value.to_be_bytes());
            let c = check(&mut f, false);
            let notes = finish(&mut f, &c, false);
            assert_eq!(f, good, "0x{value:04x}");
            assert!(notes[0].starts_with(&format!("UDP checksum 0x{value:04x} looked offloaded")));
        }
        // A wrong value that is none of those stays wrong.
        let mut f = good.clone();
        f[at] ^= 0x80;
        let damaged = f.clone();
        let c = check(&mut f, false);
        assert!(finish(&mut f, &c, false).is_empty());
        assert_eq!(f, damaged);
    }
}
