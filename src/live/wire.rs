//! The live wire: the pipeline's `Wire` over the queues the tap-service thread fills and empties. Frames come
//! out of the guarded frame buffer with the time the tap thread read them (so their `wire` and `frame_buffer`
//! hops are real, and the wait until `stack` is real queueing); overflow records come out as
//! `Fate::Overflowed` and are dropped at `frame_buffer`. Transmitted frames go to the bounded tx queue (a tx
//! frame's `wire` hop is that hand-over; the tap thread writes it to the TAP right after). The far side never
//! ends on its own: `is_done` is false until the stack thread stops.

use std::sync::Arc;

use super::buffer::{Shared, TxQueue};
use crate::pipeline::clock::Nanos;
use crate::pipeline::{Arrival, Fate, Wire};

pub struct LiveWire {
    shared: Arc<Shared>,
    tx: Arc<TxQueue>,
    capacity: usize,
}

impl LiveWire {
    pub fn new(shared: Arc<Shared>, tx: Arc<TxQueue>) -> Self {
        let capacity = shared.capacity();
        LiveWire {
            shared,
            tx,
            capacity,
        }
    }
}

impl Wire for LiveWire {
    fn advance(&mut self, _now: Nanos) {}

    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>> {
        self.arrive(now).map(|a| a.frame)
    }

    fn arrive(&mut self, _now: Nanos) -> Option<Arrival> {
        let (f, overflowed) = self.shared.pop()?;
        let fate = if overflowed {
            Fate::Overflowed {
                capacity: self.capacity,
            }
        } else {
            Fate::Inject
        };
        Some(Arrival {
            frame: f.frame,
            fate,
            note: None,
            capture_frame: None,
            at: Some(f.at),
        })
    }

    fn transmit(&mut self, _now: Nanos, frame: &[u8]) {
        self.tx.push(frame);
    }

    /// Frames come when they come: the stack thread waits on the buffer, not on a schedule.
    fn next_event(&self) -> Option<Nanos> {
        None
    }

    fn is_done(&self) -> bool {
        false
    }

    /// The pipeline takes a frame from the guarded buffer only when its own queue has room, so a slow stack
    /// leaves frames waiting (and overflowing) in the buffer the tap thread fills, where the drop is counted.
    fn waits_for_room(&self) -> bool {
        true
    }
}
