#!/usr/bin/env python3
"""Edit single frames of a classic Ethernet pcap (standard library only).

usage: frames.py IN.pcap OUT.pcap OP [OP ...]
  flip:N:OFFSET:MASK    XOR byte OFFSET (from the start of the frame) of frame N (from 1) with MASK (hex)
  frag4:N:SIZE          split frame N, an IPv4 packet, into fragments of SIZE payload bytes (a multiple of 8),
                        each a record of its own at the frame's time, the identification kept (or 0x5150 if 0)
  later:N:SECS          frame N and every frame after it SECS seconds later
"""
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frag4(frame, size):
    assert size % 8 == 0 and frame[12:14] == b"\x08\x00"
    eth, ip = frame[:14], frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    hdr, payload = ip[:ihl], ip[ihl:total]
    ident = struct.unpack("!H", hdr[4:6])[0] or 0x5150
    out = []
    for off in range(0, len(payload), size):
        part = payload[off:off + size]
        more = off + size < len(payload)
        h = bytearray(hdr)
        h[2:4] = struct.pack("!H", ihl + len(part))
        h[4:6] = struct.pack("!H", ident)
        h[6:8] = struct.pack("!H", (0x2000 if more else 0) | (off // 8))
        h[10:12] = b"\0\0"
        h[10:12] = struct.pack("!H", csum(bytes(h)))
        out.append(eth + bytes(h) + part)
    return out


def main():
    src, dst, ops = sys.argv[1], sys.argv[2], sys.argv[3:]
    data = open(src, "rb").read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    records, pos = [], 24
    while pos + 16 <= len(data):
        ts, tu, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        records.append([ts, tu, [bytearray(data[pos + 16:pos + 16 + incl])]])
        pos += 16 + incl
    for op in ops:
        name, n, *args = op.split(":")
        rec = records[int(n) - 1]
        if name == "flip":
            rec[2][0][int(args[0])] ^= int(args[1], 16)
        elif name == "frag4":
            rec[2] = [bytearray(f) for f in frag4(bytes(rec[2][0]), int(args[0]))]
        elif name == "later":
            for r in records[int(n) - 1:]:
                r[0] += int(args[0])
        else:
            raise SystemExit("unknown op " + name)
    res = [data[:24]]
    for ts, tu, frames in records:
        for f in frames:
            res.append(struct.pack(endian + "IIII", ts, tu, len(f), len(f)) + bytes(f))
    open(dst, "wb").write(b"".join(res))


main()
