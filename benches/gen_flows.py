#!/usr/bin/env python3
"""Generates captures for the replay-at-scale benchmark (issue 15): N complete HTTP flows to one server, about
CONCURRENT of them open at once like a busy server, or N SYN-only flows from spoofed sources, never answered.

    gen_flows.py http N OUT.pcap [CONCURRENT]     # SYN, SYN-ACK, ACK, GET, response, FINs, ACKs
    gen_flows.py syn N OUT.pcap                   # SYNs only

Classic pcap, Ethernet, IPv4, valid checksums. Deterministic: same arguments, same bytes.

Baseline measured with it (release build, `pktpath replay FILE --headless --max-speed`, 2026-12-02, before
any scale work): 1,000 flows at CONCURRENT=50 (9,609 frames) 14.24 s = 1,482 us/frame, 304 MiB peak RSS;
3,000 flows (28,880 frames) 82.15 s = 2,844 us/frame, 867 MiB: the cost per frame and the memory grow with
the number of flows, not only with frames. At CONCURRENT=1000, 863 of 1,000 flows do not play (the stack
sends no SYN-ACK: more than the half-open backlog of 128 are in their handshake at once). 100,000 SYN-only flows (100,000 frames): 29.77 s = 298 us/frame, 665 MiB.
perf (1,000 flows): Pipeline::advance 9.4%, connections::refresh_state 9.0%, BTreeMap search 8.8% and insert
7.8%, smoltcp neighbor Cache::lookup 8.2% and has_neighbor 7.7%, tcp seq_to_transmit 6.3%,
TcpConn::prune_acked 5.4%: every poll walks every socket and connection ever opened, so closed ones must be
removed from the socket set and the engine's tables for the per-frame cost to stop growing with flows.
"""
import os
import struct
import sys

# The one Internet checksum of the repository's generators (tests/data/rewrite.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data"))
from rewrite import csum  # noqa: E402

SERVER = bytes([10, 0, 0, 1])
SERVER_MAC = bytes([2, 0, 0, 0, 0, 1])
CLIENT_MAC = bytes([2, 0, 0, 0, 0, 2])
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01




def frame(src, dst, sport, dport, seq, ack, flags, payload=b"", to_server=True):
    opts = struct.pack("!BBH", 2, 4, 1460) if flags & SYN else b""
    hl = (20 + len(opts)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, hl << 4, flags,
                      65535, 0, 0) + opts + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    macs = (SERVER_MAC + CLIENT_MAC) if to_server else (CLIENT_MAC + SERVER_MAC)
    return macs + b"\x08\x00" + ip + tcp


def client(i):
    return bytes([10, 1 + (i >> 16) % 200, (i >> 8) & 0xFF, i & 0xFF]), 1024 + (i * 7) % 60000


def http_flow(i):
    """One flow's frames as (offset in µs from its start, frame)."""
    c, port = client(i)
    cisn, sisn = 1000 + i * 13, 50000 + i * 17
    req = b"GET /item/%d HTTP/1.1\r\nHost: server\r\n\r\n" % i
    body = bytes((i + k) % 26 + 97 for k in range(300 + (i * 37) % 2700))
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    up = lambda seq, ack, fl, p=b"": frame(c, SERVER, port, 80, seq, ack, fl, p, True)
    down = lambda seq, ack, fl, p=b"": frame(SERVER, c, 80, port, seq, ack, fl, p, False)
    out = [(0, up(cisn, 0, SYN)), (50, down(sisn, cisn + 1, SYN | ACK)),
           (100, up(cisn + 1, sisn + 1, ACK)), (110, up(cisn + 1, sisn + 1, PSH | ACK, req))]
    s, t = sisn + 1, 200
    ca = cisn + 1 + len(req)
    for k in range(0, len(resp), 1460):
        out.append((t, down(s, ca, PSH | ACK, resp[k:k + 1460])))
        s += len(resp[k:k + 1460])
        t += 10
    out.append((t + 40, up(ca, s, ACK)))
    out.append((t + 60, down(s, ca, FIN | ACK)))
    out.append((t + 100, up(ca, s + 1, FIN | ACK)))
    out.append((t + 150, down(s + 1, ca + 1, ACK)))
    return out


def write(path, records):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for us, data in records:
            f.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(data), len(data)))
            f.write(data)


def main():
    kind, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if kind == "syn":
        recs = []
        for i in range(n):
            c, port = client(i)
            recs.append((1_000_000 + i * 20, frame(c, SERVER, port, 80, 7 + i * 11, 0, SYN)))
        write(path, recs)
        return
    concurrent = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    # A flow lasts ~0.5 ms of offsets; flows start so ~`concurrent` overlap: spread each flow's frames
    # over `concurrent` start slots by scaling its offsets.
    step = 5  # µs between flow starts
    scale = max(1, concurrent * step // 500)
    recs = []
    for i in range(n):
        start = 1_000_000 + i * step
        recs.extend((start + off * scale, fr) for off, fr in http_flow(i))
    recs.sort(key=lambda r: r[0])
    write(path, recs)


if __name__ == "__main__":
    main()
