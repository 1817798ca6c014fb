//! `--max-speed` loses nothing the recording did not lose: a UDP burst, injected as fast as the path takes
//! it, reaches the recorded app whole, exactly as at the recorded pace.

mod common;

use common::{pktpath, read_json, stderr};
use pktpath::replay::testgen::{self, Endian, MAC_A, MAC_B, PcapRecord};
use serde_json::Value;

const CLIENT: [u8; 4] = [10, 9, 0, 1];
const SERVER: [u8; 4] = [10, 9, 0, 2];

/// `n` datagrams of 1200 bytes from the client to port 9000, 50 µs apart, each answered by the server with
/// its first 32 bytes when `answered`.
fn burst(n: u32, answered: bool) -> (Vec<u8>, Vec<u8>) {
    let mut records = Vec::new();
    let mut sent = Vec::new();
    let mut t_us = 0u32;
    for i in 0..n {
        let data = format!("{i:06}").repeat(200).into_bytes();
        sent.extend_from_slice(&data);
        let to_server = testgen::ipv4(CLIENT, SERVER, 17, &testgen::udp(40000, 9000, &data));
        records.push(PcapRecord::new(
            0,
            t_us,
            testgen::ethernet(MAC_B, MAC_A, 0x0800, &to_server),
        ));
        t_us += 50;
        if answered {
            let reply = testgen::ipv4(SERVER, CLIENT, 17, &testgen::udp(9000, 40000, &data[..32]));
            records.push(PcapRecord::new(
                0,
                t_us,
                testgen::ethernet(MAC_A, MAC_B, 0x0800, &reply),
            ));
            t_us += 50;
        }
    }
    (
        testgen::pcap(Endian::Little, false, 1, 65535, &records),
        sent,
    )
}

fn replay(capture: &[u8], speed: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("burst.pcap");
    std::fs::write(&file, capture).unwrap();
    let export = dir.path().join("t.json");
    let mut args = vec![
        "replay",
        file.to_str().unwrap(),
        "--headless",
        "--export",
        export.to_str().unwrap(),
    ];
    args.extend_from_slice(speed);
    let out = pktpath(&args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    read_json(&export)
}

fn outcomes(doc: &Value, kind: &str) -> usize {
    doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["outcome"]["kind"] == kind)
        .count()
}

#[test]
fn a_udp_burst_at_max_speed_reaches_the_app_whole() {
    for answered in [false, true] {
        let (capture, sent) = burst(2000, answered);
        let want = serde_json::json!({
            "bytes": sent.len(),
            "crc32": format!("{:08x}", crc32fast::hash(&sent)),
        });
        for speed in [&["--max-speed"][..], &[][..]] {
            let doc = replay(&capture, speed);
            let what = format!("answered {answered}, {speed:?}");
            assert_eq!(outcomes(&doc, "dropped"), 0, "{what}");
            assert_eq!(outcomes(&doc, "delivered"), 2000, "{what}");
            let conns = doc["connections"].as_array().unwrap();
            assert_eq!(conns.len(), 1, "{what}");
            assert_eq!(conns[0]["app_read"], want, "{what}");
            if answered {
                assert_eq!(conns[0]["app_written"]["bytes"], 2000 * 32, "{what}");
            }
        }
    }
}
