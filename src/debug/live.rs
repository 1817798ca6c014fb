//! The live run as the TUI drives it. The stack thread owns the pipeline; a `Publisher` (its observer) hands
//! the TUI thread, through one mutex-guarded `Published`, the counters, the packets in flight and every
//! finished packet, and checks the breakpoints after every step so a hit holds the run at that very step.
//! `LiveDriver` (the TUI side) takes what was published at each tick and sends pause / resume / step
//! commands. Drawing reads the driver's own copy: no lock is held while drawing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::export::sinks::{ExportPlan, Written};
use crate::live::buffer::Shared;
use crate::live::stack_thread::{Command, Controller, StackObserver, Status};
use crate::pipeline::Pipeline;
use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::StepReport;
use crate::pipeline::ids::PacketId;
use crate::pipeline::stage::Stage;
use crate::pipeline::trace::PacketRecord;

use super::breakpoints::{Breakpoint, Checker, Hit};
use super::driver::Moved;
use super::driver::{Advanced, Driver};
use super::history::History;
use super::snapshot::{MAX_IN_FLIGHT_ROWS, Snapshot};

/// The stack thread publishes at most this often while running (and at once when held, stepped or hit).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(30);
/// Finished packets waiting for the TUI to take them; beyond this they are counted as events lost.
pub const MAX_PENDING: usize = 200_000;
/// Finished packets the TUI keeps whole (hops, log, bytes) for the detail pane; the list keeps every one.
pub const KEPT_WHOLE: usize = 20_000;
/// How long `n` keeps stepping a live run at most.
const NEXT_WAIT: Duration = Duration::from_secs(2);
/// How long `s` waits for the stack thread to make its step before saying it is pending.
const STEP_WAIT: Duration = Duration::from_millis(300);

/// What the stack thread last published.
#[derive(Debug, Default)]
pub struct Published {
    pub counters: Snapshot,
    pub in_flight: Vec<PacketRecord>,
    /// Finished since the TUI last took them, in the order they finished.
    pub finished: Vec<PacketRecord>,
    /// Finished packets the TUI never got (it fell `MAX_PENDING` behind).
    pub lost: u64,
    pub now: Nanos,
    pub steps: u64,
    pub paused: bool,
    /// The last step's report while held (what `s` did).
    pub last_step: Option<StepReport>,
    pub hit: Option<Hit>,
}

/// What both sides share.
#[derive(Debug, Default)]
pub struct LiveLink {
    published: Mutex<Published>,
    /// The TUI's breakpoints, and a version the stack thread compares to notice a change without a lock.
    breakpoints: Mutex<Vec<Breakpoint>>,
    breakpoints_version: AtomicU64,
}

impl LiveLink {
    pub fn new() -> Arc<LiveLink> {
        Arc::new(LiveLink::default())
    }

    fn published(&self) -> MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stack thread's side: an observer that publishes and checks breakpoints.
pub struct Publisher {
    link: Arc<LiveLink>,
    /// The guarded frame buffer: frames waiting there are not packets yet, but the diagram counts them.
    frames: Arc<Shared>,
    checker: Checker,
    breakpoints: Vec<Breakpoint>,
    version: u64,
    pending: Vec<PacketRecord>,
    lost: u64,
    last_publish: Option<Instant>,
    changed: bool,
}

impl Publisher {
    pub fn new(link: Arc<LiveLink>, frames: Arc<Shared>) -> Publisher {
        Publisher {
            link,
            frames,
            checker: Checker::default(),
            breakpoints: Vec::new(),
            version: 0,
            pending: Vec::new(),
            lost: 0,
            last_publish: None,
            changed: true,
        }
    }

    /// Hand the TUI the run as it is now; `step` is the step it is held after, `hit` the breakpoint that held it.
    fn publish(
        &mut self,
        pipeline: &Pipeline,
        status: &Status,
        step: Option<StepReport>,
        hit: Option<Hit>,
    ) {
        let mut counters = Snapshot::counters(pipeline);
        counters.rx[Stage::FrameBuffer as usize].queued += self.frames.depth() as u64;
        let in_flight: Vec<PacketRecord> = pipeline
            .in_flight()
            .take(MAX_IN_FLIGHT_ROWS)
            .cloned()
            .collect();
        let mut out = self.link.published();
        out.counters = counters;
        out.in_flight = in_flight;
        let room = MAX_PENDING.saturating_sub(out.finished.len());
        if self.pending.len() > room {
            self.lost += (self.pending.len() - room) as u64;
            self.pending.truncate(room);
        }
        out.finished.append(&mut self.pending);
        out.lost = self.lost;
        out.now = pipeline.now();
        out.steps = status.steps;
        out.paused = status.paused;
        if step.is_some() {
            out.last_step = step;
        }
        if hit.is_some() {
            out.hit = hit;
        }
        self.last_publish = Some(Instant::now());
        self.changed = false;
    }

    fn due(&self) -> bool {
        self.last_publish
            .is_none_or(|t| t.elapsed() >= PUBLISH_EVERY)
    }

    fn sync_breakpoints(&mut self) {
        let version = self.link.breakpoints_version.load(Ordering::Acquire);
        if version != self.version {
            self.breakpoints = self
                .link
                .breakpoints
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            self.version = version;
        }
    }
}

impl StackObserver for Publisher {
    fn stepped(&mut self, pipeline: &Pipeline, status: &Status, report: &StepReport) -> bool {
        self.sync_breakpoints();
        self.changed = true;
        let hit = if self.breakpoints.is_empty() {
            None
        } else {
            let lookup =
                |id: PacketId| pipeline.packet(id).or_else(|| pipeline.finished_packet(id));
            self.checker.check(&self.breakpoints, report, &lookup, &|| {
                pipeline.conn_buffer_levels().collect()
            })
        };
        for id in &report.finished {
            self.checker.forget(*id);
        }
        let stopped = hit.is_some();
        let held = status.paused || stopped;
        if held || self.due() {
            let held_status = Status {
                paused: held,
                ..*status
            };
            self.publish(pipeline, &held_status, held.then(|| report.clone()), hit);
        }
        stopped
    }

    fn finished(&mut self, packet: &PacketRecord) {
        self.changed = true;
        if self.pending.len() < MAX_PENDING {
            self.pending.push(packet.clone());
        } else {
            self.lost += 1;
        }
    }

    fn idle(&mut self, pipeline: &Pipeline, status: &Status) {
        if self.changed || self.due() {
            self.publish(pipeline, status, None, None);
        }
    }
}

/// The TUI thread's side.
pub struct LiveDriver {
    link: Arc<LiveLink>,
    control: Controller,
    counters: Snapshot,
    in_flight: Vec<PacketRecord>,
    now: Nanos,
    steps: u64,
    lost: u64,
    history: History,
    /// The newest finished packets, whole, by id.
    kept: BTreeMap<PacketId, PacketRecord>,
    breakpoints: Vec<Breakpoint>,
    hit: Option<Hit>,
    last_step: Option<StepReport>,
}

impl LiveDriver {
    pub fn new(link: Arc<LiveLink>, control: Controller) -> LiveDriver {
        LiveDriver {
            link,
            control,
            counters: Snapshot::default(),
            in_flight: Vec::new(),
            now: 0,
            steps: 0,
            lost: 0,
            history: History::new(),
            kept: BTreeMap::new(),
            breakpoints: Vec::new(),
            hit: None,
            last_step: None,
        }
    }

    /// Take in what the stack thread published since the last look.
    fn take_published(&mut self) {
        let finished = {
            let mut p = self.link.published();
            self.counters = p.counters.clone();
            self.in_flight = p.in_flight.clone();
            self.now = p.now;
            self.steps = p.steps;
            self.lost = p.lost;
            if let Some(hit) = p.hit.take() {
                self.hit = Some(hit);
            }
            if let Some(step) = p.last_step.take() {
                self.last_step = Some(step);
            }
            std::mem::take(&mut p.finished)
        };
        for packet in finished {
            self.history.push(&packet);
            self.kept.insert(packet.id, packet);
            while self.kept.len() > KEPT_WHOLE {
                self.kept.pop_first();
            }
        }
    }

    /// Hand the stack thread the breakpoints as they are now.
    fn share_breakpoints(&self) {
        *self
            .link
            .breakpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.breakpoints.clone();
        self.link.breakpoints_version.fetch_add(1, Ordering::AcqRel);
    }

    fn send(&self, command: Command) {
        self.control.send(command);
    }
}

impl Driver for LiveDriver {
    fn counters(&self) -> Snapshot {
        let mut s = self.counters.clone();
        s.events_lost += self.lost;
        s
    }
    fn in_flight(&self) -> Vec<&PacketRecord> {
        self.in_flight.iter().collect()
    }
    fn packet(&self, id: PacketId) -> Option<&PacketRecord> {
        self.in_flight
            .iter()
            .find(|p| p.id == id)
            .or_else(|| self.kept.get(&id))
    }
    fn history(&self) -> &History {
        &self.history
    }
    fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }
    fn now(&self) -> Nanos {
        self.now
    }
    fn moves(&self) -> u64 {
        self.steps
    }
    fn breakpoints(&self) -> &[Breakpoint] {
        &self.breakpoints
    }
    fn add_breakpoint(&mut self, breakpoint: Breakpoint) {
        self.breakpoints.push(breakpoint);
        self.share_breakpoints();
    }
    fn clear_breakpoints(&mut self) {
        self.breakpoints.clear();
        self.share_breakpoints();
    }
    fn step(&mut self) -> Moved {
        let before = self.steps;
        self.last_step = None;
        self.send(Command::Pause);
        self.send(Command::Step);
        let start = Instant::now();
        while start.elapsed() < STEP_WAIT {
            std::thread::sleep(Duration::from_millis(2));
            self.take_published();
            if self.steps > before
                && let Some(report) = self.last_step.take()
            {
                return Moved::Stepped(report);
            }
        }
        Moved::Pending
    }
    fn next(&mut self, packet: PacketId, limit: u64) -> Moved {
        let mut last = Moved::Pending;
        // Each step is a round trip to the stack thread: bound the whole move in time, not only in steps, so
        // the screen never freezes for long.
        let start = Instant::now();
        for _ in 0..limit {
            if self.kept.contains_key(&packet) || start.elapsed() >= NEXT_WAIT {
                break;
            }
            last = self.step();
            if last == Moved::Pending {
                break;
            }
        }
        last
    }
    fn cont(&mut self, _limit: u64) -> Option<Hit> {
        // The stack thread checks the breakpoints at every step; a hit comes back through `advance`.
        self.send(Command::Resume);
        None
    }
    fn advance(&mut self, _target_ns: Nanos, _limit: u64) -> Advanced {
        self.take_published();
        match self.hit.take() {
            Some(hit) => Advanced::Hit(hit),
            None => Advanced::Reached,
        }
    }
    fn refresh(&mut self) {
        self.take_published();
    }
    fn rewind_to(&mut self, _target: u64) -> Result<(), String> {
        Err("a live run cannot go back: real traffic does not happen twice".into())
    }
    fn export(&mut self, _plan: &ExportPlan) -> Result<(u64, Written), String> {
        Err(
            "a live run cannot be made again; start it with --export FILE (and --pcap-out FILE) to keep its timeline"
                .into(),
        )
    }
    fn set_paused(&mut self, paused: bool) {
        self.send(if paused {
            Command::Pause
        } else {
            Command::Resume
        });
    }
    fn is_live(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::buffer::TxQueue;
    use crate::live::stack_thread::StackThread;
    use crate::live::testkit::{self, arrive};
    use crate::pipeline::stage::{Dir, OutcomeKind};

    /// A stack thread (no TAP: the test plays the tap thread) watched by a publisher, and the TUI's driver.
    fn live() -> (StackThread, LiveDriver, Arc<Shared>, Arc<TxQueue>) {
        let shared = Shared::new(16, Instant::now());
        let tx = TxQueue::new(64, None);
        let setup = testkit::setup(16, 0);
        let link = LiveLink::new();
        let publisher = Publisher::new(link.clone(), shared.clone());
        let stack =
            StackThread::spawn(setup, shared.clone(), tx.clone(), Some(Box::new(publisher)))
                .unwrap();
        let driver = LiveDriver::new(link, stack.controller());
        (stack, driver, shared, tx)
    }

    /// `live()`, held, with two ARP requests waiting in the frame buffer.
    fn held_with_two_frames_waiting() -> (StackThread, LiveDriver, Arc<TxQueue>) {
        let (stack, mut driver, shared, tx) = live();
        driver.set_paused(true);
        std::thread::sleep(Duration::from_millis(20));
        arrive(&shared, 0..2);
        wait_for("two frames waiting", &mut driver, |_| shared.depth() == 2);
        (stack, driver, tx)
    }

    fn wait_for(what: &str, driver: &mut LiveDriver, mut cond: impl FnMut(&LiveDriver) -> bool) {
        let start = Instant::now();
        loop {
            driver.refresh();
            if cond(driver) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_tui_sees_live_packets_finish_and_the_counters_move() {
        let (stack, mut driver, shared, _tx) = live();
        arrive(&shared, 0..3);
        wait_for("six finished packets", &mut driver, |d| {
            d.history().total() == 6
        });
        let c = driver.counters();
        assert_eq!((c.frames_in, c.frames_out, c.dropped), (3, 3, 0));
        let request = driver.history().entry(1).unwrap();
        assert_eq!(request.outcome, OutcomeKind::Consumed);
        assert!(driver.packet(1).is_some(), "kept whole for the detail pane");
        assert!(driver.rewind_to(0).is_err());
        stack.stop().unwrap();
    }

    #[test]
    fn held_a_step_is_one_hop_and_frames_wait_counted_in_the_frame_buffer() {
        let (stack, mut driver, tx) = held_with_two_frames_waiting();
        // Nothing moves while held; the diagram counts the waiting frames at the frame buffer.
        std::thread::sleep(Duration::from_millis(60));
        driver.refresh();
        assert_eq!(driver.moves(), 0);
        let moved = driver.step();
        let Moved::Stepped(report) = moved else {
            panic!("no step: {moved:?}");
        };
        assert_eq!(
            report.hops,
            vec![(1, Stage::Wire)],
            "one hop: the first frame at the wire"
        );
        assert_eq!(driver.moves(), 1);
        let Moved::Stepped(report) = driver.step() else {
            panic!("no second step");
        };
        assert_eq!(report.hops, vec![(1, Stage::FrameBuffer)]);
        wait_for("the held state published", &mut driver, |d| {
            d.counters().rx[Stage::FrameBuffer as usize].queued >= 1
        });
        assert_eq!(tx.depth(), 0, "held: nothing answered yet");
        driver.set_paused(false);
        wait_for("both answered", &mut driver, |d| d.history().total() == 4);
        stack.stop().unwrap();
    }

    #[test]
    fn next_steps_a_held_run_until_the_packet_finishes_and_no_longer() {
        let (stack, mut driver, tx) = held_with_two_frames_waiting();
        let start = Instant::now();
        assert!(matches!(driver.next(1, 1000), Moved::Stepped(_)));
        assert!(
            start.elapsed() < NEXT_WAIT,
            "finished well within the bound"
        );
        let first = driver.packet(1).expect("kept whole");
        assert_eq!(
            first.outcome.as_ref().map(|o| o.kind),
            Some(OutcomeKind::Consumed)
        );
        // Held still: the second request has not finished, and the held run sends nothing more.
        std::thread::sleep(Duration::from_millis(60));
        driver.refresh();
        let requests_done = (1..10)
            .filter_map(|id| driver.history().entry(id))
            .filter(|e| e.dir == Dir::Rx)
            .count();
        assert_eq!(requests_done, 1, "only the first request finished");
        let answered = tx.counters().queued;
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(tx.counters().queued, answered, "held after next");
        stack.stop().unwrap();
    }

    #[test]
    fn a_breakpoint_holds_the_stack_thread_at_the_step_that_hit() {
        let (stack, mut driver, shared, tx) = live();
        driver.add_breakpoint(Breakpoint::Stage(Stage::Stack));
        // Let the stack thread see the new breakpoint version before traffic comes.
        std::thread::sleep(Duration::from_millis(20));
        arrive(&shared, 0..3);
        let hit = loop {
            match driver.advance(0, 0) {
                Advanced::Hit(hit) => break hit,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        assert_eq!(hit.why, "stage stack: #1 reached stack");
        std::thread::sleep(Duration::from_millis(60));
        driver.refresh();
        assert_eq!(
            tx.counters().queued,
            0,
            "held at the hit: the reply is made but not yet on the wire"
        );
        let held_at = driver.moves();
        std::thread::sleep(Duration::from_millis(60));
        driver.refresh();
        assert_eq!(driver.moves(), held_at, "still held");
        assert_eq!(driver.cont(1), None);
        let next = loop {
            match driver.advance(0, 0) {
                Advanced::Hit(hit) => break hit,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        assert!(next.why.starts_with("stage stack: #"), "{}", next.why);
        assert!(driver.moves() > held_at);
        stack.stop().unwrap();
    }
}
