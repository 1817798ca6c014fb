//! Idle gaps: a capture's recorded time with every gap longer than `--max-gap` shortened to it, so a replay's
//! work follows its frames, not its clock (a timestamp decades ahead, damaged or real, would otherwise have the
//! stack retransmit across all of that virtual time). The survey and the wire feed the same timestamps in the
//! same order, so both see the same played time.

use crate::pipeline::clock::Nanos;

/// Gaps longer than this are shortened to it, unless `--max-gap` says otherwise: past any retransmission
/// timeout a TCP stack waits for, short enough that a damaged timestamp costs nothing.
pub const DEFAULT_MAX_GAP_NS: Nanos = 10_000_000_000;

/// Recorded time in, played time out (ns since the first timestamp), gaps shortened.
#[derive(Debug, Clone)]
pub struct GapClock {
    max_gap: Nanos,
    first: Option<u64>,
    last: u64,
    removed: u64,
    /// Gaps shortened so far, and the longest of them as recorded.
    pub shortened: u64,
    pub longest: u64,
}

impl GapClock {
    pub fn new(max_gap: Nanos) -> Self {
        GapClock {
            max_gap,
            first: None,
            last: 0,
            removed: 0,
            shortened: 0,
            longest: 0,
        }
    }

    /// The played time of a frame recorded at `t_ns`. A frame out of time order plays with the latest before
    /// it (file order), as the wire has always played them.
    pub fn played(&mut self, t_ns: u64) -> u64 {
        let first = match self.first {
            Some(first) => first,
            None => {
                self.first = Some(t_ns);
                self.last = t_ns;
                t_ns
            }
        };
        if t_ns > self.last {
            let gap = t_ns - self.last;
            if gap > self.max_gap {
                self.removed += gap - self.max_gap;
                self.shortened += 1;
                self.longest = self.longest.max(gap);
            }
            self.last = t_ns;
        }
        self.last.saturating_sub(first).saturating_sub(self.removed)
    }

    /// Recorded time skipped by shortening.
    pub fn removed(&self) -> u64 {
        self.removed
    }
}

impl Default for GapClock {
    fn default() -> Self {
        GapClock::new(DEFAULT_MAX_GAP_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn gaps_longer_than_the_limit_are_shortened_to_it() {
        let mut c = GapClock::new(10 * S);
        let base = 1_700_000_000 * S;
        assert_eq!(c.played(base), 0);
        assert_eq!(c.played(base + 2 * S), 2 * S);
        // Thirty years later: played 10 s after the frame before.
        let far = base + 2 * S + 30 * 365 * 86_400 * S;
        assert_eq!(c.played(far), 12 * S);
        // Back in time again (the damaged one was the odd one out): plays with it, in file order.
        assert_eq!(c.played(base + 3 * S), 12 * S);
        assert_eq!(c.played(far + S), 13 * S);
        assert_eq!((c.shortened, c.longest), (1, 30 * 365 * 86_400 * S));
        assert_eq!(c.removed(), 30 * 365 * 86_400 * S - 10 * S);
    }

    #[test]
    fn a_capture_without_long_gaps_plays_as_recorded() {
        let mut c = GapClock::default();
        for t in [5u64, 7, 7, 6, 9_000_000_000] {
            c.played(t);
        }
        assert_eq!(c.played(9_000_000_005), 9_000_000_000);
        assert_eq!(c.shortened, 0);
    }
}
