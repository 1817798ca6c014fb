//! The stack thread: owns the `Pipeline` (built on this thread, because smoltcp's log capture is per thread
//! and apps need not be `Send`) and the exports, and runs the core on the real clock. Between two steps it
//! reads a bounded command channel: `Pause` holds the pipeline (frames keep arriving and wait in the guarded
//! frame buffer, where overflow is a counted drop), `Step` lets exactly one hop happen while paused, `Resume`
//! lets it run, `Stop` ends the run: frames already read get their records, open packets end `in_flight`,
//! and the export is closed complete.
//!
//! When nothing can act it blocks until a frame arrives, a command comes or smoltcp's next timer is due —
//! on the frame buffer's condition variable, or, while an `exec:` or `forward:` connection is open, in
//! `ppoll` on those apps' descriptors too (polling them every `APP_POLL` only in the moments a descriptor
//! cannot tell) — never spinning.
//! Finished packets stream to the export as they finish; only a bounded recent history stays in memory.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::buffer::{OVERFLOW_RECORDS, RxCounters, Shared, TxQueue, WaitFor};
use super::clock::RealClock;
use super::wire::LiveWire;
use crate::export::thread::ExportThread;
use crate::export::{ExportPlan, Exports, Header};
use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::StepReport;
use crate::pipeline::trace::{ConnectionRecord, Stats};
use crate::pipeline::{PacketRecord, Pipeline, PipelineConfig, Step};

/// Commands queued for the stack thread beyond this are refused (`Controller::send` returns false).
pub const COMMAND_QUEUE: usize = 64;
/// While their connections are open, apps fed from outside the core (processes, sockets) get a turn this often.
pub const APP_POLL: Duration = Duration::from_millis(1);
/// Steps between two drains of finished packets into the export while the stack is busy.
const DRAIN_EVERY: u64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    /// While paused: perform one more hop.
    Step,
    Stop,
}

/// Sends commands to the stack thread and wakes it to read them. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    commands: SyncSender<Command>,
    shared: Arc<Shared>,
}

impl Controller {
    /// Queue a command; false if the queue is full or the thread has ended.
    pub fn send(&self, command: Command) -> bool {
        let sent = self.commands.try_send(command).is_ok();
        self.shared.wake();
        sent
    }
}

/// What the stack thread is doing, shown to an observer after every step and whenever it goes idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub paused: bool,
    /// Steps still allowed while paused.
    pub steps_left: u64,
    /// Steps performed since the start.
    pub steps: u64,
}

/// Watches the run from the stack thread, between steps (the live TUI publishes its snapshots and checks its
/// breakpoints here, so a hit holds the run at the very step that hit).
pub trait StackObserver: Send {
    /// After a step that acted, before its finished packets go to the export (they are still in the
    /// pipeline's finished queue). True holds the run here, as `Pause` would.
    fn stepped(&mut self, _pipeline: &Pipeline, _status: &Status, _report: &StepReport) -> bool {
        false
    }
    /// A finished packet, as it goes to the export.
    fn finished(&mut self, _packet: &PacketRecord) {}
    /// Nothing could act, or the run is held: a moment to show where it is.
    fn idle(&mut self, _pipeline: &Pipeline, _status: &Status) {}
}

pub type Observer = Box<dyn StackObserver>;

/// Where finished packets go: the export, the observer, and a bounded recent history.
struct Finished {
    exports: ExportThread,
    recent: VecDeque<PacketRecord>,
    history: usize,
}

impl Finished {
    /// Hand the pipeline's finished packets on; returns how many there were.
    fn drain(
        &mut self,
        pipeline: &mut Pipeline,
        observer: &mut Option<Observer>,
    ) -> anyhow::Result<u64> {
        let (recent, history) = (&mut self.recent, self.history);
        Ok(self.exports.drain_with(pipeline, |p| {
            if let Some(o) = observer.as_mut() {
                o.finished(p);
            }
            if history > 0 {
                if recent.len() == history {
                    recent.pop_front();
                }
                recent.push_back(p.clone());
            }
        })?)
    }
}

/// What the stack thread needs to build its pipeline and exports.
pub struct StackSetup {
    pub config: PipelineConfig,
    pub plan: ExportPlan,
    pub header: Header,
    /// pcapng timestamps: this (ns since the epoch) plus run time.
    pub pcap_base_ns: u64,
    /// Finished packets kept in memory, newest last.
    pub history: usize,
    pub start_paused: bool,
}

/// How a run ended.
pub struct StackOutcome {
    pub stats: Stats,
    pub connections: Vec<ConnectionRecord>,
    /// Packets written to the export (every packet of the run).
    pub packets: u64,
    pub end_ns: Nanos,
    pub steps: u64,
    /// The tap side's counters as the run ended (frames read later are outside the run).
    pub rx: RxCounters,
    pub pcap: Option<(PathBuf, u64)>,
    /// With `--filter`: the packets the exports got (`packets` counts every one).
    pub filtered: Option<u64>,
    /// The last `history` finished packets.
    pub recent: VecDeque<PacketRecord>,
}

pub struct StackThread {
    handle: JoinHandle<anyhow::Result<StackOutcome>>,
    controller: Controller,
}

impl StackThread {
    pub fn spawn(
        setup: StackSetup,
        shared: Arc<Shared>,
        tx: Arc<TxQueue>,
        observer: Option<Observer>,
    ) -> std::io::Result<StackThread> {
        let (commands, inbox) = sync_channel(COMMAND_QUEUE);
        let controller = Controller {
            commands,
            shared: shared.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("pktpath-stack".into())
            .spawn(move || run(setup, shared, tx, inbox, observer))?;
        Ok(StackThread { handle, controller })
    }

    pub fn controller(&self) -> Controller {
        self.controller.clone()
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stop the run and wait for its outcome.
    pub fn stop(self) -> anyhow::Result<StackOutcome> {
        self.controller.send(Command::Stop);
        self.join()
    }

    /// Wait for the thread to end by itself (after a `Stop` or an error).
    pub fn join(self) -> anyhow::Result<StackOutcome> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the stack thread panicked")))
    }
}

fn run(
    setup: StackSetup,
    shared: Arc<Shared>,
    tx: Arc<TxQueue>,
    inbox: Receiver<Command>,
    mut observer: Option<Observer>,
) -> anyhow::Result<StackOutcome> {
    let clock = RealClock::new(shared.start());
    let wire = LiveWire::new(shared.clone(), tx.clone());
    let mut pipeline = Pipeline::new(setup.config, Box::new(clock), Box::new(wire));
    // The export is formatted and written on its own thread, beside the stack thread.
    let mut finished = Finished {
        exports: ExportThread::spawn(Exports::open(
            &setup.plan,
            &setup.header,
            setup.pcap_base_ns,
        )?)?,
        recent: VecDeque::with_capacity(setup.history.min(4096)),
        history: setup.history,
    };
    let mut status = Status {
        paused: setup.start_paused,
        steps_left: 0,
        steps: 0,
    };
    let mut packets = 0u64;
    let mut since_drain = 0u64;
    let mut last_app_poll = Instant::now();
    'run: loop {
        loop {
            match inbox.try_recv() {
                Ok(Command::Pause) => status.paused = true,
                Ok(Command::Resume) => {
                    status.paused = false;
                    status.steps_left = 0;
                }
                Ok(Command::Step) => status.steps_left += 1,
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break 'run,
                Err(TryRecvError::Empty) => break,
            }
        }
        let lost = shared.take_events_lost() + tx.take_events_lost();
        if lost > 0 {
            pipeline.add_events_lost(lost);
        }
        if status.paused && status.steps_left == 0 {
            packets += finished.drain(&mut pipeline, &mut observer)?;
            if let Some(o) = observer.as_mut() {
                o.idle(&pipeline, &status);
            }
            shared.wait(WaitFor::Wake, None);
            continue;
        }
        if last_app_poll.elapsed() >= APP_POLL && pipeline.waits_on_external() {
            pipeline.wake_connections();
            last_app_poll = Instant::now();
        }
        let at = pipeline.now();
        match pipeline.step() {
            Step::Progress(report) => {
                status.steps += 1;
                if status.paused {
                    status.steps_left -= 1;
                }
                finished.exports.after_step(&pipeline, at)?;
                if let Some(o) = observer.as_mut()
                    && o.stepped(&pipeline, &status, &report)
                {
                    // A breakpoint hit: hold the run after this step.
                    status.paused = true;
                    status.steps_left = 0;
                }
                since_drain += 1;
                if since_drain >= DRAIN_EVERY || status.paused {
                    packets += finished.drain(&mut pipeline, &mut observer)?;
                    since_drain = 0;
                }
            }
            Step::Idle { next, timer } => {
                packets += finished.drain(&mut pipeline, &mut observer)?;
                since_drain = 0;
                if let Some(o) = observer.as_mut() {
                    o.idle(&pipeline, &status);
                }
                let mut deadline = next.map(|t| shared.start() + Duration::from_nanos(t));
                // Apps inside the core only act on what reaches their socket; those fed from outside (a child
                // process, a real service) wake the thread through their descriptors, or, when they cannot
                // say which, get a turn every `APP_POLL`.
                if !pipeline.waits_on_external() {
                    shared.wait(WaitFor::Frames, deadline);
                } else if let Some(fds) = pipeline
                    .external_wake_fds()
                    .filter(|_| shared.can_wait_on_fds())
                {
                    let until = timer.map(|t| shared.start() + Duration::from_nanos(t));
                    shared.wait_on_fds(WaitFor::Frames, until, &fds);
                    last_app_poll = Instant::now();
                } else {
                    let poll = last_app_poll + APP_POLL;
                    deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
                    shared.wait(WaitFor::Frames, deadline);
                }
            }
        }
    }
    // Frames the tap thread read during the run get their records; then every open packet ends in_flight.
    shared.close();
    pipeline.admit_waiting(shared.capacity() + OVERFLOW_RECORDS);
    let rx = shared.counters();
    let lost = shared.take_events_lost() + tx.take_events_lost();
    pipeline.add_events_lost(lost);
    let end_ns = pipeline.now();
    let connections = pipeline.finish();
    packets += finished.drain(&mut pipeline, &mut observer)?;
    let stats = pipeline.stats().clone();
    let written = finished.exports.finish(&connections, &stats, None)?;
    Ok(StackOutcome {
        stats,
        connections,
        packets,
        end_ns,
        steps: status.steps,
        rx,
        pcap: written.pcap,
        filtered: written.filtered,
        recent: finished.recent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::testkit::{self, arrive};
    use crate::pipeline::trace::Trigger;
    use crate::pipeline::{OutcomeKind, Stage};

    fn setup() -> StackSetup {
        testkit::setup(8, 100)
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn pausing_holds_the_pipeline_while_frames_wait_in_the_frame_buffer() {
        let shared = Shared::new(8, Instant::now());
        let tx = TxQueue::new(64, None);
        let stack = StackThread::spawn(setup(), shared.clone(), tx.clone(), None).unwrap();
        let ctl = stack.controller();
        assert!(ctl.send(Command::Pause));
        std::thread::sleep(Duration::from_millis(20));
        arrive(&shared, 0..3);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(shared.depth(), 3, "paused: the frames wait in the buffer");
        assert_eq!(tx.depth(), 0, "paused: nothing answered");

        // One step takes exactly one hop: the first frame leaves the buffer for the wire slot.
        assert!(ctl.send(Command::Step));
        wait_for("one step", || shared.depth() == 2);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(shared.depth(), 2, "one step, one hop");
        assert_eq!(tx.depth(), 0);

        assert!(ctl.send(Command::Resume));
        wait_for("three ARP replies", || tx.counters().queued == 3);
        assert_eq!(shared.depth(), 0);
        let out = stack.stop().unwrap();
        assert_eq!(out.stats.frames_in, 3);
        assert_eq!(out.stats.frames_out, 3);
        let rx: Vec<&PacketRecord> = out
            .recent
            .iter()
            .filter(|p| p.trigger == Trigger::Wire)
            .collect();
        assert_eq!(rx.len(), 3);
        for p in rx {
            assert_eq!(p.outcome.as_ref().unwrap().kind, OutcomeKind::Consumed);
            let fb = p
                .hops
                .iter()
                .find(|h| h.stage == Stage::FrameBuffer)
                .unwrap();
            let st = p.hops.iter().find(|h| h.stage == Stage::Stack).unwrap();
            assert_eq!(
                p.hops[0].t_ns, fb.t_ns,
                "frame_buffer entered when the tap read it"
            );
            // The first frame waited through the pause; its frame_buffer latency is that real wait.
            assert!(st.t_ns >= fb.t_ns);
        }
        let first = out.recent.iter().find(|p| p.id == 1).unwrap();
        let fb = first.hops[1].t_ns;
        let st = first.hops[2].t_ns;
        assert!(
            st - fb >= 100_000_000,
            "waited ≥ 100 ms paused: {}",
            st - fb
        );
    }

    #[test]
    fn stop_gives_frames_still_waiting_a_record_in_flight_and_overflow_a_drop() {
        let shared = Shared::new(2, Instant::now());
        let tx = TxQueue::new(64, None);
        let mut s = setup();
        s.start_paused = true;
        let stack = StackThread::spawn(s, shared.clone(), tx.clone(), None).unwrap();
        arrive(&shared, 0..3);
        let out = stack.stop().unwrap();
        assert_eq!(out.stats.frames_in, 3);
        assert_eq!(out.stats.outcomes.get("in_flight"), Some(&2));
        assert_eq!(
            out.stats
                .drops
                .get(&(Stage::FrameBuffer, "frame_buffer_full")),
            Some(&1)
        );
        assert_eq!(out.stats.events_lost, 0);
        assert_eq!(out.packets, 3);
    }

    #[test]
    fn an_idle_stack_thread_sleeps() {
        let shared = Shared::new(8, Instant::now());
        let tx = TxQueue::new(64, None);
        let steps = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = steps.clone();
        struct Count(Arc<std::sync::atomic::AtomicU64>);
        impl StackObserver for Count {
            fn idle(&mut self, _: &Pipeline, _: &Status) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let observer: Observer = Box::new(Count(seen));
        let stack = StackThread::spawn(setup(), shared, tx, Some(observer)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let out = stack.stop().unwrap();
        // Idle, it wakes only for smoltcp's timers, not thousands of times a second.
        let wakeups = steps.load(std::sync::atomic::Ordering::Relaxed);
        assert!(wakeups < 100, "{wakeups} wake-ups in 200 ms");
        assert_eq!(out.stats.frames_in, 0);
    }
}
