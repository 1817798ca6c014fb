//! Fuzz target: bytes as a capture file (pcap or pcapng) through the project's capture reader. Every input
//! gives either a typed error at open or a stream of records that ends; never a panic, never a loop, and
//! never more records than the bytes could hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pktpath::replay::capture::{CaptureReader, MAX_CAPLEN};

/// The smallest packet record either format has: a pcap record header (16 bytes; a pcapng Simple Packet
/// Block is 16 too, an Enhanced Packet Block 32).
const SMALLEST_RECORD: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_bytes(data.to_vec()) else {
        return;
    };
    let mut records = 0u64;
    for (n, frame) in (&mut reader).enumerate() {
        assert_eq!(frame.index, n as u64, "records are numbered in order");
        assert!(
            frame.frame.len() <= MAX_CAPLEN as usize + 64,
            "a record past the cap"
        );
        records += 1;
    }
    assert_eq!(records, reader.records_read());
    assert!(
        records as usize <= data.len() / SMALLEST_RECORD,
        "{records} records from {} bytes",
        data.len()
    );
    assert!(reader.bytes_read() <= data.len() as u64);
    if let Some(why) = reader.stopped() {
        assert!(!why.contains('\n'), "a stop reason is one line: {why:?}");
    }
    // Iteration has ended for good.
    assert!(reader.next().is_none());
});
