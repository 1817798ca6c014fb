//! Live sessions: the pipeline's configuration from the spec, the TAP and the two threads started
//! (`crate::live::run`), and an end decided here — headless on SIGINT/SIGTERM (`signals`: a second one exits
//! at once), after `--duration`, or when a thread ends by itself; in a front end when it returns from the
//! driver it was handed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::debug::driver::Driver;
use crate::debug::live::{LiveDriver, LiveLink, Publisher};
use crate::export::ExportPlan;
use crate::live::run::{LiveResult, LiveRun};
use crate::live::stack_thread::Observer;
use crate::live::{ACK_DELAY_MS, LiveSpec};
use crate::pipeline::PipelineConfig;
use crate::pipeline::stack::StackConfig;

use super::header;

/// How often a headless live run looks at the signals received and the clock.
const TICK: Duration = Duration::from_millis(20);

/// The pipeline a live run builds: the spec's addresses and apps, ISNs seeded from the wall clock (real
/// peers are not replayed, so nothing needs them repeatable), and smoltcp's delayed ACK as kernels do it.
pub fn pipeline_config(spec: &LiveSpec) -> PipelineConfig {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let stack = StackConfig {
        mac: spec.mac,
        ipv4: (spec.ip.0, spec.ip.1),
        ipv6: spec.ip6,
        random_seed: seed,
        ack_delay_ms: Some(ACK_DELAY_MS),
        ..StackConfig::default()
    };
    PipelineConfig::serving(stack, spec.frame_buffer, spec.app_map().unwrap_or_default())
}

/// Start the TAP and the threads, the stack thread watched by `observer`.
fn start(
    spec: &LiveSpec,
    plan: &ExportPlan,
    observer: impl FnOnce(&Arc<crate::live::buffer::Shared>) -> Option<Observer>,
) -> anyhow::Result<LiveRun> {
    let config = pipeline_config(spec);
    let described = config.clone();
    LiveRun::start(
        spec,
        config,
        plan,
        |tap_name| header::live(spec, &described, tap_name),
        observer,
        false,
    )
}

/// Run headless until SIGINT/SIGTERM, `--duration`, or a thread ends by itself. A signal is live's ordinary
/// end: the summary names it, and the exit code stays 0.
pub fn run_headless(spec: &LiveSpec, plan: &ExportPlan) -> anyhow::Result<LiveResult> {
    let signals = super::signals::install()?;
    let run = start(spec, plan, |_| None)?;
    let deadline = spec.duration.map(|d| run.started() + d);
    while signals.received().is_none()
        && deadline.is_none_or(|d| Instant::now() < d)
        && !run.has_ended()
    {
        std::thread::sleep(TICK);
    }
    let by = signals.received().map(super::signals::Signal::name);
    let mut result = run.stop()?;
    result.interrupted_by = by;
    Ok(result)
}

/// Run with a front end: `show` gets a driver over the run (the stack thread publishes what it does, and
/// holds, steps and resumes on the driver's word) and returns when the user is done; the run is then stopped,
/// which closes the export complete, whether `show` succeeded or not.
pub fn run_shown(
    spec: &LiveSpec,
    plan: &ExportPlan,
    show: impl FnOnce(Box<dyn Driver>) -> anyhow::Result<()>,
) -> anyhow::Result<LiveResult> {
    let link = LiveLink::new();
    let publisher_link = link.clone();
    let run = start(spec, plan, move |frames| {
        Some(Box::new(Publisher::new(publisher_link, frames.clone())) as Observer)
    })?;
    let driver = LiveDriver::new(link, run.controller());
    let shown = show(Box::new(driver));
    let result = run.stop();
    shown?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_header_names_exec_and_forward_apps_in_full() {
        let spec =
            crate::live::testkit::spec(&["9=exec:cat", "8080=forward:10.77.0.1:8000", "echo"]);
        let config = pipeline_config(&spec);
        assert_eq!(
            header::live(&spec, &config, "tp0").source_json()["apps"],
            json!(["7=echo", "9=exec:cat", "8080=forward:10.77.0.1:8000"])
        );
    }
}
