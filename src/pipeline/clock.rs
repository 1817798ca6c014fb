//! Time for the core. The core never reads the wall clock: it is handed a `Clock`. A virtual clock makes a run a
//! pure function of its inputs (deterministic replay, stepping, rewind); a real clock serves live mode.

/// Nanoseconds since the run began.
pub type Nanos = u64;

pub trait Clock {
    /// The current time.
    fn now(&self) -> Nanos;
    /// Account for the work of one hop. A virtual clock moves forward by the configured cost; a real one does not
    /// need to, because real time passes by itself.
    fn charge_hop(&mut self);
    /// Nothing is ready before `t`: let time reach it (a virtual clock jumps; a real clock would wait).
    fn wait_until(&mut self, t: Nanos);
}

/// Deterministic time: it moves only when the pipeline charges a hop or waits for the next event.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    now: Nanos,
    hop_cost: Nanos,
}

impl VirtualClock {
    pub fn new(hop_cost: Nanos) -> Self {
        VirtualClock { now: 0, hop_cost }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Nanos {
        self.now
    }
    fn charge_hop(&mut self) {
        self.now += self.hop_cost;
    }
    fn wait_until(&mut self, t: Nanos) {
        self.now = self.now.max(t);
    }
}

/// smoltcp counts time in microseconds; round up so a timer due within this microsecond is seen as due.
pub fn to_smoltcp(t: Nanos) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(t.div_ceil(1000) as i64)
}

pub fn from_smoltcp(t: smoltcp::time::Instant) -> Nanos {
    (t.total_micros().max(0) as u64) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let mut c = VirtualClock::new(250);
        assert_eq!(c.now(), 0);
        c.charge_hop();
        c.charge_hop();
        assert_eq!(c.now(), 500);
        c.wait_until(100);
        assert_eq!(c.now(), 500, "waiting for the past does not move time back");
        c.wait_until(10_000);
        assert_eq!(c.now(), 10_000);
    }

    #[test]
    fn smoltcp_conversion_rounds_up() {
        assert_eq!(to_smoltcp(0).total_micros(), 0);
        assert_eq!(to_smoltcp(1).total_micros(), 1);
        assert_eq!(to_smoltcp(2000).total_micros(), 2);
        assert_eq!(from_smoltcp(to_smoltcp(3000)), 3000);
    }
}
