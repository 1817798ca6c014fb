//! The packet list as the app scrolls it: the finished packets in the history (through the list filter)
//! merged by id with the packets still in flight, addressed by rank. A move or a redraw costs
//! O(in-flight · log n + rows on screen), however many packets the history holds.

use crate::debug::driver::Driver;
use crate::debug::history::History;
use crate::pipeline::ids::PacketId;

pub struct ListModel<'a> {
    history: &'a History,
    /// In-flight packets that pass the filter, ascending (at most `MAX_IN_FLIGHT_ROWS`).
    in_flight: Vec<PacketId>,
}

impl<'a> ListModel<'a> {
    pub fn new(debugger: &'a dyn Driver) -> ListModel<'a> {
        let history = debugger.history();
        let filter = history.filter();
        let mut in_flight: Vec<PacketId> = debugger
            .in_flight()
            .into_iter()
            .filter(|p| filter.matches(*p))
            .map(|p| p.id)
            .collect();
        in_flight.sort_unstable();
        ListModel { history, in_flight }
    }

    pub fn len(&self) -> usize {
        self.history.len() + self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `id` is in the list: `Ok(rank)`, or `Err(rank it would have)` when it is not listed.
    pub fn rank(&self, id: PacketId) -> Result<usize, usize> {
        let below_h = self.history.count_below(id);
        let below_f = self.in_flight.partition_point(|&f| f < id);
        let rank = below_h + below_f;
        if self.history.id_at(below_h) == Some(id) || self.in_flight.get(below_f) == Some(&id) {
            Ok(rank)
        } else {
            Err(rank)
        }
    }

    pub fn id_at(&self, rank: usize) -> Option<PacketId> {
        self.window(rank, 1).first().copied()
    }

    pub fn last(&self) -> Option<PacketId> {
        self.len().checked_sub(1).and_then(|r| self.id_at(r))
    }

    /// The ids at ranks `start .. start + n` (fewer at the end).
    pub fn window(&self, start: usize, n: usize) -> Vec<PacketId> {
        // In-flight id j sits at rank j + (history entries below it), which grows with j: the ones before
        // `start` are a prefix.
        let mut f = self
            .in_flight
            .partition_point(|&id| self.rank_in_flight(id) < start);
        let mut h = start - f;
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            let next_h = self.history.id_at(h);
            let next_f = self.in_flight.get(f).copied();
            let id = match (next_h, next_f) {
                (Some(a), Some(b)) if a < b => {
                    h += 1;
                    a
                }
                (_, Some(b)) => {
                    f += 1;
                    b
                }
                (Some(a), None) => {
                    h += 1;
                    a
                }
                (None, None) => break,
            };
            ids.push(id);
        }
        ids
    }

    fn rank_in_flight(&self, id: PacketId) -> usize {
        self.in_flight.partition_point(|&f| f < id) + self.history.count_below(id)
    }
}
