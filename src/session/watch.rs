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
