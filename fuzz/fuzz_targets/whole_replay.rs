//! Fuzz target: bytes as a capture file, replayed whole as `pktpath replay FILE --headless --max-speed`
//! does it (survey, the replay wire, smoltcp, the recorded apps over AF_UNIX), in process and with no export
//! file. Issue 15's bound must hold for every input: at most 20 exported packets per capture frame plus a
//! constant.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use pktpath::export::ExportPlan;
use pktpath::replay::{ReplaySpec, Source};
use pktpath::session::run_replay;

/// Packets a replay may export beyond 20 per frame (tests/replay_bounded.rs allows the same).
const CONSTANT: u64 = 50;

fuzz_target!(|data: &[u8]| {
    let spec = ReplaySpec {
        speed: None,
        ..ReplaySpec::of(Source::Memory {
            name: "fuzz input".into(),
            bytes: Arc::from(data),
        })
    };
    // A capture that cannot be opened is a one-line error, as the command line prints it.
    let result = match run_replay(&spec, &ExportPlan::default()) {
        Ok(result) => result,
        Err(e) => {
            assert!(!format!("{e:#}").contains('\n'), "{e:#}");
            return;
        }
    };
    assert!(
        result.packets <= 20 * result.frames_read + CONSTANT,
        "{} packets for {} frames",
        result.packets,
        result.frames_read
    );
});
