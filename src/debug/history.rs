//! The packet list's history: one compact entry for every finished packet (up to `HISTORY_ROWS`), kept in id
//! order with its frame already dissected, and the ids that pass the list filter — so the list can scroll
//! through a million packets and a redraw only formats the rows on screen.

use std::collections::VecDeque;

use crate::pipeline::clock::Nanos;
use crate::pipeline::dissect::FrameInfo;
use crate::pipeline::ids::{ConnId, PacketId};
use crate::pipeline::stage::{Dir, OutcomeKind, Stage};
use crate::pipeline::trace::PacketRecord;

use super::filter::{Filter, Subject};

/// Finished packets the list remembers; beyond this the oldest are forgotten (and counted).
pub const HISTORY_ROWS: usize = 1_000_000;

/// What the list keeps of a finished packet: enough to draw its row, filter it and describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: PacketId,
    /// Time of its first hop.
    pub t_ns: Nanos,
    pub dir: Dir,
    /// Bit `Stage as usize` is set for every stage it has a hop at.
    pub reached: u8,
    /// Where it ended.
    pub stage: Stage,
    pub outcome: OutcomeKind,
    pub reason: Option<&'static str>,
    pub flow: Option<ConnId>,
    pub info: FrameInfo,
}

impl Entry {
    pub fn of(p: &PacketRecord) -> Entry {
        let reached = p.hops.iter().fold(0u8, |m, h| m | 1 << (h.stage as u8));
        let (outcome, stage, reason) = match &p.outcome {
            Some(o) => (o.kind, o.stage, o.reason.as_ref().map(|r| r.code())),
            None => (
                OutcomeKind::InFlight,
                p.last_stage().unwrap_or(Stage::Wire),
                None,
            ),
        };
        Entry {
            id: p.id,
            t_ns: p.hops.first().map_or(0, |h| h.t_ns),
            dir: p.dir,
            reached,
            stage,
            outcome,
            reason,
            flow: p.flow,
            info: p.info.clone(),
        }
    }

    pub fn has_reached(&self, stage: Stage) -> bool {
        self.reached & (1 << (stage as u8)) != 0
    }
}

impl Subject for Entry {
    fn dir(&self) -> Dir {
        self.dir
    }
    fn outcome(&self) -> Option<OutcomeKind> {
        Some(self.outcome)
    }
    fn reached(&self, stage: Stage) -> bool {
        self.has_reached(stage)
    }
    fn flow(&self) -> Option<ConnId> {
        self.flow
    }
    fn frame_info(&self) -> &FrameInfo {
        &self.info
    }
}

/// Every finished packet's entry, by id, and the ids the list filter lets through.
#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<Entry>,
    filter: Filter,
    /// Ids of the entries that match `filter`, ascending; `None` while the filter matches everything.
    matching: Option<VecDeque<PacketId>>,
    forgotten: u64,
    capacity: usize,
}

impl History {
    pub fn new() -> History {
        History::with_capacity(HISTORY_ROWS)
    }

    /// A history that remembers at most `capacity` packets.
    pub fn with_capacity(capacity: usize) -> History {
        History {
            capacity: capacity.max(1),
            ..History::default()
        }
    }

    /// Remember a finished packet. Packets finish roughly in id order, so this is nearly always an append.
    pub fn push(&mut self, p: &PacketRecord) {
        let entry = Entry::of(p);
        let passes = self.filter.matches(&entry);
        insert_sorted(&mut self.entries, entry, |e| e.id);
        if passes && let Some(ids) = &mut self.matching {
            insert_sorted(ids, p.id, |id| *id);
        }
        while self.entries.len() > self.capacity {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.forgotten += 1;
            if let Some(ids) = &mut self.matching {
                while ids.front().is_some_and(|&id| id <= old.id) {
                    ids.pop_front();
                }
            }
        }
    }

    /// Filter the list: every remembered entry is tested once now, new ones as they come.
    pub fn set_filter(&mut self, filter: Filter) {
        self.matching = (!filter.is_match_all()).then(|| {
            self.entries
                .iter()
                .filter(|e| filter.matches(*e))
                .map(|e| e.id)
                .collect()
        });
        self.filter = filter;
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        if let Some(ids) = &mut self.matching {
            ids.clear();
        }
        self.forgotten = 0;
    }

    /// Entries remembered (whatever the filter).
    pub fn total(&self) -> usize {
        self.entries.len()
    }

    /// Packets forgotten to stay within the capacity.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    pub fn entry(&self, id: PacketId) -> Option<&Entry> {
        let i = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        self.entries.get(i)
    }

    /// Entries that pass the filter.
    pub fn len(&self) -> usize {
        match &self.matching {
            Some(ids) => ids.len(),
            None => self.entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id of the `i`th entry that passes the filter.
    pub fn id_at(&self, i: usize) -> Option<PacketId> {
        match &self.matching {
            Some(ids) => ids.get(i).copied(),
            None => self.entries.get(i).map(|e| e.id),
        }
    }

    /// How many entries that pass the filter have an id below `id`.
    pub fn count_below(&self, id: PacketId) -> usize {
        match &self.matching {
            Some(ids) => ids.partition_point(|&x| x < id),
            None => self.entries.partition_point(|e| e.id < id),
        }
    }
}

/// Insert keeping `items` ascending by `key`; searches from the back, where a new item nearly always goes.
fn insert_sorted<T>(items: &mut VecDeque<T>, item: T, key: impl Fn(&T) -> PacketId) {
    let k = key(&item);
    if items.back().is_none_or(|last| key(last) < k) {
        items.push_back(item);
        return;
    }
    let at = items.partition_point(|x| key(x) < k);
    if items.get(at).is_some_and(|x| key(x) == k) {
        items[at] = item;
    } else {
        items.insert(at, item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::Stage;
    use crate::pipeline::trace::{Hop, Outcome, Trigger};

    /// A finished rx packet with a real frame: a TCP segment to `port`, ending at `stage`.
    fn packet(id: PacketId, port: u16, kind: OutcomeKind, stage: Stage) -> PacketRecord {
        use crate::replay::testgen::{ethernet, ipv4, tcp};
        let segment = tcp(40000, port, 1, 0, 0x02, &[]);
        let frame = ethernet(
            [2; 6],
            [4; 6],
            0x0800,
            &ipv4([10, 0, 0, 2], [10, 0, 0, 1], 6, &segment),
        );
        let mut p = PacketRecord::new(id, Dir::Rx, frame, Trigger::Wire);
        p.hops.push(Hop {
            stage: Stage::Wire,
            t_ns: id * 1000,
        });
        p.hops.push(Hop {
            stage,
            t_ns: id * 1000 + 10,
        });
        p.outcome = Some(Outcome {
            kind,
            stage,
            reason: None,
            note: None,
        });
        p
    }

    fn ids(h: &History) -> Vec<PacketId> {
        (0..h.len()).map(|i| h.id_at(i).unwrap()).collect()
    }

    #[test]
    fn entries_stay_in_id_order_when_packets_finish_out_of_order() {
        let mut h = History::new();
        for id in [1, 2, 5, 3, 4, 7, 6] {
            h.push(&packet(id, 80, OutcomeKind::Consumed, Stage::Stack));
        }
        assert_eq!(ids(&h), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(h.count_below(5), 4);
        assert_eq!(h.count_below(100), 7);
        let e = h.entry(3).unwrap();
        assert_eq!(
            (e.t_ns, e.outcome, e.stage),
            (3000, OutcomeKind::Consumed, Stage::Stack)
        );
        assert!(e.has_reached(Stage::Wire) && e.has_reached(Stage::Stack));
        assert!(!e.has_reached(Stage::FrameBuffer));
    }

    #[test]
    fn the_filter_applies_to_old_and_new_entries() {
        let mut h = History::new();
        h.push(&packet(1, 80, OutcomeKind::Consumed, Stage::Stack));
        h.push(&packet(2, 22, OutcomeKind::Dropped, Stage::FrameBuffer));
        h.push(&packet(3, 80, OutcomeKind::Delivered, Stage::App));
        h.set_filter(Filter::parse("port 80").unwrap());
        assert_eq!(ids(&h), [1, 3]);
        h.push(&packet(5, 80, OutcomeKind::Consumed, Stage::Stack));
        h.push(&packet(4, 22, OutcomeKind::Consumed, Stage::Stack));
        assert_eq!(ids(&h), [1, 3, 5]);
        assert_eq!(h.count_below(4), 2);
        h.set_filter(Filter::parse("dropped or stage app").unwrap());
        assert_eq!(ids(&h), [2, 3]);
        h.set_filter(Filter::default());
        assert_eq!(ids(&h), [1, 2, 3, 4, 5]);
        assert_eq!(h.total(), 5);
    }

    #[test]
    fn beyond_capacity_the_oldest_are_forgotten_and_counted() {
        let mut h = History::with_capacity(3);
        h.set_filter(Filter::parse("port 80").unwrap());
        for id in 1..=5 {
            h.push(&packet(
                id,
                if id % 2 == 0 { 22 } else { 80 },
                OutcomeKind::Consumed,
                Stage::Stack,
            ));
        }
        assert_eq!(h.total(), 3);
        assert_eq!(h.forgotten(), 2);
        assert_eq!(ids(&h), [3, 5]);
        assert!(h.entry(2).is_none());
    }
}
