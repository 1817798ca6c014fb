//! Fuzz target: a string through the filter language's parser (the TUI's list filter, breakpoints and
//! `--filter`); when it parses, its normalised form parses to the same filter, and it is evaluated on the
//! packet records of a real replay (captures/demo.pcapng, the built-in demo, replayed once).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pktpath::debug::filter::Filter;
use pktpath::pipeline::PacketRecord;
use pktpath::replay::{ReplaySpec, Source, prepare};
use pktpath::session::filter::export_filter;

/// Every packet of the demo replay, rx and tx, with their hops and outcomes.
fn demo_packets() -> &'static [PacketRecord] {
    static PACKETS: OnceLock<Vec<PacketRecord>> = OnceLock::new();
    PACKETS.get_or_init(|| {
        let spec = ReplaySpec {
            speed: None,
            ..ReplaySpec::of(Source::demo())
        };
        let (mut pipeline, _prepared) = prepare(&spec).expect("the demo replays");
        while !pipeline.run_until(u64::MAX / 2, 100_000) {}
        pipeline.finish();
        let packets: Vec<_> = pipeline.drain_finished().collect();
        assert!(packets.len() > 10, "the demo has packets");
        packets
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let packets = demo_packets();
    match Filter::parse(expr) {
        Ok(filter) => {
            let again = Filter::parse(&filter.to_string()).expect("the normalised form parses");
            assert_eq!(again, filter, "normalised {:?}", filter.to_string());
            let keep = export_filter(expr).expect("--filter takes what the parser takes");
            for p in packets {
                assert_eq!(filter.matches(p), again.matches(p));
                assert_eq!(
                    keep.keeps(p),
                    filter.matches(p),
                    "--filter and the list agree"
                );
            }
        }
        Err(e) => {
            assert!(e.offset <= expr.len(), "offset {} past the input", e.offset);
            assert!(!e.message.contains('\n'), "{:?}", e.message);
            assert!(export_filter(expr).is_err());
        }
    }
});
