//! The same real exchange (captures/http-get.pcap) re-encapsulated in every link type the reader takes — raw IP,
//! Linux cooked (SLL, SLL2), BSD loopback, 802.1Q- and QinQ-tagged Ethernet — replays to the same result: the
//! connection completes and the app reads and writes exactly the bytes it does from the Ethernet original.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The records of a little-endian pcap file: (seconds, microseconds, original length, bytes).
fn records(bytes: &[u8]) -> Vec<(u32, u32, u32, Vec<u8>)> {
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    assert_eq!(u32_at(0), 0xa1b2_c3d4, "a little-endian µs pcap");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let (sec, usec, cap, orig) = (
            u32_at(off),
            u32_at(off + 4),
            u32_at(off + 8),
            u32_at(off + 12),
        );
        off += 16;
        out.push((sec, usec, orig, bytes[off..off + cap as usize].to_vec()));
        off += cap as usize;
    }
    out
}

/// Re-encapsulate an Ethernet frame; None for frames the link type cannot carry (ARP over raw IP).
fn convert(linktype: u32, eth: &[u8]) -> Option<Vec<u8>> {
    let (dst_mac, src_mac, ethertype, payload) =
        (&eth[0..6], &eth[6..12], &eth[12..14], &eth[14..]);
    let is_ip = ethertype == [0x08, 0x00] || ethertype == [0x86, 0xdd];
    let mut f = Vec::new();
    match linktype {
        101 | 228 => {
            if ethertype != [0x08, 0x00] {
                return None;
            }
            f.extend_from_slice(payload);
        }
        0 => {
            if !is_ip {
                return None;
            }
            let family: u32 = if ethertype == [0x08, 0x00] { 2 } else { 24 };
            f.extend_from_slice(&family.to_le_bytes());
            f.extend_from_slice(payload);
        }
        113 => {
            let outgoing = src_mac[5] == 2;
            f.extend_from_slice(&(if outgoing { 4u16 } else { 0 }).to_be_bytes());
            f.extend_from_slice(&1u16.to_be_bytes());
            f.extend_from_slice(&6u16.to_be_bytes());
            f.extend_from_slice(src_mac);
            f.extend_from_slice(&[0, 0]);
            f.extend_from_slice(ethertype);
            f.extend_from_slice(payload);
        }
        276 => {
            f.extend_from_slice(ethertype);
            f.extend_from_slice(&[0, 0]);
            f.extend_from_slice(&2u32.to_be_bytes());
            f.extend_from_slice(&1u16.to_be_bytes());
            f.extend_from_slice(&[0, 6]);
            f.extend_from_slice(src_mac);
            f.extend_from_slice(&[0, 0]);
            f.extend_from_slice(payload);
        }
        // Ethernet with tags: 1 tag (802.1Q) or 2 (QinQ: 0x88a8 outer, 0x8100 inner).
        1 | 10001 => {
            f.extend_from_slice(dst_mac);
            f.extend_from_slice(src_mac);
            if linktype == 10001 {
                f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a]);
            }
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
            f.extend_from_slice(ethertype);
            f.extend_from_slice(payload);
        }
        _ => unreachable!(),
    }
    Some(f)
}

fn rewrite(original: &Path, linktype: u32, out: &Path) -> usize {
    let bytes = std::fs::read(original).unwrap();
    let mut file = bytes[..24].to_vec();
    let on_disk = if linktype == 10001 { 1 } else { linktype };
    file[20..24].copy_from_slice(&on_disk.to_le_bytes());
    let mut n = 0;
    for (sec, usec, orig, frame) in records(&bytes) {
        let Some(f) = convert(linktype, &frame) else {
            continue;
        };
        let orig = orig as usize - frame.len() + f.len();
        for v in [sec, usec, f.len() as u32, orig as u32] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(&f);
        n += 1;
    }
    std::fs::write(out, file).unwrap();
    n
}

fn replay(file: &Path, export: &Path) -> Value {
    let out = pktpath(&[
        "replay",
        file.to_str().unwrap(),
        "--headless",
        "--export",
        export.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    read_json(export)
}

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

#[test]
fn every_link_type_replays_the_exchange_as_ethernet_does() {
    let dir = tempfile::tempdir().unwrap();
    let original = replay(&capture("http-get.pcap"), &dir.path().join("eth.json"));
    let conn = |doc: &Value| {
        let c = &doc["connections"][0];
        (
            c["app_read"].clone(),
            c["app_written"].clone(),
            c["local"].clone(),
        )
    };
    assert_eq!(original["connections"].as_array().unwrap().len(), 1);
    for (linktype, name) in [
        (101, "raw IP"),
        (228, "raw IPv4"),
        (0, "BSD loopback"),
        (113, "Linux cooked SLL"),
        (276, "Linux cooked SLL2"),
        (1, "802.1Q"),
        (10001, "QinQ"),
    ] {
        let file = dir.path().join(format!("lt{linktype}.pcap"));
        let frames = rewrite(&capture("http-get.pcap"), linktype, &file);
        let doc = replay(&file, &dir.path().join(format!("lt{linktype}.json")));
        assert_eq!(doc["replay"]["capture_frames"], frames, "{name}");
        let from_capture = packets(&doc)
            .iter()
            .filter(|p| p["capture_frame"].is_u64())
            .count();
        assert_eq!(from_capture, frames, "{name}: every frame has its packet");
        assert_eq!(doc["connections"].as_array().unwrap().len(), 1, "{name}");
        assert_eq!(conn(&doc), conn(&original), "{name}");
        let states: Vec<String> = doc["connections"][0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["detail"].as_str().map(String::from))
            .collect();
        assert!(
            states
                .iter()
                .any(|s| s.contains("→ CLOSED") || s.contains("→ TIME-WAIT")),
            "{name}: {states:?}"
        );
        assert_eq!(doc["stats"]["outcomes"]["dropped"], 0, "{name}");
    }
}
