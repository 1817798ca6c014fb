#!/usr/bin/env python3
"""Turn a classic Ethernet pcap into what a monitor-mode 802.11 capture holds: a beacon first, then each frame as
an 802.11 data frame with an LLC/SNAP header (client to server via the access point with ToDS, the answers
with FromDS; every other one QoS data). `radiotap`: under a radiotap header whose Flags say an FCS ends the
frame (4 bytes appended); `bare`: LINKTYPE_IEEE802_11, no FCS.

usage: to_wifi.py IN.pcap OUT.pcap radiotap|bare CLIENT_MAC   (standard library only)
"""
import struct
import sys
import zlib

BSSID = bytes.fromhex("020000aaaaaa")


def dot11(frame, client, n):
    da, sa, etype, body = frame[0:6], frame[6:12], frame[12:14], frame[14:]
    qos = n % 2 == 1
    subtype = 0x88 if qos else 0x08
    if sa == client:  # to the access point
        fc = bytes([subtype, 0x01])
        addrs = BSSID + sa + da
    else:  # from it
        fc = bytes([subtype, 0x02])
        addrs = da + BSSID + sa
    hdr = fc + b"\0\0" + addrs + struct.pack("<H", (n << 4) & 0xFFFF)
    if qos:
        hdr += b"\0\0"
    return hdr + bytes.fromhex("aaaa03000000") + etype + body


def beacon():
    fixed = b"\0" * 8 + struct.pack("<HH", 100, 0x0401) + b"\x00\x04test"
    return bytes([0x80, 0]) + b"\0\0" + b"\xff" * 6 + BSSID + BSSID + b"\0\0" + fixed


def main():
    src, out, kind, client = sys.argv[1], sys.argv[2], sys.argv[3], bytes.fromhex(sys.argv[4].replace(":", ""))
    data = open(src, "rb").read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = {"radiotap": 127, "bare": 105}[kind]
    res, pos, n = [data[:20] + struct.pack(endian + "I", linktype)], 24, 0
    frames = []
    while pos + 16 <= len(data):
        ts, tu, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frames.append((ts, tu, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    records = [(frames[0][0], frames[0][1], beacon())]
    records += [(ts, tu, dot11(f, client, i)) for i, (ts, tu, f) in enumerate(frames)]
    for ts, tu, rec in records:
        if kind == "radiotap":
            # Version 0, length 9, present: Flags (bit 1); Flags 0x10: FCS at the end.
            rec = struct.pack("<BBHI", 0, 0, 9, 0x2) + b"\x10" + rec + struct.pack("<I", zlib.crc32(rec))
        res.append(struct.pack(endian + "IIII", ts, tu, len(rec), len(rec)) + rec)
    open(out, "wb").write(b"".join(res))


main()
