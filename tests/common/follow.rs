//! tshark's view of a capture's TCP streams (`-z follow,tcp,raw,N`): an independent reassembly to hold the
//! replay's app digests against.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// One TCP stream as tshark follows it: node 0 (who spoke first), node 1, and the bytes each sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub node0: SocketAddr,
    pub node1: SocketAddr,
    pub from0: Vec<u8>,
    pub from1: Vec<u8>,
}

/// Stream `n` of `capture`, or None when tshark has no such stream.
pub fn tcp_stream(capture: &Path, n: u32) -> Option<Followed> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(capture)
        .args(["-q", "-z", &format!("follow,tcp,raw,{n}")])
        .output()
        .expect("tshark runs");
    assert!(out.status.success(), "tshark on {}", capture.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let node = |tag: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .and_then(|a| a.trim().parse::<SocketAddr>().ok())
    };
    let (node0, node1) = (node("Node 0: ")?, node("Node 1: ")?);
    let (mut from0, mut from1) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let (into, hex) = match line.strip_prefix('\t') {
            Some(h) => (&mut from1, h),
            None => (&mut from0, line),
        };
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        into.extend(
            (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()),
        );
    }
    Some(Followed {
        node0,
        node1,
        from0,
        from1,
    })
}

/// The digest the export writes for an app's bytes (`StreamDigest`): their count and CRC-32.
pub fn digest(bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"bytes": bytes.len(), "crc32": format!("{:08x}", crc32fast::hash(bytes))})
}

/// tshark's followed bytes with each gap marker it prints ("[1448 bytes missing in capture file]" and a
/// NUL) read as that many zeros; and the gaps, as stream ranges.
pub fn markers_as_zeros(followed: &[u8]) -> (Vec<u8>, Vec<(u64, u64)>) {
    const TAIL: &[u8] = b" bytes missing in capture file]\0";
    let (mut out, mut gaps) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < followed.len() {
        if followed[i] == b'[' {
            let digits = followed[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let rest = &followed[i + 1 + digits..];
            if digits > 0 && rest.starts_with(TAIL) {
                let n: usize = std::str::from_utf8(&followed[i + 1..i + 1 + digits])
                    .unwrap()
                    .parse()
                    .unwrap();
                gaps.push((out.len() as u64, (out.len() + n) as u64));
                out.resize(out.len() + n, 0);
                i += 1 + digits + TAIL.len();
                continue;
            }
        }
        out.push(followed[i]);
        i += 1;
    }
    (out, gaps)
}
