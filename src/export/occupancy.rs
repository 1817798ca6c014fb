//! Buffer occupancy over time, for the counter tracks of the Chrome trace. The pipeline already reports the
//! levels (`Pipeline::frame_buffer_depth`, `Pipeline::conn_buffer_levels`), so nothing has to be rebuilt from
//! hop records: the sampler reads them after every step and keeps only changes. Output grows with activity,
//! not with steps; memory grows with open connections only. Invariant: every track starts with a sample and a
//! connection's track ends with a sample of zero when the connection closes.

use std::collections::BTreeMap;

use crate::pipeline::clock::Nanos;
use crate::pipeline::ids::ConnId;

/// One counter track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Track {
    /// The guarded frame buffer: frames in the rx queue and the tx queue.
    FrameBuffer,
    /// A TCP connection's own buffers: bytes in its rx buffer (for the app) and tx buffer (from the app).
    Conn(ConnId),
}

/// The level of a track from `t_ns` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub t_ns: Nanos,
    pub track: Track,
    pub rx: u64,
    pub tx: u64,
}

#[derive(Debug, Default)]
pub struct OccupancySampler {
    last: BTreeMap<Track, (u64, u64)>,
    /// Tracks seen in the current observation (reused, so a step allocates nothing).
    seen: Vec<Track>,
}

impl OccupancySampler {
    /// Compare the levels at `t_ns` with the last ones and push a sample for every track that changed, that
    /// appeared, or (for a connection) that is gone, which reads as empty.
    pub fn observe(
        &mut self,
        t_ns: Nanos,
        frame_buffer: (usize, usize),
        conns: impl Iterator<Item = (ConnId, usize, usize)>,
        out: &mut Vec<Sample>,
    ) {
        self.seen.clear();
        let levels = std::iter::once((Track::FrameBuffer, frame_buffer.0, frame_buffer.1))
            .chain(conns.map(|(id, rx, tx)| (Track::Conn(id), rx, tx)));
        for (track, rx, tx) in levels {
            let now = (rx as u64, tx as u64);
            self.seen.push(track);
            if self.last.insert(track, now) != Some(now) {
                out.push(Sample {
                    t_ns,
                    track,
                    rx: now.0,
                    tx: now.1,
                });
            }
        }
        if self.last.len() > self.seen.len() {
            self.seen.sort_unstable();
            let seen = &self.seen;
            self.last.retain(|track, level| {
                let keep = seen.binary_search(track).is_ok();
                if !keep && *level != (0, 0) {
                    out.push(Sample {
                        t_ns,
                        track: *track,
                        rx: 0,
                        tx: 0,
                    });
                }
                keep
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(
        s: &mut OccupancySampler,
        t: Nanos,
        fb: (usize, usize),
        conns: &[(ConnId, usize, usize)],
    ) -> Vec<Sample> {
        let mut out = Vec::new();
        s.observe(t, fb, conns.iter().copied(), &mut out);
        out
    }

    #[test]
    fn only_changes_are_sampled_and_closed_connections_end_at_zero() {
        let mut s = OccupancySampler::default();
        let first = observe(&mut s, 0, (0, 0), &[]);
        assert_eq!(first.len(), 1, "every track starts with a sample");
        assert!(observe(&mut s, 1, (0, 0), &[]).is_empty());
        let up = observe(&mut s, 2, (3, 0), &[(7, 100, 0)]);
        assert_eq!(up.len(), 2);
        assert_eq!(up[1].track, Track::Conn(7));
        assert_eq!((up[1].rx, up[1].tx), (100, 0));
        assert!(observe(&mut s, 3, (3, 0), &[(7, 100, 0)]).is_empty());
        let gone = observe(&mut s, 4, (3, 0), &[]);
        assert_eq!(
            gone,
            vec![Sample {
                t_ns: 4,
                track: Track::Conn(7),
                rx: 0,
                tx: 0
            }]
        );
        assert!(observe(&mut s, 5, (3, 0), &[]).is_empty());
    }
}
