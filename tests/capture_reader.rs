//! The capture reader through its public API: files on disk, errors, a long streamed capture, and (when
//! tshark is installed) a frame-count cross-check against Wireshark's reader.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use pktpath::replay::capture::{CaptureError, CaptureReader, CapturedFrame};
use pktpath::replay::testgen::{self, Endian, MAC_A, MAC_B, NgBlock, NgInterface, PcapRecord};

fn eth() -> Vec<u8> {
    testgen::ethernet(MAC_B, MAC_A, 0x0800, &testgen::sample_ipv4())
}

fn mixed_pcapng() -> Vec<u8> {
    testgen::pcapng(&[
        NgBlock::Section { big_endian: false },
        NgBlock::Interface(NgInterface {
            linktype: 1,
            snaplen: 0,
            tsresol: Some(9),
            tsoffset: None,
        }),
        NgBlock::Interface(NgInterface::new(113)),
        NgBlock::epb(0, 1_000, eth()),
        NgBlock::epb(
            1,
            2,
            testgen::sll(0, &MAC_A, 0x0800, &testgen::sample_ipv4()),
        ),
        NgBlock::Section { big_endian: true },
        NgBlock::Interface(NgInterface::new(101)),
        NgBlock::Simple {
            data: testgen::sample_ipv6(),
            orig_len: 53,
        },
        NgBlock::Enhanced {
            interface: 0,
            ts: 1_700_000_000_000_000,
            data: testgen::sample_ipv4(),
            orig_len: 40,
            comment: Some("from the second section".into()),
        },
    ])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write capture");
    path
}

#[test]
fn a_pcapng_file_on_disk_reads_completely_and_normalised() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The name says pcap, the content is pcapng: detection goes by magic.
    let path = write(dir.path(), "misnamed.pcap", &mixed_pcapng());
    let mut r = CaptureReader::open(&path).expect("opens");
    assert_eq!(r.format(), "pcapng");
    let frames: Vec<CapturedFrame> = r.by_ref().collect();
    assert_eq!((r.records_read(), r.stopped()), (4, None));
    assert!(
        frames
            .iter()
            .all(|f| f.problem.is_none() && f.frame.len() >= 14)
    );
    assert_eq!(
        frames.iter().map(|f| f.linktype).collect::<Vec<_>>(),
        vec![1, 113, 101, 101]
    );
    assert_eq!(
        frames[1].frame[6..12],
        MAC_A,
        "SLL address kept as the source MAC"
    );
    assert_eq!(frames[2].frame[12..14], [0x86, 0xdd]);
    assert_eq!(frames[3].t_ns, 1_700_000_000_000_000_000);
    assert_eq!(
        frames[3].comment.as_deref(),
        Some("from the second section")
    );
    assert!(frames[2].synthetic_l2 && frames[3].synthetic_l2 && !frames[0].synthetic_l2);
}

#[test]
fn open_errors_are_one_line_and_specific() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = CaptureReader::open(&dir.path().join("nope.pcap"))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(missing, CaptureError::Io(_)));
    let empty = write(dir.path(), "empty.pcap", &[]);
    let e = CaptureReader::open(&empty).map(|_| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the file is empty, expected a pcap or pcapng capture"
    );
    let text = write(dir.path(), "notes.txt", b"hello world\n");
    let e = CaptureReader::open(&text).map(|_| ()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("not a capture: the file starts with 68 65 6c 6c"),
        "{e}"
    );
    for e in [missing, e] {
        assert!(!e.to_string().contains('\n'));
    }
    assert!(pktpath::replay::check_readable(&text).is_err());
}

#[test]
fn a_cut_off_file_yields_its_whole_records_and_says_where_it_stopped() {
    let recs: Vec<PcapRecord> = (0..5).map(|i| PcapRecord::new(100 + i, 0, eth())).collect();
    let file = testgen::pcap(Endian::Little, false, 1, 65535, &recs);
    let mut r = CaptureReader::from_bytes(file[..file.len() - 10].to_vec()).expect("opens");
    assert_eq!(r.by_ref().count(), 4);
    let stop = r.stopped().expect("stop reported");
    assert_eq!(
        stop,
        "record 5 at byte 304: truncated, the file ends after 60 of 70 bytes"
    );
}

/// A pcap capture generated on the fly, never held in memory: header, then `left` identical records.
struct Endless {
    pending: Vec<u8>,
    record: Vec<u8>,
    left: u64,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() && self.left > 0 {
            self.left -= 1;
            self.pending = self.record.clone();
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn a_long_capture_streams_in_order() {
    let file = testgen::pcap(Endian::Big, true, 1, 65535, &[PcapRecord::new(7, 8, eth())]);
    let (header, record) = file.split_at(24);
    let source = Endless {
        pending: header.to_vec(),
        record: record.to_vec(),
        left: 200_000,
    };
    let mut r = CaptureReader::from_reader(source).expect("opens");
    let mut count = 0u64;
    for f in r.by_ref() {
        assert_eq!(f.index, count);
        count += 1;
    }
    assert_eq!((count, r.stopped()), (200_000, None));
}

#[test]
fn tshark_counts_the_same_frames_if_installed() {
    let Ok(out) = Command::new("tshark").arg("-v").output() else {
        eprintln!("tshark not installed: cross-check skipped");
        return;
    };
    if !out.status.success() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "mixed.pcapng", &mixed_pcapng());
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .output()
        .expect("tshark runs");
    let tshark_frames = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    let mut r = CaptureReader::open(&path).expect("opens");
    assert_eq!(r.by_ref().count() as u64, tshark_frames);
}

/// A modified pcap (a1b2cd34) written by Wireshark's own editcap reads as the same frames as the classic
/// pcap it came from: same times, same bytes.
#[test]
fn editcap_modpcap_reads_like_its_source_if_installed() {
    let have = Command::new("editcap")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("editcap not installed: modified-pcap cross-check skipped");
        return;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-get.pcap");
    let dir = tempfile::tempdir().expect("tempdir");
    let modified = dir.path().join("modpcap.pcap");
    let status = Command::new("editcap")
        .args(["-F", "modpcap"])
        .arg(&source)
        .arg(&modified)
        .status()
        .expect("editcap runs");
    assert!(status.success());
    let bytes = std::fs::read(&modified).expect("editcap wrote it");
    assert_eq!(bytes[..4], [0x34, 0xcd, 0xb2, 0xa1], "a modified pcap");
    let key = |f: CapturedFrame| (f.index, f.t_ns, f.frame, f.orig_len, f.problem);
    let mut original = CaptureReader::open(&source).expect("opens");
    let mut converted = CaptureReader::open(&modified).expect("a modified pcap opens");
    let want: Vec<_> = original.by_ref().map(key).collect();
    let got: Vec<_> = converted.by_ref().map(key).collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    assert_eq!((converted.stopped(), converted.format()), (None, "pcap"));
}
