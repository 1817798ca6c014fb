//! A live run from start to end: open the TAP (and address the kernel side with `--host-ip`), start the
//! tap-service and stack threads, and end them on SIGINT/SIGTERM, after `--duration`, or when the tap thread
//! fails. The stack thread stops first (the export is closed complete), then the tap thread (it writes what
//! the stack queued before it goes). `summary` is the headless report.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::LiveSpec;
use super::buffer::{RxCounters, Shared, TxCounters, TxQueue};
use super::service::Service;
use super::stack_thread::{Controller, Observer, StackOutcome, StackSetup, StackThread};
use super::tap::Tap;
use super::wake::wake_pipe;
use crate::export::{ExportPlan, Format, Header};
use crate::pipeline::dissect::format_mac;
use crate::pipeline::stack::StackConfig;
use crate::pipeline::{PipelineConfig, Stage};

/// Finished packets a live run keeps in memory: none (the export has them all, the TUI keeps its own).
pub const HISTORY: usize = 0;
/// How often the headless front end looks at the signal flag and the clock.
const TICK: Duration = Duration::from_millis(20);

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
}

/// `PORT=SPEC` for every app the run serves, in full (`7=exec:cat`, not `7=exec`), as `pktpath sim` says it.
fn app_list(spec: &LiveSpec) -> Vec<String> {
    spec.app_map()
        .unwrap_or_default()
        .iter()
        .map(|(p, k)| format!("{p}={k}"))
        .collect()
}

pub fn header(spec: &LiveSpec, tap_name: &str) -> Header {
    let apps = app_list(spec);
    Header {
        source: json!({
            "kind": "live", "tap": tap_name, "apps": apps,
            "host_ip": spec.host_ip.map(|(a, p)| format!("{a}/{p}")),
            "host_ip6": spec.host_ip6.map(|(a, p)| format!("{a}/{p}")),
            "duration_s": spec.duration.map(|d| d.as_secs_f64()),
        }),
        stack: json!({
            "mac": format_mac(&spec.mac), "ipv4": format!("{}/{}", spec.ip.0, spec.ip.1),
            "ipv6": spec.ip6.map(|(a, p)| format!("{a}/{p}")),
            "frame_buffer": spec.frame_buffer,
            "tcp_socket_buffer": crate::pipeline::stack::TCP_BUFFER,
            "conn_buffer": crate::pipeline::connection::CONN_BUFFER,
            "udp_socket_buffer": crate::pipeline::stack::UDP_PAYLOAD_BUFFER,
            "smoltcp": "0.14",
        }),
    }
}

pub fn pipeline_config(spec: &LiveSpec) -> PipelineConfig {
    let tcp_apps = spec.app_map().unwrap_or_default();
    let udp_apps = tcp_apps
        .iter()
        .filter(|(_, k)| k.serves_udp())
        .map(|(&p, k)| (p, k.clone()))
        .collect();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    PipelineConfig {
        stack: StackConfig {
            mac: spec.mac,
            ipv4: (spec.ip.0, spec.ip.1),
            ipv6: spec.ip6,
            random_seed: seed,
            ack_delay_ms: Some(super::ACK_DELAY_MS),
            ..StackConfig::default()
        },
        frame_buffer: spec.frame_buffer,
        tcp_apps,
        udp_apps,
    }
}

impl LiveRun {
    /// Open the TAP, configure the kernel side if asked, and start both threads.
    /// `observer` makes the stack thread's observer, given the guarded frame buffer it may watch.
    pub fn start(
        spec: &LiveSpec,
        plan: &ExportPlan,
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
            config: pipeline_config(spec),
            plan: plan.clone(),
            header: header(spec, &tap_name),
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
        })
    }
}

/// Run headless until SIGINT/SIGTERM, `--duration`, or a thread ends by itself.
pub fn run_headless(spec: &LiveSpec, plan: &ExportPlan) -> anyhow::Result<LiveResult> {
    let quit = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&quit))?;
    }
    let run = LiveRun::start(spec, plan, |_| None, false)?;
    let deadline = spec.duration.map(|d| run.started + d);
    while !quit.load(Ordering::SeqCst)
        && deadline.is_none_or(|d| Instant::now() < d)
        && !run.has_ended()
    {
        std::thread::sleep(TICK);
    }
    run.stop()
}

/// The headless summary of a live run.
pub fn summary(spec: &LiveSpec, r: &LiveResult, export: Option<&(PathBuf, Format)>) -> String {
    let mut s = String::new();
    let apps = app_list(spec);
    let _ = writeln!(
        s,
        "pktpath live on {} as {}/{} ({}), apps {}, for {:.2} s",
        r.tap_name,
        spec.ip.0,
        spec.ip.1,
        format_mac(&spec.mac),
        apps.join(","),
        r.elapsed.as_secs_f64()
    );
    let st = &r.outcome.stats;
    crate::headless::stats_summary_timed(
        &mut s,
        "run time",
        st,
        r.outcome.end_ns,
        r.outcome.packets,
    );
    let fb_drops = st
        .drops
        .get(&(Stage::FrameBuffer, "frame_buffer_full"))
        .copied()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "tap: {} frames read, {} found the frame buffer full (capacity {}, high water {}), {} written, {} write errors{}",
        r.rx.read,
        r.rx.overflowed,
        r.rx.capacity,
        r.rx.high_water,
        r.tx.written,
        r.tx.write_errors,
        r.tx.last_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (last: {e})")),
    );
    let _ = writeln!(
        s,
        "events lost: {} ({} overflow records not kept, {} tx frames the tap never got); frame-buffer drops traced: {fb_drops}",
        st.events_lost, r.rx.events_lost, r.tx.lost
    );
    if r.rx.after_close > 0 {
        let _ = writeln!(
            s,
            "tap: {} frames arrived after the run ended (not traced)",
            r.rx.after_close
        );
    }
    if let Some(e) = &r.tap_error {
        let _ = writeln!(s, "tap thread ended early: {e}");
    }
    if let Some((path, format)) = export {
        let _ = writeln!(
            s,
            "export: {} ({:?}, {} packets)",
            path.display(),
            format,
            r.outcome.packets
        );
    }
    crate::headless::pcap_line(&mut s, r.outcome.pcap.as_ref());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::testkit;

    #[test]
    fn the_header_names_exec_and_forward_apps_in_full() {
        let spec = testkit::spec(&["9=exec:cat", "8080=forward:10.77.0.1:8000", "echo"]);
        assert_eq!(
            header(&spec, "tp0").source["apps"],
            json!(["7=echo", "9=exec:cat", "8080=forward:10.77.0.1:8000"])
        );
    }
}
