//! The recorded byte stream of each TCP flow the stack serves, as the replay reads it from the capture: what the
//! recorded server sent, at which stream offset, and how many client bytes it had received before sending it.
//! The wire fills these from the recorded responses; the `recorded` app plays them back in the same turns.
//! A UDP flow's script is its recorded datagrams instead, each played once as many client datagrams arrived
//! as had before it. (A TCP and a UDP flow between the same two address:port pairs would share a script.)
//! Bytes the capture lacks but the peer's recorded ACKs prove the server sent are held as zero filler
//! (`prove_sent`); a gap no ACK proves stays a gap, where the app stops.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

/// Bytes the recorded server sent, starting at a stream offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub data: Vec<u8>,
    /// Client bytes the server had received (its ack) when it sent these: the app waits for as many.
    pub after_client_bytes: u64,
    /// Bytes of `data` the capture did not hold (snaplen) and that are zeros here.
    pub missing: usize,
}

/// One flow's recorded server side.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowScript {
    /// By stream offset; overlapping retransmissions are kept once.
    pub chunks: BTreeMap<u64, Chunk>,
    /// The server's FIN: its stream offset and the client bytes it had received by then.
    pub fin: Option<(u64, u64)>,
    /// The server reset the connection instead of closing it: the stream offset it had sent by then and the
    /// client bytes it had received.
    pub reset: Option<(u64, u64)>,
    /// Set once the wire has read the whole capture: a gap in `chunks` will then never be filled.
    pub complete: bool,
    /// A UDP flow: the datagrams the recorded server sent, in order, each with how many of the client's
    /// datagrams it had received before.
    pub datagrams: Vec<Datagram>,
    /// A UDP flow: the client's datagrams read from the capture so far.
    pub peer_datagrams: u64,
    /// Stream bytes the app has already written: their chunks are dropped, and retransmissions of them ignored.
    pub played: u64,
    /// Bytes held in `chunks`, not yet played.
    pub held: u64,
    /// The client bytes the server had received when it sent the last chunk played (the turn of filler that
    /// follows it).
    pub played_after: u64,
    /// Where the last filler range ended: filler starting there continues the same hole.
    pub filler_end: Option<u64>,
}

/// The most one ACK may prove missing beyond what is held (a receive window is smaller than this): an ACK
/// further ahead is damage, not proof, and fills nothing.
pub const MAX_HOLE: u64 = 16 << 20;

/// Filler bytes the emulated peer and the recorded app may supply per capture frame read, over the whole replay: a real hole is a
/// few segments missed among many captured, while an ACK far ahead in a capture of a few frames (damage)
/// would have the stack send megabytes no frame recorded. Issue 15's bound (at most 20 packets per frame)
/// holds at a full-size MSS with this, and filler beyond it stays a gap, where the app stops.
pub const FILLER_PER_FRAME: u64 = 4096;

/// One datagram the recorded server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub after_peer_datagrams: u64,
    pub data: Vec<u8>,
}

impl FlowScript {
    /// Record a segment the server sent: `offset` in its stream, the client bytes its ack covered.
    pub fn add(&mut self, offset: u64, data: &[u8], on_wire: usize, after_client_bytes: u64) {
        if on_wire == 0 {
            return;
        }
        let end = offset + on_wire as u64;
        // Keep only what no earlier chunk covers (a retransmission repeats bytes already held or played).
        let covered = self.covered_until(offset.max(self.played));
        if covered >= end {
            return;
        }
        let start = covered.max(offset);
        let skip = (start - offset) as usize;
        let mut bytes: Vec<u8> = data.get(skip..).unwrap_or_default().to_vec();
        let want = (end - start) as usize;
        let missing = want.saturating_sub(bytes.len());
        bytes.resize(want, 0);
        bytes.truncate(want);
        self.held += bytes.len() as u64;
        self.chunks.insert(
            start,
            Chunk {
                data: bytes,
                after_client_bytes,
                missing,
            },
        );
    }

    /// The end of the contiguous bytes held from `offset` on (or `offset` itself when none cover it).
    pub fn covered_until(&self, offset: u64) -> u64 {
        let mut at = offset;
        for (&start, chunk) in self.chunks.range(..=at).rev().take(1) {
            at = at.max(start + chunk.data.len() as u64);
        }
        for (&start, chunk) in self.chunks.range(at..) {
            if start > at {
                break;
            }
            at = start + chunk.data.len() as u64;
        }
        at
    }

    /// The bytes at `offset` the server may send once `client_bytes` client bytes were read, if any are held.
    pub fn next_at(&self, offset: u64, client_bytes: u64) -> Option<&[u8]> {
        let (&start, chunk) = self.chunks.range(..=offset).next_back()?;
        let end = start + chunk.data.len() as u64;
        if offset >= end || chunk.after_client_bytes > client_bytes {
            return None;
        }
        Some(&chunk.data[(offset - start) as usize..])
    }

    /// The peer's recorded ACK says it received the server's stream up to `upto`: every byte before it that no
    /// chunk holds was sent but not captured, and is held now as zeros. Returns the filler ranges added and
    /// whether the first continues the previous filler (one hole of several segments). An `upto` more than
    /// `MAX_HOLE` past what is held fills nothing, and neither does one that would fill more than `budget`
    /// bytes (the replay's filler budget, earned by the frames read: see `FILLER_PER_FRAME`).
    pub fn prove_sent(&mut self, upto: u64, budget: u64) -> (Vec<(u64, u64)>, bool) {
        let mut at = self.played;
        let held_end = self
            .chunks
            .last_key_value()
            .map_or(at, |(&s, c)| s + c.data.len() as u64)
            .max(at);
        let upto = match self.fin {
            Some((fin, _)) => upto.min(fin),
            None => upto,
        };
        if upto <= at || upto - held_end.min(upto) > MAX_HOLE {
            return (Vec::new(), false);
        }
        // A chunk partly played covers the start.
        if let Some((&start, chunk)) = self.chunks.range(..at).next_back() {
            at = at.max(start + chunk.data.len() as u64);
        }
        let mut gaps = Vec::new();
        for (&start, chunk) in self.chunks.range(at..) {
            if start >= upto {
                break;
            }
            if start > at {
                gaps.push((at, start));
            }
            at = at.max(start + chunk.data.len() as u64);
        }
        // One unheld position past everything held is the server's FIN the capture missed (the peer's ack
        // covers it), not a byte of data.
        let fin = at.checked_add(1) == Some(upto) && at >= held_end;
        if at < upto && !fin {
            gaps.push((at, upto));
        }
        if gaps.iter().map(|(s, e)| e - s).sum::<u64>() > budget {
            return (Vec::new(), false);
        }
        let continues = gaps.first().is_some_and(|g| Some(g.0) == self.filler_end);
        for &(start, end) in &gaps {
            // Filler goes in the turn of the bytes before it; at the stream's start, in that of the bytes
            // after it (the server's first bytes may answer a request: they never go before it).
            let after = match self.chunks.range(..start).next_back() {
                Some((_, c)) => c.after_client_bytes,
                None if self.played > 0 => self.played_after,
                None => self
                    .chunks
                    .range(start..)
                    .next()
                    .map_or(0, |(_, c)| c.after_client_bytes),
            };
            let len = (end - start) as usize;
            self.held += len as u64;
            self.chunks.insert(
                start,
                Chunk {
                    data: vec![0; len],
                    after_client_bytes: after,
                    missing: len,
                },
            );
            self.filler_end = Some(end);
        }
        (gaps, continues)
    }

    /// The gaps no ACK proved, once the capture is read: each a range of the stream before held bytes (or the
    /// server's FIN) that the app cannot write. (count, bytes)
    pub fn unproven(&self) -> (u64, u64) {
        let mut at = self.played;
        let (mut holes, mut bytes) = (0, 0);
        let ends = self
            .chunks
            .iter()
            .map(|(&s, c)| (s, s + c.data.len() as u64));
        let fin = self.fin.map(|(f, _)| (f, f));
        for (start, end) in ends.chain(fin) {
            if start > at {
                holes += 1;
                bytes += (start - at).min(MAX_HOLE);
            }
            at = at.max(end);
        }
        (holes, bytes)
    }

    /// The app has written the stream up to `upto`: forget the chunks wholly before it, so a long flow's
    /// script holds only what is still to be played.
    pub fn played_until(&mut self, upto: u64) {
        self.played = self.played.max(upto);
        while let Some(entry) = self.chunks.first_entry() {
            if *entry.key() + entry.get().data.len() as u64 > self.played {
                break;
            }
            let chunk = entry.remove();
            self.held -= chunk.data.len() as u64;
            self.played_after = chunk.after_client_bytes;
        }
    }

    #[cfg(test)]
    pub fn missing_bytes(&self) -> usize {
        self.chunks.values().map(|c| c.missing).sum()
    }
}

/// Every flow's script, keyed by (the stack's address, the client's address); shared by the wire that
/// fills them and the apps that play them.
pub type Scripts = Rc<RefCell<BTreeMap<(SocketAddr, SocketAddr), FlowScript>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_byte_once_and_plays_it_in_turn() {
        let mut s = FlowScript::default();
        s.add(0, b"HTTP/1.1 200", 12, 40);
        s.add(0, b"HTTP/1.1 200", 12, 40); // retransmission
        s.add(6, b"1 200 OK", 8, 40); // overlaps the end
        assert_eq!(s.chunks.len(), 2);
        assert_eq!(s.covered_until(0), 14);
        assert_eq!(s.next_at(0, 39), None, "waits for the client's 40 bytes");
        assert_eq!(s.next_at(0, 40), Some(&b"HTTP/1.1 200"[..]));
        assert_eq!(s.next_at(12, 40), Some(&b"OK"[..]));
        assert_eq!(s.next_at(14, 40), None);
        s.add(20, b"ab", 5, 40); // truncated: 3 bytes missing
        assert_eq!(s.missing_bytes(), 3);
        assert_eq!(s.next_at(20, 40), Some(&b"ab\0\0\0"[..]));
        assert_eq!(s.unproven(), (1, 6), "14..20 is held by no chunk");
    }

    #[test]
    fn an_ack_proves_exactly_the_missing_bytes_below_it() {
        let mut s = FlowScript::default();
        s.add(0, b"abcd", 4, 7);
        s.add(10, b"klmn", 4, 9);
        s.add(20, b"uv", 2, 9);
        // The peer acked up to 12: the gap 4..10 was sent; 14..20 is not proven yet.
        assert_eq!(s.prove_sent(12, u64::MAX), (vec![(4, 10)], false));
        assert_eq!(
            s.next_at(4, 7),
            Some(&[0u8; 6][..]),
            "zeros, in the turn of the bytes before"
        );
        assert_eq!(s.next_at(4, 6), None);
        assert_eq!(s.unproven(), (1, 6));
        // Proving again adds nothing; a later ack proves 14..17 only, then the rest continues that hole.
        assert_eq!(s.prove_sent(12, u64::MAX), (vec![], false));
        assert_eq!(s.prove_sent(17, u64::MAX), (vec![(14, 17)], false));
        assert_eq!(s.prove_sent(30, u64::MAX), (vec![(17, 20), (22, 30)], true));
        assert_eq!(s.covered_until(0), 30);
        assert_eq!(s.unproven(), (0, 0));
    }

    #[test]
    fn filler_at_the_start_waits_for_the_turn_of_the_bytes_after_it() {
        let mut s = FlowScript::default();
        s.add(139, b"body", 4, 6133);
        assert_eq!(s.prove_sent(140, u64::MAX), (vec![(0, 139)], false));
        assert_eq!(s.next_at(0, 0), None, "not before the request");
        assert_eq!(s.next_at(0, 6133).map(<[u8]>::len), Some(139));
    }

    #[test]
    fn filler_stops_at_the_fin_and_never_goes_far_ahead() {
        let mut s = FlowScript::default();
        s.add(0, b"ab", 2, 0);
        // An ack (bit-flipped) 2^31 ahead proves nothing.
        assert_eq!(s.prove_sent(1 << 31, u64::MAX), (vec![], false));
        assert_eq!(s.prove_sent(2 + MAX_HOLE + 1, u64::MAX), (vec![], false));
        assert_eq!(s.held, 2);
        s.fin = Some((5, 0));
        // The ack of the FIN covers one more than the stream: the filler ends at the FIN.
        assert_eq!(s.prove_sent(6, u64::MAX), (vec![(2, 5)], false));
        // Played bytes are never filled again; with no FIN captured, one past the end is the missed FIN.
        let mut t = FlowScript::default();
        t.add(0, b"ab", 2, 0);
        assert_eq!(t.prove_sent(3, u64::MAX), (vec![], false));
        assert_eq!(t.prove_sent(4, u64::MAX), (vec![(2, 4)], false));
        s.played_until(5);
        assert_eq!(s.prove_sent(5, u64::MAX), (vec![], false));
        assert!(s.chunks.is_empty());
    }

    #[test]
    fn filler_past_the_budget_fills_nothing_and_stays_a_gap() {
        let mut s = FlowScript::default();
        s.add(0, b"ab", 2, 0);
        s.add(1000, b"cd", 2, 0);
        // The gap 2..1000 is 998 bytes: a budget of 997 fills none of it, 998 all of it.
        assert_eq!(s.prove_sent(1002, 997), (vec![], false));
        assert_eq!(s.held, 4);
        assert_eq!(s.next_at(2, 0), None, "the app stops at the gap");
        assert_eq!(s.prove_sent(1002, 998), (vec![(2, 1000)], false));
        assert_eq!(s.next_at(2, 0).map(<[u8]>::len), Some(998));
    }

    #[test]
    fn played_bytes_are_forgotten_and_not_taken_again() {
        let mut s = FlowScript::default();
        s.add(0, b"abcd", 4, 1);
        s.add(4, b"efgh", 4, 1);
        s.played_until(6);
        assert_eq!(s.chunks.len(), 1, "the first chunk is gone");
        assert_eq!(s.next_at(6, 1), Some(&b"gh"[..]));
        s.add(0, b"abcd", 4, 1); // a late retransmission of played bytes
        assert_eq!(s.chunks.len(), 1);
        s.played_until(8);
        assert!(s.chunks.is_empty());
    }
}
