#!/usr/bin/env python3
"""Merge a classic Ethernet pcap's TCP data segments from one host as a receiver's GRO would: each run of up to
N back-to-back data segments of a flow from SENDER becomes one segment (IPv4 or IPv6, checksums fixed), and the
receiver's pure ACKs inside the run are dropped (it acks the merged segment once, with its last ack).

usage: gro.py IN.pcap OUT.pcap SENDER_IP N   (standard library only)
"""
import ipaddress
import struct
import sys

from rewrite import csum, fix_l4


def parse(frame):
    """(src, dst, l4 offset, tcp header length, seq, flags, payload) of an Ethernet TCP frame, or None."""
    etype = struct.unpack("!H", frame[12:14])[0]
    if etype == 0x0800:
        ihl = (frame[14] & 15) * 4
        if frame[23] != 6:
            return None
        total = struct.unpack("!H", frame[16:18])[0]
        src, dst, l4, end = frame[26:30], frame[30:34], 14 + ihl, 14 + total
    elif etype == 0x86DD:
        if frame[20] != 6:
            return None
        plen = struct.unpack("!H", frame[18:20])[0]
        src, dst, l4, end = frame[22:38], frame[38:54], 54, 54 + plen
    else:
        return None
    thl = (frame[l4 + 12] >> 4) * 4
    seq = struct.unpack("!I", frame[l4 + 4:l4 + 8])[0]
    return src, dst, l4, thl, seq, frame[l4 + 13], frame[l4 + thl:end]


def build(first, payload):
    """`first`'s headers around `payload`, lengths and checksums fixed."""
    src, dst, l4, thl, _, _, _ = parse(first)
    head = bytearray(first[:l4 + thl])
    seg = bytes(head[l4:]) + payload
    if head[12:14] == b"\x08\x00":
        head[16:18] = struct.pack("!H", l4 - 14 + len(seg))
        head[24:26] = b"\0\0"
        head[24:26] = struct.pack("!H", csum(bytes(head[14:l4])))
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    else:
        head[18:20] = struct.pack("!H", len(seg))
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), 6)
    return bytes(head[:l4]) + fix_l4(6, pseudo, seg)


def main():
    src_path, dst_path, sender, n = sys.argv[1], sys.argv[2], ipaddress.ip_address(sys.argv[3]).packed, int(sys.argv[4])
    data = open(src_path, "rb").read()
    header, off, records = data[:24], 24, []
    while off + 16 <= len(data):
        ts, us, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        records.append([ts, us, data[off + 16:off + 16 + incl]])
        off += 16 + incl
    out, run = [], None  # run: [record, payload, next seq, count, last held ack record]

    def flush():
        nonlocal run
        if run:
            rec, payload, _, _, ack = run
            out.append([rec[0], rec[1], build(rec[2], payload)])
            if ack:
                out.append(ack)
        run = None

    for rec in records:
        p = parse(rec[2])
        if p and p[0] == sender and p[6] and not p[5] & 0x07:
            if run and parse(run[0][2])[:2] == p[:2] and run[2] == p[4] and run[3] < n:
                run[1] += p[6]
                run[2] = (p[4] + len(p[6])) & 0xFFFFFFFF
                run[3] += 1
                continue
            flush()
            run = [rec, p[6], (p[4] + len(p[6])) & 0xFFFFFFFF, 1, None]
            continue
        if run and p and p[1] == sender and not p[6] and p[5] & 0x3F == 0x10:
            run[4] = rec  # the receiver's pure ack inside the run: only its last one is kept
            continue
        flush()
        out.append(rec)
    flush()
    with open(dst_path, "wb") as f:
        f.write(header)
        for ts, us, frame in out:
            f.write(struct.pack("<IIII", ts, us, len(frame), len(frame)) + frame)


if __name__ == "__main__":
    main()
