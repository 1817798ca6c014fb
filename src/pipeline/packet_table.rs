//! The packets still on their way, by id. Ids are handed out in order and most packets finish soon after they
//! start, so the table is a window over the id space: lookups are an index, and a record never moves once in.

use std::collections::VecDeque;
use std::ops::Index;

use super::ids::PacketId;
use super::trace::PacketRecord;

#[derive(Debug, Default)]
pub struct PacketTable {
    /// Slot `i` holds packet `base + i`, or `None` once it finished. Boxed so a slot is one word and a record
    /// stays put while the window slides.
    slots: VecDeque<Option<Box<PacketRecord>>>,
    base: PacketId,
    live: usize,
}

impl PacketTable {
    fn slot(&self, id: PacketId) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (i < self.slots.len()).then_some(i)
    }

    /// Add a packet; ids must come in increasing order (the engine numbers them so).
    pub fn insert(&mut self, id: PacketId, record: PacketRecord) {
        if self.live == 0 {
            self.slots.clear();
            self.base = id;
        }
        let end = self.base + self.slots.len() as PacketId;
        assert!(id >= end, "packet ids must increase: {id} after {end}");
        self.slots.extend((end..id).map(|_| None));
        self.slots.push_back(Some(Box::new(record)));
        self.live += 1;
    }

    pub fn get(&self, id: &PacketId) -> Option<&PacketRecord> {
        self.slots.get(self.slot(*id)?)?.as_deref()
    }

    pub fn get_mut(&mut self, id: &PacketId) -> Option<&mut PacketRecord> {
        let i = self.slot(*id)?;
        self.slots.get_mut(i)?.as_deref_mut()
    }

    pub fn remove(&mut self, id: &PacketId) -> Option<PacketRecord> {
        let i = self.slot(*id)?;
        let record = self.slots[i].take()?;
        self.live -= 1;
        // Slide the window past finished packets at its front.
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(*record)
    }

    /// The ids of every packet still on its way, in order.
    pub fn ids(&self) -> Vec<PacketId> {
        let base = self.base;
        let live = self.slots.iter().enumerate().filter(|(_, s)| s.is_some());
        live.map(|(i, _)| base + i as PacketId).collect()
    }

    /// Every packet still on its way, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &PacketRecord> {
        self.slots.iter().filter_map(|s| s.as_deref())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

impl Index<&PacketId> for PacketTable {
    type Output = PacketRecord;

    fn index(&self, id: &PacketId) -> &PacketRecord {
        self.get(id).expect("no packet with this id is on its way")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Dir;
    use crate::pipeline::trace::Trigger;

    fn record(id: PacketId) -> PacketRecord {
        PacketRecord::new(id, Dir::Rx, vec![id as u8], Trigger::Wire)
    }

    #[test]
    fn finds_keeps_and_forgets_packets_by_id() {
        let mut t = PacketTable::default();
        for id in [1, 2, 3, 7] {
            t.insert(id, record(id));
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t[&7].frame, vec![7]);
        assert!(t.get(&5).is_none() && t.get(&0).is_none() && t.get(&8).is_none());
        assert_eq!(t.remove(&2).map(|p| p.id), Some(2));
        assert!(t.remove(&2).is_none());
        assert_eq!(t.ids(), vec![1, 3, 7]);
        t.remove(&1);
        t.get_mut(&3).unwrap().frame.push(9);
        assert_eq!(t[&3].frame, vec![3, 9]);
        t.remove(&3);
        t.remove(&7);
        assert!(t.is_empty() && t.ids().is_empty());
        t.insert(100, record(100));
        assert_eq!(t.ids(), vec![100]);
    }
}
