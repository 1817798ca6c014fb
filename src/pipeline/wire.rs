//! The pipeline's far side: the `Wire` trait a simulated peer, a replayed capture or a TAP device implements,
//! and the `Arrival` of a frame with its `Fate`.

use std::net::SocketAddr;

use super::clock::Nanos;
use super::reason::Reason;

/// What becomes of a frame that arrived at the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Into the frame buffer and on to the stack.
    Inject,
    /// Shown at the wire and finished there, not injected: a replayed capture's own record of what the stack
    /// sent (kept to diff against what it sends now). `flow` is its connection's (stack, peer) addresses when
    /// the wire knows them: the recorded frame marks when that connection's app wrote, so the app is woken.
    Recorded {
        flow: Option<(SocketAddr, SocketAddr)>,
    },
    /// Could not be injected, for this reason (a truncated or unreadable record).
    Refused(Reason),
    /// The far side's own guarded frame buffer (a live tap thread's, shared with the stack thread) was full
    /// when the frame arrived: shown at the wire and the frame buffer, and dropped there as `frame_buffer_full`.
    Overflowed { capacity: usize },
    /// A replayed capture's record of the stack opening a connection: finished at the wire like `Recorded`,
    /// and the app behind the stack connects now, from the recorded port, as the recorded client did.
    Connect { local_port: u16, remote: SocketAddr },
}

/// A frame arriving at the wire, with what the wire knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub frame: Vec<u8>,
    pub fate: Fate,
    /// Shown among the packet's log lines, e.g. "synthetic: ARP request made by the replay".
    pub note: Option<String>,
    /// The frame's number in the capture it was replayed from (1-based, as Wireshark counts); None for
    /// frames the far side made itself.
    pub capture_frame: Option<u64>,
    /// When the far side really read the frame (a live tap thread's timestamp, on the pipeline's clock): its
    /// `wire` and `frame_buffer` hops carry this time, so the time to `stack` is real queueing. None: the
    /// frame arrives when the pipeline takes it (sim, replay).
    pub at: Option<Nanos>,
}

impl Arrival {
    pub fn inject(frame: Vec<u8>) -> Self {
        Arrival {
            frame,
            fate: Fate::Inject,
            note: None,
            capture_frame: None,
            at: None,
        }
    }
}

/// The far side of the wire: a simulated peer, a capture being replayed, or a TAP device.
pub trait Wire {
    /// Let the far side run everything due at or before `now`.
    fn advance(&mut self, now: Nanos);
    /// The next frame that has arrived by `now`.
    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>>;
    /// The next arrival by `now`, with its fate and notes; by default every received frame is injected.
    fn arrive(&mut self, now: Nanos) -> Option<Arrival> {
        self.receive(now).map(Arrival::inject)
    }
    /// A frame the pipeline put on the wire at `now`.
    fn transmit(&mut self, now: Nanos, frame: &[u8]);
    /// When the far side next has something to do.
    fn next_event(&self) -> Option<Nanos>;
    /// Nothing more will come unless the pipeline sends something.
    fn is_done(&self) -> bool;
    /// Does the far side wait for room in the frame buffer rather than overflow it? (A replay at full speed
    /// has no recorded pace to keep: it goes as fast as the stack takes frames. A TAP or a paced replay
    /// does not wait, and overflow is a drop.)
    fn waits_for_room(&self) -> bool {
        false
    }
}
