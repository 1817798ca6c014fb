//! The queues between the tap-service thread and the stack thread. `Shared` holds the guarded rx frame buffer
//! (bounded; a frame arriving when it is full is an overflow, kept as a bounded record so it still gets its
//! `dropped` outcome, and counted as a lost trace event when even that record cannot be kept), and the wake
//! flag the stack thread waits on. `TxQueue` is the bounded queue of frames the stack sent, which the tap
//! thread writes to the TAP; pushing into an empty one pokes the tap thread's wake pipe.
//!
//! Invariants: nothing here grows without bound; every frame read from the TAP is either in the buffer, in
//! the overflow records, or counted in `events_lost`.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::clock::RealClock;
use super::wake::{drain, poke, wake_pipe};
use crate::pipeline::clock::Nanos;
use crate::pipeline::frame_buffer::FrameBuffer;

/// Overflowed frames kept until the stack thread turns them into `dropped` records.
pub const OVERFLOW_RECORDS: usize = 1024;
/// How long the stack thread waits for room in a full tx queue before counting the frame lost.
const TX_WAIT: Duration = Duration::from_millis(50);

/// A frame the tap thread read, with when it read it (on the run's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFrame {
    pub at: Nanos,
    pub frame: Vec<u8>,
}

/// The rx side's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RxCounters {
    /// Frames the tap thread handed over.
    pub read: u64,
    /// Frames that found the buffer full.
    pub overflowed: u64,
    /// Overflowed frames whose record could not be kept either.
    pub events_lost: u64,
    pub high_water: usize,
    pub capacity: usize,
    /// Frames that arrived after the run ended (`close`): outside the run, not traced.
    pub after_close: u64,
}

struct Guarded {
    frames: FrameBuffer<TapFrame>,
    overflowed: VecDeque<TapFrame>,
    /// Set by `wake` (a command, a stop): the stack thread must look up even if no frame came.
    woken: bool,
    read: u64,
    lost_unreported: u64,
    lost_total: u64,
    /// The run has ended: frames handed over now are only counted.
    closed: bool,
    after_close: u64,
    /// The stack thread sleeps in `wait_on_fds`: a wake-up must poke the pipe, not only the condition variable.
    asleep_on_fds: bool,
}

impl Guarded {
    /// Whether the stack thread has something to do (`what`) or was woken; a wake-up is used up here.
    fn take_ready(&mut self, what: WaitFor) -> bool {
        let ready = self.woken
            || (what == WaitFor::Frames
                && (!self.frames.is_empty() || !self.overflowed.is_empty()));
        if ready {
            self.woken = false;
        }
        ready
    }
}

/// The guarded frame buffer and the stack thread's wake-up.
pub struct Shared {
    start: Instant,
    guarded: Mutex<Guarded>,
    changed: Condvar,
    /// Read and write ends of the pipe that wakes the stack thread out of `wait_on_fds` (None if the pipe
    /// could not be made: the stack thread then polls its apps instead).
    fd_wake: Option<(OwnedFd, OwnedFd)>,
}

/// What the stack thread waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// A frame (or an overflow record) to take, or a wake-up.
    Frames,
    /// Only a wake-up: a paused stack leaves frames waiting in the buffer.
    Wake,
}

impl Shared {
    pub fn new(capacity: usize, start: Instant) -> Arc<Self> {
        Arc::new(Shared {
            start,
            guarded: Mutex::new(Guarded {
                frames: FrameBuffer::new(capacity),
                overflowed: VecDeque::new(),
                woken: false,
                read: 0,
                lost_unreported: 0,
                lost_total: 0,
                closed: false,
                after_close: 0,
                asleep_on_fds: false,
            }),
            changed: Condvar::new(),
            fd_wake: wake_pipe().ok(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Guarded> {
        // A panicking holder leaves the queues consistent (every operation is a single push or pop).
        self.guarded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The start of the run: time 0 of its clock.
    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn now(&self) -> Nanos {
        RealClock::at(self.start, Instant::now())
    }

    pub fn capacity(&self) -> usize {
        self.lock().frames.capacity()
    }

    /// Hand frames the tap thread read to the stack thread, under one lock, and wake it.
    pub fn push_batch(&self, batch: &mut Vec<TapFrame>) {
        if batch.is_empty() {
            return;
        }
        let mut g = self.lock();
        if g.closed {
            g.after_close += batch.len() as u64;
            batch.clear();
            return;
        }
        for f in batch.drain(..) {
            g.read += 1;
            if let Err(f) = g.frames.push(f) {
                if g.overflowed.len() < OVERFLOW_RECORDS {
                    g.overflowed.push_back(f);
                } else {
                    g.lost_unreported += 1;
                    g.lost_total += 1;
                }
            }
        }
        let poke_fds = g.asleep_on_fds;
        drop(g);
        self.notify(poke_fds);
    }

    /// Wake the stack thread wherever it sleeps.
    fn notify(&self, asleep_on_fds: bool) {
        self.changed.notify_all();
        if asleep_on_fds && let Some((_, w)) = &self.fd_wake {
            poke(w);
        }
    }

    /// Whether `wait_on_fds` can be used (its wake-up pipe exists).
    pub fn can_wait_on_fds(&self) -> bool {
        self.fd_wake.is_some()
    }

    /// `wait`, also returning when one of `fds` is ready for its `events` (`poll(2)` flags): an app fed from
    /// outside the core sleeps on its descriptors instead of being polled.
    pub fn wait_on_fds(&self, what: WaitFor, deadline: Option<Instant>, fds: &[(RawFd, i16)]) {
        let Some((r, _)) = &self.fd_wake else {
            return self.wait(what, deadline);
        };
        {
            let mut g = self.lock();
            if g.take_ready(what) {
                return;
            }
            g.asleep_on_fds = true;
        }
        let mut polled: Vec<libc::pollfd> = std::iter::once((r.as_raw_fd(), libc::POLLIN))
            .chain(fds.iter().copied())
            .map(|(fd, events)| libc::pollfd {
                fd,
                events,
                revents: 0,
            })
            .collect();
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `polled` is a valid array of pollfd for its length; the timeout, when given, outlives the
        // call; a null signal mask leaves the mask as it is.
        unsafe {
            libc::ppoll(
                polled.as_mut_ptr(),
                polled.len() as libc::nfds_t,
                timeout_ptr,
                std::ptr::null(),
            );
        }
        drain(r);
        let mut g = self.lock();
        g.asleep_on_fds = false;
        g.woken = false;
    }

    /// The earliest frame waiting, and whether it is an overflow record (dropped at the frame buffer) rather
    /// than a frame in the buffer.
    pub fn pop(&self) -> Option<(TapFrame, bool)> {
        let mut g = self.lock();
        let buffered = g.frames.iter().next().map(|f| f.at);
        let overflow = g.overflowed.front().map(|f| f.at);
        match (buffered, overflow) {
            (Some(b), Some(o)) if o < b => g.overflowed.pop_front().map(|f| (f, true)),
            (Some(_), _) => g.frames.pop().map(|f| (f, false)),
            (None, Some(_)) => g.overflowed.pop_front().map(|f| (f, true)),
            (None, None) => None,
        }
    }

    /// Frames waiting in the buffer (not counting overflow records).
    pub fn depth(&self) -> usize {
        self.lock().frames.len()
    }

    /// Lost trace events not yet reported to the pipeline's stats.
    pub fn take_events_lost(&self) -> u64 {
        std::mem::take(&mut self.lock().lost_unreported)
    }

    pub fn counters(&self) -> RxCounters {
        let g = self.lock();
        RxCounters {
            read: g.read,
            overflowed: g.frames.overflows(),
            events_lost: g.lost_total,
            high_water: g.frames.high_water(),
            capacity: g.frames.capacity(),
            after_close: g.after_close,
        }
    }

    /// The run is over: from now on frames are counted as arriving after it, and never queued, so what the
    /// stack thread takes from here on is exactly what arrived during the run.
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// Make the stack thread look up now (a command was sent).
    pub fn wake(&self) {
        let poke_fds = {
            let mut g = self.lock();
            g.woken = true;
            g.asleep_on_fds
        };
        self.notify(poke_fds);
    }

    /// Block until there is something to do (`what`), a wake-up, or `deadline`. Returns at once if there
    /// already is.
    pub fn wait(&self, what: WaitFor, deadline: Option<Instant>) {
        let mut g = self.lock();
        loop {
            if g.take_ready(what) {
                return;
            }
            match deadline {
                None => g = self.changed.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return;
                    }
                    g = self
                        .changed
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

/// The tx side's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxCounters {
    /// Frames the stack thread queued for the TAP.
    pub queued: u64,
    /// Frames the tap thread wrote.
    pub written: u64,
    /// Writes the TAP refused (the kernel side down, ...), and the last error.
    pub write_errors: u64,
    pub last_error: Option<String>,
    /// Frames that found the queue full for longer than the stack thread waits: their `sent` record stands,
    /// but they never reached the TAP; counted as lost trace events.
    pub lost: u64,
}

struct TxState {
    frames: VecDeque<Vec<u8>>,
    capacity: usize,
    counters: TxCounters,
    lost_unreported: u64,
}

/// Frames from the stack thread to the tap thread.
pub struct TxQueue {
    state: Mutex<TxState>,
    room: Condvar,
    /// The write end of the tap thread's wake pipe (None in tests, where nobody writes to a TAP).
    notify: Option<Arc<OwnedFd>>,
}

impl TxQueue {
    pub fn new(capacity: usize, notify: Option<Arc<OwnedFd>>) -> Arc<Self> {
        Arc::new(TxQueue {
            state: Mutex::new(TxState {
                frames: VecDeque::new(),
                capacity,
                counters: TxCounters::default(),
                lost_unreported: 0,
            }),
            room: Condvar::new(),
            notify,
        })
    }

    fn lock(&self) -> MutexGuard<'_, TxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a frame for the TAP, waiting a little for room if the queue is full.
    pub fn push(&self, frame: &[u8]) {
        let deadline = Instant::now() + TX_WAIT;
        let mut s = self.lock();
        while s.frames.len() >= s.capacity {
            let now = Instant::now();
            if now >= deadline {
                s.counters.lost += 1;
                s.lost_unreported += 1;
                return;
            }
            s = self
                .room
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let was_empty = s.frames.is_empty();
        s.frames.push_back(frame.to_vec());
        s.counters.queued += 1;
        drop(s);
        if was_empty && let Some(fd) = &self.notify {
            poke(fd);
        }
    }

    /// Everything queued, oldest first (the tap thread writes it out).
    pub fn take_all(&self) -> VecDeque<Vec<u8>> {
        let taken = std::mem::take(&mut self.lock().frames);
        self.room.notify_all();
        taken
    }

    /// Record how a write went.
    pub fn wrote(&self, result: Result<(), String>) {
        let mut s = self.lock();
        match result {
            Ok(()) => s.counters.written += 1,
            Err(e) => {
                s.counters.write_errors += 1;
                s.counters.last_error = Some(e);
            }
        }
    }

    #[cfg(test)]
    pub fn depth(&self) -> usize {
        self.lock().frames.len()
    }

    pub fn take_events_lost(&self) -> u64 {
        std::mem::take(&mut self.lock().lost_unreported)
    }

    pub fn counters(&self) -> TxCounters {
        self.lock().counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at: Nanos) -> TapFrame {
        TapFrame {
            at,
            frame: vec![at as u8],
        }
    }

    #[test]
    fn overflow_keeps_bounded_records_then_counts_lost_events() {
        let shared = Shared::new(2, Instant::now());
        let mut batch: Vec<TapFrame> = (0..(3 + OVERFLOW_RECORDS as u64)).map(frame).collect();
        shared.push_batch(&mut batch);
        let c = shared.counters();
        assert_eq!(c.read, 3 + OVERFLOW_RECORDS as u64);
        assert_eq!(c.overflowed, 1 + OVERFLOW_RECORDS as u64);
        assert_eq!(c.events_lost, 1);
        assert_eq!(shared.take_events_lost(), 1);
        assert_eq!(shared.take_events_lost(), 0);
        // In arrival order: the two buffered frames, then the overflow records.
        assert_eq!(shared.pop(), Some((frame(0), false)));
        assert_eq!(shared.pop(), Some((frame(1), false)));
        assert_eq!(shared.pop(), Some((frame(2), true)));
    }

    /// How long `wait_on_fds` took to return after `wake_after` ran on another thread `delay` in.
    fn woken_in(
        shared: &Arc<Shared>,
        fds: &[(RawFd, i16)],
        deadline: Option<Instant>,
        wake_after: impl FnOnce() + Send + 'static,
    ) -> Duration {
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            wake_after();
        });
        let t = Instant::now();
        shared.wait_on_fds(WaitFor::Frames, deadline, fds);
        let took = t.elapsed();
        waker.join().unwrap();
        took
    }

    #[test]
    fn waiting_on_descriptors_ends_at_a_ready_fd_a_frame_a_wake_up_or_the_deadline() {
        let shared = Shared::new(4, Instant::now());
        assert!(shared.can_wait_on_fds());
        let (r, w) = wake_pipe().unwrap();
        let fds = [(r.as_raw_fd(), libc::POLLIN)];
        let never = Some(Instant::now() + Duration::from_secs(10));
        // An app's descriptor becomes readable.
        // (The write end stays open: a closed one would leave the read end ready for good.)
        let w = Arc::new(w);
        let w2 = w.clone();
        let took = woken_in(&shared, &fds, never, move || poke(&w2));
        assert!(
            took >= Duration::from_millis(40) && took < Duration::from_secs(5),
            "{took:?}"
        );
        drain(&r);
        // A frame arrives from the tap thread.
        let s = shared.clone();
        let took = woken_in(&shared, &fds, never, move || {
            s.push_batch(&mut vec![frame(1)])
        });
        assert!(
            took >= Duration::from_millis(40) && took < Duration::from_secs(5),
            "{took:?}"
        );
        // A frame already waiting: at once, however long the deadline.
        let t = Instant::now();
        shared.wait_on_fds(WaitFor::Frames, None, &fds);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(shared.pop().is_some());
        // A command's wake-up.
        let s = shared.clone();
        let took = woken_in(&shared, &fds, never, move || s.wake());
        assert!(
            took >= Duration::from_millis(40) && took < Duration::from_secs(5),
            "{took:?}"
        );
        // Nothing: the deadline.
        let t = Instant::now();
        shared.wait_on_fds(WaitFor::Frames, Some(t + Duration::from_millis(30)), &fds);
        assert!(
            t.elapsed() >= Duration::from_millis(30),
            "{:?}",
            t.elapsed()
        );
        drop(w);
    }

    #[test]
    fn after_close_frames_are_only_counted() {
        let shared = Shared::new(4, Instant::now());
        shared.push_batch(&mut vec![frame(1)]);
        shared.close();
        shared.push_batch(&mut vec![frame(2), frame(3)]);
        let c = shared.counters();
        assert_eq!((c.read, c.after_close), (1, 2));
        assert_eq!(shared.pop(), Some((frame(1), false)));
        assert_eq!(shared.pop(), None);
    }

    #[test]
    fn wait_returns_on_a_frame_or_a_wake_but_a_paused_wait_ignores_frames() {
        let shared = Shared::new(4, Instant::now());
        shared.push_batch(&mut vec![frame(1)]);
        shared.wait(WaitFor::Frames, None);
        let t = Instant::now();
        shared.wait(WaitFor::Wake, Some(t + Duration::from_millis(30)));
        assert!(
            t.elapsed() >= Duration::from_millis(30),
            "frames do not wake a paused stack"
        );
        let s2 = shared.clone();
        let h = std::thread::spawn(move || s2.wait(WaitFor::Wake, None));
        std::thread::sleep(Duration::from_millis(10));
        shared.wake();
        h.join().unwrap();
    }

    #[test]
    fn tx_queue_waits_for_room_then_counts_the_frame_lost() {
        let q = TxQueue::new(1, None);
        q.push(b"a");
        q.push(b"b");
        assert_eq!(q.counters().lost, 1);
        assert_eq!(q.take_events_lost(), 1);
        assert_eq!(q.take_all(), VecDeque::from([b"a".to_vec()]));
    }
}
