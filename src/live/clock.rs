//! The real clock of a live run: monotonic nanoseconds since the run began. The core only reads it; the wall
//! clock never enters `pipeline`. The tap-service thread stamps frames on the same clock (one shared start
//! `Instant`), so a frame's `wire` time and the stack's `now` are comparable.

use std::time::Instant;

use crate::pipeline::clock::{Clock, Nanos};

#[derive(Debug, Clone, Copy)]
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    pub fn new(start: Instant) -> Self {
        RealClock { start }
    }

    /// Nanoseconds from `start` to `t` (0 for an instant before the start).
    pub fn at(start: Instant, t: Instant) -> Nanos {
        t.saturating_duration_since(start).as_nanos() as Nanos
    }
}

impl Clock for RealClock {
    fn now(&self) -> Nanos {
        Self::at(self.start, Instant::now())
    }

    /// Real time passes by itself.
    fn charge_hop(&mut self) {}

    /// Never sleeps: the stack thread does its waiting on the frame buffer's condition variable, where a frame
    /// arriving or a command ends the wait early (see `stack_thread`).
    fn wait_until(&mut self, _t: Nanos) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_clock_moves_on_its_own_and_never_back() {
        let mut c = RealClock::new(Instant::now());
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        c.charge_hop();
        c.wait_until(0);
        let b = c.now();
        assert!(b >= a + 2_000_000, "{a} then {b}");
    }
}
