//! A live run's two threads: open the TAP (and address the kernel side with `--host-ip`), start the
//! tap-service and stack threads, and stop them — the stack thread first (the export is closed complete),
//! then the tap thread (it writes what the stack queued before it goes). The session layer decides when.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::LiveSpec;
use super::buffer::{RxCounters, Shared, TxCounters, TxQueue};
use super::service::Service;
use super::stack_thread::{Controller, Observer, StackOutcome, StackSetup, StackThread};
use super::tap::Tap;
use super::wake::wake_pipe;
use crate::export::{ExportPlan, Header};
use crate::pipeline::PipelineConfig;

/// Finished packets a live run keeps in memory: none (the export has them all, the TUI keeps its own).
pub const HISTORY: usize = 0;

/// The two threads of a running live session.
pub struct LiveRun {
    pub tap_name: String,
    stack: StackThread,
    service: Service,
    shared: Arc<Shared>,
    tx: Arc<TxQueue>,
    started: Instant,
}

/// What a live run did.
pub struct LiveResult {
    pub tap_name: String,
    pub outcome: StackOutcome,
    pub rx: RxCounters,
    pub tx: TxCounters,
    /// Why the tap thread ended early, if it did.
    pub tap_error: Option<String>,
    pub elapsed: Duration,
    /// The signal that ended a headless run ("SIGINT"), if one did.
    pub interrupted_by: Option<&'static str>,
}

impl LiveRun {
    /// Open the TAP, configure the kernel side if asked, and start both threads: the stack thread builds its
    /// pipeline from `config` and writes what `plan` asks for, under the header `header` makes once the TAP's
    /// name is known. `observer` makes the stack thread's observer, given the guarded frame buffer it may watch.
    pub fn start(
        spec: &LiveSpec,
        config: PipelineConfig,
        plan: &ExportPlan,
        header: impl FnOnce(&str) -> Header,
        observer: impl FnOnce(&Arc<Shared>) -> Option<Observer>,
        start_paused: bool,
    ) -> anyhow::Result<LiveRun> {
        let tap = Tap::open(&spec.tap)?;
        if let Some((addr, prefix)) = spec.host_ip {
            tap.configure_host(addr, prefix)?;
        }
        if let Some((addr, prefix)) = spec.host_ip6 {
            tap.configure_host6(addr, prefix)?;
        }
        let tap_name = tap.name().to_string();
        let started = Instant::now();
        let base_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let shared = Shared::new(spec.frame_buffer, started);
        let (wake_r, wake_w) = wake_pipe()?;
        let wake_w = Arc::new(wake_w);
        let tx = TxQueue::new(spec.frame_buffer.max(1024), Some(wake_w.clone()));
        let setup = StackSetup {
            config,
            plan: plan.clone(),
            header: header(&tap_name),
            pcap_base_ns: base_ns,
            history: HISTORY,
            start_paused,
        };
        let observer = observer(&shared);
        let stack = StackThread::spawn(setup, shared.clone(), tx.clone(), observer)?;
        let service = match Service::spawn(tap, shared.clone(), tx.clone(), (wake_r, wake_w)) {
            Ok(s) => s,
            Err(e) => {
                let _ = stack.stop();
                return Err(e.into());
            }
        };
        Ok(LiveRun {
            tap_name,
            stack,
            service,
            shared,
            tx,
            started,
        })
    }

    /// When the run started (real time).
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn controller(&self) -> Controller {
        self.stack.controller()
    }

    /// Has either thread ended by itself (an export error, the TAP gone)?
    pub fn has_ended(&self) -> bool {
        self.stack.is_finished() || self.service.is_finished()
    }

    /// Stop the stack thread (closing the export), then the tap thread.
    pub fn stop(self) -> anyhow::Result<LiveResult> {
        let outcome = self.stack.stop();
        let report = self.service.stop();
        let outcome = outcome?;
        let rx = RxCounters {
            after_close: self.shared.counters().after_close,
            ..outcome.rx.clone()
        };
        Ok(LiveResult {
            tap_name: self.tap_name,
            outcome,
            rx,
            tx: self.tx.counters(),
            tap_error: report.error,
            elapsed: self.started.elapsed(),
            interrupted_by: None,
        })
    }
}
