//! Untrusted captures through the real binary: every unreadable kind gives one line naming the file and the
//! problem, exit 1, at once; a damaged record ends reading but not the run.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Run `pktpath replay FILE --headless` and check the unreadable-file contract; returns the error line.
fn refused(path: &Path) -> String {
    let started = Instant::now();
    let out = pktpath(&[
        "replay",
        path.to_str().unwrap(),
        "--headless",
        "--max-speed",
    ]);
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line, got: {err}");
    assert!(
        err.contains(path.to_str().unwrap()),
        "the error names the file: {err}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(stdout(&out).is_empty());
    err
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A pcap global header: little-endian, microseconds, snaplen 65535, Ethernet.
fn pcap_header() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

fn record(t_us: u32, frame: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    r.extend_from_slice(&t_us.to_le_bytes());
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(frame);
    r
}

/// An Ethernet/IPv4/UDP datagram from 10.9.0.1:5000 to 10.9.0.2:7, checksums right.
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let src = Ipv4Address::new(10, 9, 0, 1);
    let dst = Ipv4Address::new(10, 9, 0, 2);
    let udp = UdpRepr {
        src_port: 5000,
        dst_port: 7,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + ip.payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_src_addr(EthernetAddress([2, 0, 0, 0, 9, 1]));
    eth.set_dst_addr(EthernetAddress([2, 0, 0, 0, 9, 2]));
    eth.set_ethertype(EthernetProtocol::Ipv4);
    let caps = ChecksumCapabilities::default();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]), &caps);
    let mut packet = UdpPacket::new_unchecked(&mut buf[34..]);
    udp.emit(
        &mut packet,
        &src.into(),
        &dst.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    buf
}

#[test]
fn an_empty_file_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&write(dir.path(), "empty.pcap", b""));
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn a_file_with_a_bad_magic_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&write(
        dir.path(),
        "notes.pcap",
        b"this is a text file, not a capture\n",
    ));
    assert!(err.contains("magic") || err.contains("not a pcap"), "{err}");
}

#[test]
fn a_truncated_pcap_header_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&write(dir.path(), "short.pcap", &pcap_header()[..10]));
    assert!(err.contains("header"), "{err}");
}

#[test]
fn a_truncated_pcapng_section_header_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // The block type of a section header block, then nothing of its body.
    let err = refused(&write(
        dir.path(),
        "short.pcapng",
        &[0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0],
    ));
    assert!(err.contains("header"), "{err}");
}

#[test]
fn a_missing_file_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    refused(&dir.path().join("no-such.pcap"));
}

#[test]
fn a_damaged_record_ends_reading_and_the_run_goes_on_with_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = pcap_header();
    bytes.extend(record(0, &udp_frame(b"one")));
    bytes.extend(record(1000, &udp_frame(b"two")));
    // A record header claiming four gigabytes, then a few bytes.
    bytes.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    bytes.extend_from_slice(&2000u32.to_le_bytes());
    bytes.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    bytes.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    bytes.extend_from_slice(b"garbage");
    let path = write(dir.path(), "damaged.pcap", &bytes);
    let export = dir.path().join("t.json");
    let out = pktpath(&[
        "replay",
        path.to_str().unwrap(),
        "--headless",
        "--max-speed",
        "--app",
        "echo",
        "--export",
        export.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}{text}", stderr(&out));
    assert!(text.contains("2 records"), "{text}");
    assert!(text.contains("reading stopped early"), "{text}");
    let doc = read_json(&export);
    let from_capture: Vec<_> = packets(&doc)
        .iter()
        .filter(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains("UDP"))
        .collect();
    assert_eq!(from_capture.len(), 2, "both datagrams were replayed");
    for p in &from_capture {
        assert_eq!(p["outcome"]["kind"], "delivered", "{p}");
    }
    // The echo app answered each.
    let replies = packets(&doc)
        .iter()
        .filter(|p| p["dir"] == "tx" && p["summary"].as_str().unwrap().contains("UDP"))
        .count();
    assert_eq!(replies, 2);
}

/// A pcap header like `pcap_header` with another link type.
fn pcap_header_linktype(linktype: u32) -> Vec<u8> {
    let mut h = pcap_header();
    h[20..24].copy_from_slice(&linktype.to_le_bytes());
    h
}

fn replay_ok(path: &Path, export: &Path) -> (String, serde_json::Value) {
    let out = pktpath(&[
        "replay",
        path.to_str().unwrap(),
        "--headless",
        "--export",
        export.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}{text}", stderr(&out));
    (text, read_json(export))
}

#[test]
fn an_unsupported_link_type_is_reported_per_packet_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = pcap_header_linktype(147); // LINKTYPE_USER0
    bytes.extend(record(0, b"opaque bytes of a private protocol"));
    bytes.extend(record(10, b"and another"));
    let path = write(dir.path(), "user0.pcap", &bytes);
    let (text, doc) = replay_ok(&path, &dir.path().join("t.json"));
    assert!(text.contains("the capture names no IP host"), "{text}");
    let ps = packets(&doc);
    assert_eq!(ps.len(), 2);
    for (p, n) in ps.iter().zip(1..) {
        assert_eq!(p["capture_frame"], n);
        assert_eq!(p["outcome"]["kind"], "dropped");
        assert_eq!(p["outcome"]["stage"], "wire");
        assert_eq!(p["outcome"]["code"], "not_injectable");
        assert!(
            p["outcome"]["reason"].as_str().unwrap().contains("147"),
            "{p}"
        );
    }
}

#[test]
fn a_capture_with_no_packets_replays_to_an_empty_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "header-only.pcap", &pcap_header());
    let (text, doc) = replay_ok(&path, &dir.path().join("t.json"));
    assert!(text.contains("(pcap, 0 records)"), "{text}");
    assert!(packets(&doc).is_empty());
    assert_eq!(doc["replay"]["capture_frames"], 0);
}

/// One damaged copy of `bytes`, and what was done to it.
fn damage(bytes: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut data = bytes.to_vec();
    let at = rng.below(data.len());
    let what = match rng.below(5) {
        0 => {
            let flips = 1 + rng.below(20);
            for _ in 0..flips {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            format!("{flips} bits flipped")
        }
        1 => {
            data.truncate(at);
            format!("cut at {at}")
        }
        2 => {
            let junk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
            let n = junk.len();
            data.splice(at..at, junk);
            format!("{n} junk bytes inserted at {at}")
        }
        3 => {
            let edges = [0x00, 0xff, 0x7f, 0x80];
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let i = rng.below(data.len());
                data[i] = edges[rng.below(edges.len())];
            }
            format!("{n} bytes set to edge values")
        }
        _ => {
            let end = (at + 1 + rng.below(200)).min(data.len());
            let stretch = data[at..end].to_vec();
            data.splice(end..end, stretch);
            format!("bytes {at}..{end} repeated")
        }
    };
    (data, what)
}

/// Damaged copies of the repository's real captures (bits flipped, cut short, junk inserted, bytes set to
/// edge values, a stretch repeated) through the real binary: each replays to a valid timeline (exit 0) or is
/// refused in one line (exit 1) — never a panic, never a hang. This is how a header whose lengths contradict
/// each other (an IP packet shorter than its own headers) was found to crash the replay's rewriting.
#[test]
fn damaged_copies_of_real_captures_replay_or_are_refused_in_one_line() {
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let names = [
        "demo.pcapng",
        "http-get.pcap",
        "http-post.pcapng",
        "ipv6-tcp.pcapng",
        "parallel.pcap",
        "refused.pcap",
        "udp-echo.pcap",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..120 {
        let name = names[round % names.len()];
        let original = std::fs::read(captures.join(name)).unwrap();
        let (bytes, what) = damage(&original, &mut rng);
        let path = write(dir.path(), &format!("m{round}-{name}"), &bytes);
        let export = dir.path().join(format!("m{round}.json"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pktpath"))
            .args([
                "replay",
                path.to_str().unwrap(),
                "--headless",
                "--max-speed",
            ])
            .args(["--export", export.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{name}, {what}: still running after 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        let case = format!("{name}, {what}: exit {status}, stderr: {err}");
        assert!(!err.contains("panicked"), "{case}");
        match status.code() {
            Some(0) => {
                let doc = read_json(&export);
                for p in packets(&doc) {
                    check_packet(p);
                }
            }
            Some(1) => {
                assert_eq!(err.lines().count(), 1, "{case}");
                assert!(err.contains(path.to_str().unwrap()), "{case}");
            }
            _ => panic!("{case}"),
        }
    }
}

/// An IPv4 header whose total length (20) leaves no room for the TCP header it announces, on the client's
/// ACK that the replay rewrites into the stack's sequence space: replayed, not a crash (it was one).
#[test]
fn an_ip_packet_shorter_than_its_own_headers_replays() {
    let original =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-get.pcap"))
            .unwrap();
    assert_eq!(
        original[..4],
        0xa1b2_c3d4u32.to_le_bytes(),
        "a little-endian pcap"
    );
    let mut bytes = original.clone();
    // The third record: the client's ACK of the handshake.
    let mut at = 24;
    for _ in 0..2 {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    let frame = at + 16;
    assert_eq!(bytes[frame + 12..frame + 14], [0x08, 0x00], "IPv4");
    assert_eq!(bytes[frame + 23], 6, "TCP");
    bytes[frame + 16..frame + 18].copy_from_slice(&20u16.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "short-ip.pcap", &bytes);
    let (summary, doc) = replay_ok(&path, &dir.path().join("t.json"));
    assert!(summary.contains("frames"), "{summary}");
    for p in packets(&doc) {
        check_packet(p);
    }
    let third = packets(&doc)
        .iter()
        .find(|p| p["capture_frame"] == 3)
        .expect("the damaged frame has its record");
    assert_eq!(third["outcome"]["kind"], "dropped", "{third}");
}
