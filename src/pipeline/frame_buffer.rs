//! The guarded frame buffer between the I/O side and the stack: a bounded FIFO. A push into a full buffer is
//! refused (the caller records a counted `dropped` at `frame_buffer`), never blocks and never grows.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct FrameBuffer<T> {
    queue: VecDeque<T>,
    capacity: usize,
    high_water: usize,
    overflows: u64,
}

impl<T> FrameBuffer<T> {
    pub fn new(capacity: usize) -> Self {
        FrameBuffer {
            queue: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            high_water: 0,
            overflows: 0,
        }
    }

    /// Queue an item, or hand it back if the buffer is full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.queue.len() >= self.capacity {
            self.overflows += 1;
            return Err(item);
        }
        self.queue.push_back(item);
        self.high_water = self.high_water.max(self.queue.len());
        Ok(())
    }

    pub fn pop(&mut self) -> Option<T> {
        self.queue.pop_front()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn high_water(&self) -> usize {
        self.high_water
    }

    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.queue.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_capacity_and_counts() {
        let mut b = FrameBuffer::new(2);
        assert!(b.push(1).is_ok());
        assert!(b.push(2).is_ok());
        assert_eq!(b.push(3), Err(3));
        assert_eq!(b.overflows(), 1);
        assert_eq!(b.pop(), Some(1));
        assert!(b.push(4).is_ok());
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(b.high_water(), 2);
    }
}
