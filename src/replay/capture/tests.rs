//! Reader tests: exact timestamps per format, byte order and resolution; pcapng sections, interfaces and
//! block kinds; truncation and damage at every length; header errors; short reads; random corruption.

use std::io::Read;

use super::*;
use crate::replay::link::{LINKTYPE_ETHERNET, LINKTYPE_RAW};
use crate::replay::testgen::{self, Endian, MAC_A, MAC_B, NgBlock, NgInterface, PcapRecord};

const SEC: u32 = 1_700_000_000;
const SEC_NS: u64 = 1_700_000_000_000_000_000;

fn eth_frame() -> Vec<u8> {
    testgen::ethernet(MAC_B, MAC_A, 0x0800, &testgen::sample_ipv4())
}

fn read_all(bytes: Vec<u8>) -> (Vec<CapturedFrame>, Option<String>) {
    let size = bytes.len() as u64;
    let mut r = CaptureReader::from_bytes(bytes).expect("capture opens");
    let frames: Vec<CapturedFrame> = r.by_ref().collect();
    assert_eq!(r.records_read(), frames.len() as u64);
    if r.stopped().is_none() {
        assert_eq!(r.bytes_read(), size, "a clean end has read every byte");
    } else {
        assert!(r.bytes_read() < size, "reading stopped before the end");
    }
    (frames, r.stopped().map(String::from))
}

fn two_records() -> Vec<PcapRecord> {
    vec![
        PcapRecord::new(SEC, 123_456, eth_frame()),
        PcapRecord::new(SEC + 1, 999_999, eth_frame()),
    ]
}

#[test]
fn pcap_timestamps_are_exact_in_every_byte_order_and_resolution() {
    for endian in [Endian::Little, Endian::Big] {
        let (f, stop) = read_all(testgen::pcap(endian, false, 1, 65535, &two_records()));
        assert_eq!(stop, None);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].t_ns, SEC_NS + 123_456_000);
        assert_eq!(f[1].t_ns, SEC_NS + 1_999_999_000);
        assert_eq!(
            (f[0].index, f[1].index, f[0].interface, f[0].linktype),
            (0, 1, 0, 1)
        );
        assert_eq!(f[0].frame, eth_frame());

        let recs = [PcapRecord::new(SEC, 123_456_789, eth_frame())];
        let mut r =
            CaptureReader::from_bytes(testgen::pcap(endian, true, 1, 65535, &recs)).expect("opens");
        assert_eq!(r.format(), "pcap");
        assert_eq!(r.next().map(|f| f.t_ns), Some(SEC_NS + 123_456_789));
        assert!(r.next().is_none());
    }
}

#[test]
fn modified_pcap_records_skip_their_extra_eight_bytes() {
    let (f, stop) = read_all(testgen::pcap_modified(1, 65535, &two_records()));
    assert_eq!(stop, None);
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].t_ns, f[1].t_ns),
        (SEC_NS + 123_456_000, SEC_NS + 1_999_999_000)
    );
    assert_eq!((f[0].index, f[1].index, f[0].linktype), (0, 1, 1));
    assert_eq!((&f[0].frame, &f[1].frame), (&eth_frame(), &eth_frame()));
    assert_eq!(f[0].problem, None);
    // Cut inside the second record's extra bytes: the 24-byte header is what is missing.
    let file = testgen::pcap_modified(1, 65535, &two_records());
    let cut = 24 + 24 + eth_frame().len() + 20;
    let (f, stop) = read_all(file[..cut].to_vec());
    assert_eq!(f.len(), 1);
    assert_eq!(
        stop.as_deref(),
        Some("record 2 at byte 102: truncated, the file ends after 20 of 78 bytes")
    );
}

#[test]
fn big_endian_modified_pcap_is_refused_by_name() {
    let mut file = testgen::pcap_modified(1, 65535, &two_records());
    file[..4].copy_from_slice(&[0xa1, 0xb2, 0xcd, 0x34]);
    let e = CaptureReader::from_bytes(file).map(|_| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad pcap header: big-endian modified pcap (magic a1b2cd34) is not supported"
    );
}

fn ng_iface(linktype: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> NgBlock {
    NgBlock::Interface(NgInterface {
        linktype,
        snaplen: 0,
        tsresol,
        tsoffset,
    })
}

/// t_ns of one EPB with raw timestamp `ts` on an interface with these options, in both byte orders.
fn ng_time(tsresol: Option<u8>, tsoffset: Option<i64>, ts: u64) -> u64 {
    let mut seen = Vec::new();
    for big_endian in [false, true] {
        let blocks = [
            NgBlock::Section { big_endian },
            ng_iface(1, tsresol, tsoffset),
            NgBlock::epb(0, ts, eth_frame()),
        ];
        let (f, stop) = read_all(testgen::pcapng(&blocks));
        assert_eq!((f.len(), stop), (1, None));
        seen.push(f[0].t_ns);
    }
    assert_eq!(seen[0], seen[1], "byte order changed the time");
    seen[0]
}

#[test]
fn pcapng_timestamps_follow_if_tsresol_and_if_tsoffset() {
    let us = u64::from(SEC) * 1_000_000 + 123_456;
    assert_eq!(ng_time(None, None, us), SEC_NS + 123_456_000);
    assert_eq!(ng_time(Some(6), None, us), SEC_NS + 123_456_000);
    assert_eq!(ng_time(Some(9), None, SEC_NS + 7), SEC_NS + 7);
    assert_eq!(
        ng_time(Some(3), None, u64::from(SEC) * 1000 + 5),
        SEC_NS + 5_000_000
    );
    assert_eq!(ng_time(Some(12), None, 42_999), 42);
    // 2^-20 s: half a second is 2^19 units.
    assert_eq!(
        ng_time(Some(0x80 | 20), None, (u64::from(SEC) << 20) | (1 << 19)),
        SEC_NS + 500_000_000
    );
    assert_eq!(ng_time(Some(0x80), None, u64::from(SEC)), SEC_NS);
    assert_eq!(
        ng_time(None, Some(100), us),
        SEC_NS + 100_000_000_000 + 123_456_000
    );
    assert_eq!(ng_time(Some(9), Some(-1), SEC_NS), SEC_NS - 1_000_000_000);
    assert_eq!(ng_time(Some(9), Some(-5), 3), 0, "saturates at the epoch");
}

#[test]
fn ng_ns_handles_extreme_resolutions() {
    assert_eq!(records::ng_ns(u64::MAX, 0x80 | 127, 0), 0);
    assert_eq!(records::ng_ns(u64::MAX, 127, 0), 0);
    assert_eq!(records::ng_ns(u64::MAX, 0, i64::MAX), u64::MAX);
}

#[test]
fn sections_reset_interfaces_and_switch_byte_order() {
    let raw = testgen::sample_ipv4();
    let blocks = [
        NgBlock::Section { big_endian: false },
        ng_iface(1, Some(9), None),
        ng_iface(101, None, None),
        NgBlock::epb(0, SEC_NS, eth_frame()),
        NgBlock::epb(1, u64::from(SEC) * 1_000_000, raw.clone()),
        NgBlock::Section { big_endian: true },
        ng_iface(101, Some(9), None),
        NgBlock::epb(0, SEC_NS + 5, raw.clone()),
        NgBlock::epb(1, SEC_NS + 6, raw.clone()),
    ];
    let mut r = CaptureReader::from_bytes(testgen::pcapng(&blocks)).expect("opens");
    assert_eq!(r.format(), "pcapng");
    let f: Vec<CapturedFrame> = r.by_ref().collect();
    assert_eq!(r.stopped(), None);
    let summary: Vec<(u64, u32, u32, bool)> = f
        .iter()
        .map(|f| (f.index, f.interface, f.linktype, f.problem.is_none()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 0, 1, true),
            (1, 1, 101, true),
            (2, 0, 101, true),
            (3, 1, u32::MAX, false)
        ]
    );
    assert_eq!(f[1].t_ns, SEC_NS);
    assert_eq!(f[2].t_ns, SEC_NS + 5);
    assert!(f[1].synthetic_l2 && f[2].synthetic_l2);
    assert_eq!(f[1].frame.len(), raw.len() + 14);
    assert_eq!(
        f[3].frame, raw,
        "an undeclared interface passes the bytes on raw"
    );
    assert!(
        f[3].problem
            .as_deref()
            .is_some_and(|p| p.contains("interface 1"))
    );
}

#[test]
fn epb_comments_are_kept() {
    let blocks = [
        NgBlock::Section { big_endian: false },
        ng_iface(1, None, None),
        NgBlock::Enhanced {
            interface: 0,
            ts: 1,
            data: eth_frame(),
            orig_len: 54,
            comment: Some("hello, wire".into()),
        },
        NgBlock::epb(0, 2, eth_frame()),
    ];
    let (f, _) = read_all(testgen::pcapng(&blocks));
    assert_eq!(f[0].comment.as_deref(), Some("hello, wire"));
    assert_eq!(f[1].comment, None);
}

#[test]
fn simple_packet_blocks_use_interface_zero_and_its_snaplen() {
    let long = testgen::ethernet(MAC_B, MAC_A, 0x0800, &[0u8; 86]);
    let blocks = [
        NgBlock::Section { big_endian: true },
        NgBlock::Interface(NgInterface {
            linktype: 1,
            snaplen: 64,
            tsresol: Some(9),
            tsoffset: None,
        }),
        NgBlock::epb(0, SEC_NS, eth_frame()),
        NgBlock::Simple {
            data: long.clone(),
            orig_len: 100,
        },
        NgBlock::Simple {
            data: eth_frame(),
            orig_len: 54,
        },
    ];
    let (f, stop) = read_all(testgen::pcapng(&blocks));
    assert_eq!((f.len(), stop), (3, None));
    assert_eq!(f[1].frame, long[..64].to_vec());
    assert_eq!(
        (f[1].orig_len, f[1].truncated, f[1].interface),
        (100, true, 0)
    );
    assert_eq!(f[1].t_ns, SEC_NS, "an SPB arrives with the previous packet");
    assert_eq!(
        (f[0].timestamped, f[1].timestamped, f[2].timestamped),
        (true, false, false)
    );
    assert_eq!((f[2].frame.clone(), f[2].truncated), (eth_frame(), false));
}

#[test]
fn obsolete_packet_blocks_are_read_in_both_byte_orders() {
    for big_endian in [false, true] {
        let blocks = [
            NgBlock::Section { big_endian },
            ng_iface(101, None, None),
            ng_iface(1, Some(9), None),
            NgBlock::Packet {
                interface: 1,
                ts: SEC_NS + 3,
                data: eth_frame(),
                orig_len: 54,
            },
        ];
        let (f, stop) = read_all(testgen::pcapng(&blocks));
        assert_eq!((f.len(), stop), (1, None));
        assert_eq!(
            (f[0].interface, f[0].linktype, f[0].t_ns),
            (1, 1, SEC_NS + 3)
        );
        assert_eq!(f[0].frame, eth_frame());
    }
}

#[test]
fn other_blocks_are_skipped() {
    let blocks = [
        NgBlock::Section { big_endian: false },
        NgBlock::Other {
            block_type: 4,
            body: vec![0, 0, 0, 0],
        },
        ng_iface(1, None, None),
        NgBlock::Other {
            block_type: 5,
            body: vec![0; 12],
        },
        NgBlock::epb(0, 1, eth_frame()),
        NgBlock::Other {
            block_type: 0x0000_0bad,
            body: vec![1, 2, 3, 4, 5, 6, 7, 8],
        },
        NgBlock::Other {
            block_type: 0x0a,
            body: vec![0; 8],
        },
        NgBlock::Other {
            block_type: 0x1234_5678,
            body: vec![],
        },
        NgBlock::epb(0, 2, eth_frame()),
    ];
    let (f, stop) = read_all(testgen::pcapng(&blocks));
    assert_eq!((f.len(), stop), (2, None));
}

#[test]
fn a_truncated_record_is_flagged_with_the_wire_length() {
    let frame = eth_frame();
    let recs = [PcapRecord {
        ts_sec: SEC,
        ts_frac: 0,
        data: frame[..40].to_vec(),
        orig_len: 1514,
    }];
    let (f, _) = read_all(testgen::pcap(Endian::Little, false, 1, 40, &recs));
    assert_eq!(
        (f[0].frame.len(), f[0].orig_len, f[0].truncated),
        (40, 1514, true)
    );

    let raw = testgen::sample_ipv4();
    let recs = [PcapRecord {
        ts_sec: SEC,
        ts_frac: 0,
        data: raw[..30].to_vec(),
        orig_len: 1500,
    }];
    let (f, _) = read_all(testgen::pcap(Endian::Big, false, LINKTYPE_RAW, 30, &recs));
    assert_eq!(
        (f[0].frame.len(), f[0].orig_len, f[0].truncated),
        (44, 1514, true)
    );
}

#[test]
fn an_unsupported_link_type_is_reported_per_packet_and_reading_goes_on() {
    let (f, stop) = read_all(testgen::pcap(
        Endian::Little,
        false,
        147,
        65535,
        &two_records(),
    ));
    assert_eq!((f.len(), stop), (2, None));
    assert!(
        f.iter()
            .all(|f| f.problem.as_deref() == Some("unsupported link type 147"))
    );
    assert_eq!(f[1].frame, eth_frame());
}

#[test]
fn vlan_tags_are_stripped_when_reading() {
    let tagged = testgen::ethernet_tagged(
        MAC_B,
        MAC_A,
        &[(0x88a8, 5), (0x8100, 6)],
        0x0800,
        &testgen::sample_ipv4(),
    );
    let recs = [PcapRecord::new(SEC, 0, tagged)];
    let (f, _) = read_all(testgen::pcap(
        Endian::Little,
        false,
        LINKTYPE_ETHERNET,
        65535,
        &recs,
    ));
    assert_eq!(
        (f[0].frame.clone(), f[0].vlan.clone(), f[0].orig_len),
        (eth_frame(), vec![5, 6], 54)
    );
}

/// Every prefix either fails to open, or reads the whole records it holds and, if it ends inside one, says so.
fn check_every_prefix(file: &[u8], boundaries: &[usize], header_len: usize) {
    for len in 0..=file.len() {
        let result = CaptureReader::from_bytes(file[..len].to_vec());
        let Ok(mut r) = result else {
            assert!(len < header_len, "prefix of {len} bytes failed to open");
            continue;
        };
        let n = r.by_ref().count();
        let whole = boundaries
            .iter()
            .filter(|b| **b <= len)
            .count()
            .saturating_sub(1);
        if boundaries.contains(&len) {
            assert_eq!(r.stopped(), None, "clean cut at {len}");
        } else {
            let why = r
                .stopped()
                .unwrap_or_else(|| panic!("prefix {len}: no stop reported"));
            assert!(why.contains("truncated"), "prefix {len}: {why}");
        }
        assert_eq!(n, whole, "prefix {len}");
    }
}

#[test]
fn every_prefix_of_a_pcap_file_is_handled() {
    let recs = [two_records(), vec![PcapRecord::new(SEC + 2, 1, vec![7; 3])]].concat();
    let file = testgen::pcap(Endian::Big, true, 1, 65535, &recs);
    let mut boundaries = vec![24];
    for r in &recs {
        boundaries.push(boundaries[boundaries.len() - 1] + 16 + r.data.len());
    }
    check_every_prefix(&file, &boundaries, 24);
}

#[test]
fn every_prefix_of_a_pcapng_file_is_handled() {
    let blocks = vec![
        NgBlock::Section { big_endian: false },
        ng_iface(1, Some(9), Some(3)),
        NgBlock::Enhanced {
            interface: 0,
            ts: 1,
            data: eth_frame(),
            orig_len: 54,
            comment: Some("c".into()),
        },
        NgBlock::Other {
            block_type: 4,
            body: vec![0; 4],
        },
        NgBlock::Section { big_endian: true },
        ng_iface(101, None, None),
        NgBlock::Simple {
            data: testgen::sample_ipv4(),
            orig_len: 40,
        },
        NgBlock::epb(0, 9, testgen::sample_ipv4()),
    ];
    let file = testgen::pcapng(&blocks);
    let mut boundaries = vec![0];
    for b in &blocks {
        let end = boundaries[boundaries.len() - 1] + testgen::pcapng(std::slice::from_ref(b)).len();
        boundaries.push(end);
    }
    // Only packet blocks count as records; map each block boundary to "records before it".
    let packets = [false, false, true, false, false, false, true, true];
    let (all, _) = read_all(file.clone());
    assert_eq!(all.len(), 3);
    for len in 0..=file.len() {
        let Ok(mut r) = CaptureReader::from_bytes(file[..len].to_vec()) else {
            assert!(len < boundaries[1], "prefix of {len} bytes failed to open");
            continue;
        };
        let n = r.by_ref().count();
        let whole_blocks = boundaries.iter().filter(|b| **b <= len).count() - 1;
        let expect = packets[..whole_blocks].iter().filter(|p| **p).count();
        assert_eq!(n, expect, "prefix {len}");
        match boundaries.contains(&len) {
            true => assert_eq!(r.stopped(), None, "prefix {len}"),
            false => assert!(
                r.stopped().is_some_and(|s| s.contains("truncated")),
                "prefix {len}: {:?}",
                r.stopped()
            ),
        }
    }
}

#[test]
fn garbage_after_valid_records_stops_cleanly() {
    let mut file = testgen::pcap(Endian::Little, false, 1, 65535, &two_records());
    file.extend_from_slice(&[0xff; 40]);
    let (f, stop) = read_all(file);
    assert_eq!(f.len(), 2);
    let stop = stop.expect("stop reported");
    assert!(
        stop.starts_with("record 3 at byte 164: record length 4294967295 exceeds"),
        "{stop}"
    );

    let blocks = [
        NgBlock::Section { big_endian: false },
        ng_iface(1, None, None),
        NgBlock::epb(0, 1, eth_frame()),
    ];
    let mut file = testgen::pcapng(&blocks);
    file.extend_from_slice(b"this is not a pcapng block at all, just text");
    let (f, stop) = read_all(file);
    assert_eq!(f.len(), 1);
    assert!(stop.is_some_and(|s| s.starts_with("block 4 at byte ")));
}

#[test]
fn an_absurd_record_length_stops_reading() {
    let mut file = testgen::pcap(Endian::Little, false, 1, 65535, &two_records()[..1]);
    for v in [SEC, 0, 4_000_000_000, 60] {
        file.extend_from_slice(&v.to_le_bytes());
    }
    let (f, stop) = read_all(file);
    assert_eq!(f.len(), 1);
    assert_eq!(
        stop.as_deref(),
        Some("record 2 at byte 94: record length 4000000000 exceeds the maximum 327680")
    );
}

#[test]
fn a_packet_longer_than_max_caplen_stops_even_when_present() {
    let big = vec![0u8; MAX_CAPLEN as usize + 1];
    let recs = [
        PcapRecord::new(SEC, 0, eth_frame()),
        PcapRecord::new(SEC, 1, big),
    ];
    let (f, stop) = read_all(testgen::pcap(Endian::Little, false, 1, 0, &recs));
    assert_eq!(f.len(), 1);
    assert!(stop.is_some_and(|s| s.contains("exceeds the maximum")));
}

#[test]
fn a_block_larger_than_the_buffer_grows_it_and_a_huge_one_stops() {
    let blocks = [
        NgBlock::Section { big_endian: false },
        ng_iface(1, None, None),
        NgBlock::Other {
            block_type: 0x0000_0bad,
            body: vec![0x55; 3 * BUFFER],
        },
        NgBlock::epb(0, 1, eth_frame()),
    ];
    let (f, stop) = read_all(testgen::pcapng(&blocks));
    assert_eq!((f.len(), stop), (1, None));

    let mut file = testgen::pcapng(&blocks[..2]);
    file.extend_from_slice(&0x0bad_u32.to_le_bytes());
    file.extend_from_slice(&(100u32 << 20).to_le_bytes());
    file.extend_from_slice(&[0; 64]);
    let (f, stop) = read_all(file);
    assert!(f.is_empty());
    assert!(stop.is_some_and(|s| s.contains("block length 104857600 is outside")));
}

#[test]
fn an_epb_whose_lengths_disagree_stops_as_damaged() {
    let blocks = [
        NgBlock::Section { big_endian: false },
        ng_iface(1, None, None),
        NgBlock::epb(0, 1, eth_frame()),
    ];
    let mut file = testgen::pcapng(&blocks);
    let epb_start = file.len() - testgen::pcapng(&blocks[2..]).len();
    // caplen (offset 20 in the EPB) now claims more than the block holds.
    file[epb_start + 20..epb_start + 24].copy_from_slice(&1000u32.to_le_bytes());
    file.extend_from_slice(&testgen::pcapng(&blocks[2..]));
    let (f, stop) = read_all(file);
    assert!(f.is_empty());
    assert!(stop.is_some_and(|s| s.starts_with(&format!("block 3 at byte {epb_start}: damaged"))));
}

#[test]
fn header_errors_name_the_problem() {
    let err = |b: &[u8]| {
        CaptureReader::from_bytes(b.to_vec())
            .map(|_| ())
            .unwrap_err()
    };
    assert!(matches!(err(&[]), CaptureError::Empty));
    let e = err(b"GIF89a, definitely a picture");
    assert!(
        matches!(&e, CaptureError::BadMagic { found } if found == "47 49 46 38"),
        "{e}"
    );
    assert!(e.to_string().contains("expected pcap"));
    let pcap = testgen::pcap(Endian::Little, false, 1, 65535, &[]);
    let e = err(&pcap[..10]);
    assert!(
        matches!(
            e,
            CaptureError::TruncatedHeader {
                format: "pcap",
                got: 10,
                need: 24
            }
        ),
        "{e}"
    );
    assert!(matches!(
        err(&pcap[..2]),
        CaptureError::TruncatedHeader {
            format: "pcap",
            got: 2,
            ..
        }
    ));
    let mut v3 = pcap.clone();
    v3[4] = 3;
    assert_eq!(
        err(&v3).to_string(),
        "bad pcap header: unsupported version 3.4, expected 2.x"
    );
    let mut snap = pcap.clone();
    snap[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        err(&snap).to_string(),
        "bad pcap header: absurd snap length 4294967295"
    );

    let ng = testgen::pcapng(&[NgBlock::Section { big_endian: true }]);
    assert!(matches!(
        err(&ng[..10]),
        CaptureError::TruncatedHeader {
            format: "pcapng",
            got: 10,
            need: 28
        }
    ));
    let mut bom = ng.clone();
    bom[8] = 0x99;
    assert!(
        err(&bom)
            .to_string()
            .starts_with("bad pcapng header: byte-order magic")
    );
    let mut ver = ng.clone();
    ver[12..14].copy_from_slice(&2u16.to_be_bytes());
    assert_eq!(
        err(&ver).to_string(),
        "bad pcapng header: unsupported version 2.0, expected 1.x"
    );
    assert!(!err(&ver).to_string().contains('\n'));
}

#[test]
fn a_pcapng_file_with_only_a_section_header_is_empty_not_broken() {
    let (f, stop) = read_all(testgen::pcapng(&[NgBlock::Section { big_endian: false }]));
    assert_eq!((f.len(), stop), (0, None));
    let (f, stop) = read_all(testgen::pcap(Endian::Big, false, 1, 0, &[]));
    assert_eq!((f.len(), stop), (0, None));
}

/// Hands out at most `chunk` bytes per read, as pipes and sockets do.
struct Dribble {
    bytes: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn short_reads_give_the_same_frames() {
    let blocks = [
        NgBlock::Section { big_endian: true },
        ng_iface(1, Some(9), None),
        NgBlock::Other {
            block_type: 0x0bad,
            body: vec![1; BUFFER + 100],
        },
        NgBlock::epb(0, 5, eth_frame()),
        NgBlock::Simple {
            data: eth_frame(),
            orig_len: 54,
        },
    ];
    for file in [
        testgen::pcapng(&blocks),
        testgen::pcap(Endian::Little, true, 1, 0, &two_records()),
    ] {
        let (whole, _) = read_all(file.clone());
        for chunk in [1, 7, 4096] {
            let mut r = CaptureReader::from_reader(Dribble {
                bytes: file.clone(),
                at: 0,
                chunk,
            })
            .expect("opens");
            let got: Vec<CapturedFrame> = r.by_ref().collect();
            assert_eq!((got, r.stopped()), (whole.clone(), None), "chunk {chunk}");
        }
    }
}

/// xorshift64: deterministic corruption without a dependency.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_corruption_never_panics_or_hangs() {
    let blocks = [
        NgBlock::Section { big_endian: false },
        ng_iface(1, Some(0x80 | 10), Some(7)),
        ng_iface(113, None, None),
        NgBlock::Enhanced {
            interface: 0,
            ts: 1,
            data: eth_frame(),
            orig_len: 60,
            comment: Some("x".into()),
        },
        NgBlock::epb(
            1,
            2,
            testgen::sll(0, &MAC_A, 0x0800, &testgen::sample_ipv4()),
        ),
        NgBlock::Packet {
            interface: 0,
            ts: 3,
            data: eth_frame(),
            orig_len: 54,
        },
        NgBlock::Simple {
            data: eth_frame(),
            orig_len: 54,
        },
    ];
    let files = [
        testgen::pcapng(&blocks),
        testgen::pcap(Endian::Big, false, 113, 0, &two_records()),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for file in &files {
        for _ in 0..4000 {
            let mut f = file.clone();
            for _ in 0..=rng(&mut seed) % 4 {
                let at = (rng(&mut seed) as usize) % f.len();
                f[at] = rng(&mut seed) as u8;
            }
            if let Ok(r) = CaptureReader::from_bytes(f) {
                assert!(r.take(100).count() < 100);
            }
        }
    }
}

#[test]
fn bytes_read_grows_record_by_record_to_the_file_size() {
    for name in ["http-get.pcap", "demo.pcapng", "http-post.pcapng"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("captures")
            .join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        let mut r = CaptureReader::open(&path).expect("capture opens");
        let mut last = r.bytes_read();
        assert!(last <= size, "{name}");
        let mut records = 0;
        while r.next().is_some() {
            records += 1;
            let now = r.bytes_read();
            assert!(now > last, "{name}: record {records} read no bytes");
            last = now;
        }
        assert!(records > 0, "{name}");
        assert_eq!(r.stopped(), None, "{name}");
        assert_eq!(
            r.bytes_read(),
            size,
            "{name}: a clean end has read every byte"
        );
    }
}
