//! Fuzz target: one captured record through the link normaliser (the link type chosen by the first byte
//! from those it understands, or any other number) and then the dissector, as the capture reader and the
//! pipeline do. Never a panic; an unconvertible record keeps its bytes and gets a problem.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pktpath::pipeline::dissect::dissect;
use pktpath::replay::link::{self, normalise_renaming};
use pktpath::replay::loopback::Renamer;

const LINKTYPES: [u32; 11] = [
    link::LINKTYPE_NULL,
    link::LINKTYPE_ETHERNET,
    link::LINKTYPE_RAW,
    link::LINKTYPE_LOOP,
    link::LINKTYPE_IEEE802_11,
    link::LINKTYPE_IEEE802_11_RADIOTAP,
    link::LINKTYPE_PPI,
    link::LINKTYPE_LINUX_SLL,
    link::LINKTYPE_IPV4,
    link::LINKTYPE_IPV6,
    link::LINKTYPE_LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, record)) = data.split_first() else {
        return;
    };
    let linktype = LINKTYPES
        .get(usize::from(choice))
        .copied()
        .unwrap_or(u32::from(choice));
    // The record's on-wire length: as captured, or (odd choices) cut short by a snaplen.
    let orig_len = record.len() as u32 + u32::from(choice & 1) * 1000;
    // Two records through one renamer, as a capture's records go: the second sees the first's decision.
    let mut renamer = Renamer::default();
    for _ in 0..2 {
        let n = normalise_renaming(linktype, record, orig_len, &mut renamer);
        match &n.problem {
            Some(problem) => {
                assert_eq!(n.frame, record, "an unconvertible record keeps its bytes");
                assert!(!problem.contains('\n'), "{problem:?}");
            }
            None => {
                let delta = n.frame.len() as i64 - record.len() as i64;
                assert_eq!(
                    i64::from(n.orig_len),
                    (i64::from(orig_len) + delta).clamp(0, i64::from(u32::MAX)),
                    "orig_len moves by the header delta"
                );
            }
        }
        let info = dissect(&n.frame);
        assert_eq!(info.len, n.frame.len());
        let _ = info.flow_key();
    }
});
