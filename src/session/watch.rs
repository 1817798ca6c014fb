//! What watches a headless run between two batches of steps: a progress display, a signal that asks the run
//! to stop. The run tells it how far it has got; it answers whether to go on. A stopped run is finished as
//! any run is (packets still on their way end `in_flight`, every export closed complete).

use crate::pipeline::clock::Nanos;

/// How far a headless run has got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The run's clock.
    pub now_ns: Nanos,
    /// Frames that have reached the wire stage from the far side so far.
    pub frames_in: u64,
    /// Finished packets handed to the exports so far.
    pub packets: u64,
    /// A replay: the capture's records read so far.
    pub records_read: Option<u64>,
    /// A replay: bytes of the capture read so far.
    pub bytes_read: Option<u64>,
    /// A replay: the capture's size in bytes, when it has one.
    pub capture_size: Option<u64>,
    /// A simulation: the virtual time it stops at, finished or not (`--max-time`).
    pub max_time_ns: Option<Nanos>,
}

/// The watcher's answer after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Going,
    /// Stop the run here, and finish it.
    Stop,
}

pub trait Watch {
    fn batch(&mut self, progress: &Progress) -> Keep;
    /// What stopped the run, as the summary names it ("SIGINT"), once `batch` has said `Stop`.
    fn stopped_by(&self) -> Option<&'static str> {
        None
    }
}

/// No one watches: the run goes to its end.
pub struct Unwatched;

impl Watch for Unwatched {
    fn batch(&mut self, _progress: &Progress) -> Keep {
        Keep::Going
    }
}

/// Two watchers at once (a progress display and a signal, say): both see every batch, and the run stops if
/// either says so. Nest pairs for more.
impl<A: Watch, B: Watch> Watch for (A, B) {
    fn batch(&mut self, progress: &Progress) -> Keep {
        let first = self.0.batch(progress);
        let second = self.1.batch(progress);
        if first == Keep::Stop || second == Keep::Stop {
            Keep::Stop
        } else {
            Keep::Going
        }
    }

    fn stopped_by(&self) -> Option<&'static str> {
        self.0.stopped_by().or_else(|| self.1.stopped_by())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says `Stop` from its `after`th batch on, and counts the batches it saw.
    struct StopAfter {
        after: u32,
        seen: u32,
    }

    impl Watch for StopAfter {
        fn batch(&mut self, _progress: &Progress) -> Keep {
            self.seen += 1;
            if self.seen >= self.after {
                Keep::Stop
            } else {
                Keep::Going
            }
        }
    }

    #[test]
    fn a_pair_asks_both_and_stops_when_either_does() {
        let p = Progress::default();
        for (a, b) in [(1, 3), (3, 1)] {
            let mut pair = (
                StopAfter { after: a, seen: 0 },
                StopAfter { after: b, seen: 0 },
            );
            assert_eq!(pair.batch(&p), Keep::Stop);
            assert_eq!((pair.0.seen, pair.1.seen), (1, 1), "both were asked");
        }
        let mut going = (Unwatched, StopAfter { after: 2, seen: 0 });
        assert_eq!(going.batch(&p), Keep::Going);
        assert_eq!(going.batch(&p), Keep::Stop);
        assert_eq!((Unwatched, Unwatched).batch(&p), Keep::Going);
    }

    /// Stops at once, and says it was a signal.
    struct Signalled;

    impl Watch for Signalled {
        fn batch(&mut self, _progress: &Progress) -> Keep {
            Keep::Stop
        }
        fn stopped_by(&self) -> Option<&'static str> {
            Some("SIGINT")
        }
    }

    #[test]
    fn a_pair_says_what_stopped_it_whichever_side_it_was() {
        assert_eq!((Unwatched, Signalled).stopped_by(), Some("SIGINT"));
        assert_eq!((Signalled, Unwatched).stopped_by(), Some("SIGINT"));
        assert_eq!((Unwatched, Unwatched).stopped_by(), None);
    }
}
