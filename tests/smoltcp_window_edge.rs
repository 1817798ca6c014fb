//! smoltcp 0.14's receive window after a SYN-ACK, at the edge of a 64 KiB buffer (issue 15's finding (a)):
//! a SYN-ACK's window field is never scaled (RFC 7323), yet smoltcp takes the next segment's acceptability
//! from that field shifted by the window scale (tcp.rs: `last_ack + (remote_last_win << remote_win_shift)`),
//! so with a 64 KiB buffer (scale 1) a segment up to 128 KiB ahead passes the check and is written past the
//! buffer's end: `debug_assert!(len_written == payload_len)` in a debug build, 0 bytes written and the
//! assembler told they were in a release build. These drive a real pipeline (smoltcp and a real app over
//! AF_UNIX) with the segments a peer would send, and check what the app read.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use pktpath::pipeline::stack::StackConfig;
use pktpath::pipeline::{AppKind, Nanos, Pipeline, PipelineConfig, VirtualClock, Wire};

const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const STACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PEER_IP: [u8; 4] = [10, 0, 0, 2];
const STACK_IP: [u8; 4] = [10, 0, 0, 1];
const PEER_ISN: u32 = 1_000_000;
const PORT: u16 = 9;

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet/IPv4/TCP frame from the peer to the stack, checksums made; `options` padded to 4 bytes.
fn segment(seq: u32, ack: u32, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut opts = options.to_vec();
    opts.resize(options.len().div_ceil(4) * 4, 0);
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&PORT.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push((((20 + opts.len()) / 4) << 4) as u8);
    tcp.push(flags);
    tcp.extend_from_slice(&0xffffu16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(&opts);
    tcp.extend_from_slice(payload);
    let mut pseudo = [PEER_IP, STACK_IP].concat();
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    let c = fold(sum16(&pseudo) + sum16(&tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&PEER_IP);
    ip.extend_from_slice(&STACK_IP);
    let c = fold(sum16(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = [STACK_MAC, PEER_MAC].concat();
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
/// MSS 1460, window scale 7, as a Linux peer offers.
const SYN_OPTIONS: [u8; 8] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];

/// What the peer sends once it knows the stack's ISN.
type AfterSynAck = Box<dyn FnOnce(u32) -> Vec<Vec<u8>>>;

/// The peer: its SYN, then, once the SYN-ACK gives the stack's ISN, the frames `after(isn)` makes, one per
/// step as the stack takes them.
struct Peer {
    queue: VecDeque<Vec<u8>>,
    after: Option<AfterSynAck>,
}

impl Wire for Peer {
    fn advance(&mut self, _now: Nanos) {}
    fn receive(&mut self, _now: Nanos) -> Option<Vec<u8>> {
        self.queue.pop_front()
    }
    fn transmit(&mut self, _now: Nanos, frame: &[u8]) {
        // An ARP request for the peer: answered.
        if frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[21] == 1 {
            let mut reply = [STACK_MAC, PEER_MAC].concat();
            reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
            reply.extend_from_slice(&PEER_MAC);
            reply.extend_from_slice(&PEER_IP);
            reply.extend_from_slice(&STACK_MAC);
            reply.extend_from_slice(&STACK_IP);
            self.queue.push_back(reply);
        }
        // A SYN-ACK: Ethernet 14 + IPv4 20, flags at TCP byte 13.
        if frame.len() >= 54 && frame[12..14] == [0x08, 0x00] && frame[47] == 0x12 {
            let isn = u32::from_be_bytes(frame[38..42].try_into().unwrap());
            if let Some(after) = self.after.take() {
                self.queue.extend(after(isn));
            }
        }
    }
    fn next_event(&self) -> Option<Nanos> {
        (!self.queue.is_empty()).then_some(0)
    }
    fn is_done(&self) -> bool {
        self.queue.is_empty() && self.after.is_none()
    }
}

/// Runs the peer's frames through a pipeline whose port 9 is `discard`; what the app read (bytes, crc32).
fn app_read(after: impl FnOnce(u32) -> Vec<Vec<u8>> + 'static) -> (u64, u32) {
    let stack = StackConfig {
        mac: STACK_MAC,
        ipv4: (STACK_IP.into(), 24),
        ..StackConfig::default()
    };
    let config = PipelineConfig::serving(stack, 256, BTreeMap::from([(PORT, AppKind::Discard)]));
    let peer = Peer {
        queue: VecDeque::from([segment(PEER_ISN, 0, SYN, &SYN_OPTIONS, &[])]),
        after: Some(Box::new(after)),
    };
    let mut pipeline = Pipeline::new(config, Box::new(VirtualClock::new(1000)), Box::new(peer));
    pipeline.run_until(2_000_000_000, 100_000);
    let connections = pipeline.finish();
    assert_eq!(connections.len(), 1, "one connection");
    let read = &connections[0].app_read;
    (read.bytes, read.crc32)
}

/// The byte at stream offset `i` of the peer's data.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn a_segment_just_past_a_64_kib_window_after_the_handshake_is_not_taken() {
    // The handshake's ACK, then 37 bytes at stream offset 65536 (just past a 64 KiB buffer, inside the
    // 128 KiB smoltcp reads from the SYN-ACK), then the 64 KiB before them in full segments.
    let (bytes, crc) = app_read(|isn| {
        let data = |at: usize, len: usize| (at..at + len).map(pattern).collect::<Vec<u8>>();
        let seq = |at: usize| PEER_ISN.wrapping_add(1).wrapping_add(at as u32);
        let mut frames = vec![segment(seq(0), isn.wrapping_add(1), ACK, &[], &[])];
        frames.push(segment(
            seq(65536),
            isn.wrapping_add(1),
            ACK,
            &[],
            &data(65536, 37),
        ));
        for at in (0..65536).step_by(1460) {
            let len = 1460.min(65536 - at);
            frames.push(segment(
                seq(at),
                isn.wrapping_add(1),
                ACK,
                &[],
                &data(at, len),
            ));
        }
        frames
    });
    let all: Vec<u8> = (0..65536).map(pattern).collect();
    assert_eq!(
        (bytes, crc),
        (65536, crc32fast::hash(&all)),
        "the app read exactly the 64 KiB sent in the window, none of the 37 bytes past it"
    );
}
