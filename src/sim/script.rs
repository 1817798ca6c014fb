//! Wires without a live peer: `ScriptedWire` plays a fixed list of timed frames (crafted by tests, or recorded
//! from an earlier run) and keeps what the pipeline sent back; `Recorder` wraps any wire and keeps a copy of
//! every frame that arrived through it, with its time, so a run can be replayed exactly.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::pipeline::clock::Nanos;
use crate::pipeline::wire::Wire;

/// A frame on the wire at a time.
pub type TimedFrame = (Nanos, Vec<u8>);

/// A frame on the wire at a time, and whether it arrived (true) or was transmitted by the pipeline.
pub type WireFrame = (Nanos, bool, Vec<u8>);

#[derive(Debug, Default)]
pub struct ScriptedWire {
    script: VecDeque<TimedFrame>,
    /// Frames the pipeline transmitted, with their times (unless built to count them only).
    pub sent: Rc<RefCell<Vec<TimedFrame>>>,
    keep_sent: bool,
    /// How many frames the pipeline transmitted.
    pub sent_count: u64,
}

impl ScriptedWire {
    /// Frames must be in time order; out-of-order times are delivered as soon as they are reached.
    pub fn new(frames: impl IntoIterator<Item = TimedFrame>) -> Self {
        ScriptedWire {
            script: frames.into_iter().collect(),
            sent: Rc::default(),
            keep_sent: true,
            sent_count: 0,
        }
    }

    /// A wire that counts what the pipeline sends and forgets it, as a network would (for benchmarks).
    pub fn counting_output(frames: impl IntoIterator<Item = TimedFrame>) -> Self {
        ScriptedWire {
            keep_sent: false,
            ..Self::new(frames)
        }
    }
}

impl Wire for ScriptedWire {
    fn advance(&mut self, _now: Nanos) {}

    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>> {
        if self.script.front().is_some_and(|(t, _)| *t <= now) {
            return self.script.pop_front().map(|(_, f)| f);
        }
        None
    }

    fn transmit(&mut self, now: Nanos, frame: &[u8]) {
        self.sent_count += 1;
        if self.keep_sent {
            self.sent.borrow_mut().push((now, frame.to_vec()));
        }
    }

    fn next_event(&self) -> Option<Nanos> {
        self.script.front().map(|(t, _)| *t)
    }

    fn is_done(&self) -> bool {
        self.script.is_empty()
    }
}

/// Records every frame that arrives through the wrapped wire, and everything on the wire in both directions.
pub struct Recorder<W: Wire> {
    inner: W,
    pub received: Rc<RefCell<Vec<TimedFrame>>>,
    /// Both directions in the order they crossed the wire (a capture of it): (time, toward the pipeline, frame).
    pub both: Rc<RefCell<Vec<WireFrame>>>,
}

impl<W: Wire> Recorder<W> {
    pub fn new(inner: W) -> Self {
        Recorder {
            inner,
            received: Rc::default(),
            both: Rc::default(),
        }
    }
}

impl<W: Wire> Wire for Recorder<W> {
    fn advance(&mut self, now: Nanos) {
        self.inner.advance(now)
    }

    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>> {
        let f = self.inner.receive(now)?;
        self.received.borrow_mut().push((now, f.clone()));
        self.both.borrow_mut().push((now, true, f.clone()));
        Some(f)
    }

    fn transmit(&mut self, now: Nanos, frame: &[u8]) {
        self.both.borrow_mut().push((now, false, frame.to_vec()));
        self.inner.transmit(now, frame)
    }

    fn next_event(&self) -> Option<Nanos> {
        self.inner.next_event()
    }

    fn is_done(&self) -> bool {
        self.inner.is_done()
    }
}
