#!/usr/bin/env python3
"""Turn a classic Ethernet pcap into what a loopback interface records: ARP and neighbour discovery left out
(a loopback link has neither), and each IP packet under either Linux lo's Ethernet header (both MACs zero) or
BSD's LINKTYPE_NULL header (the address family, 4 bytes in host order: 2 for IPv4, 30 for IPv6 as macOS).

usage: to_loopback.py IN.pcap OUT.pcap ethernet|null   (standard library only)
"""
import struct
import sys


def main():
    src, out, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    data = open(src, "rb").read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    assert struct.unpack(endian + "I", data[20:24])[0] == 1, "Ethernet captures only"
    linktype = {"ethernet": 1, "null": 0}[kind]
    res, pos = [data[:20] + struct.pack(endian + "I", linktype)], 24
    while pos + 16 <= len(data):
        ts, tu, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        etype = struct.unpack("!H", frame[12:14])[0]
        ip = frame[14:]
        if etype == 0x86DD and ip[6] == 58 and len(ip) > 40 and 133 <= ip[40] <= 137:
            continue
        if etype not in (0x0800, 0x86DD):
            continue
        if kind == "ethernet":
            head = b"\0" * 12 + frame[12:14]
        else:
            head = struct.pack("<I", 2 if etype == 0x0800 else 30)
        rec = head + ip
        res.append(struct.pack(endian + "IIII", ts, tu, len(rec), orig - incl + len(rec)) + rec)
    open(out, "wb").write(b"".join(res))


main()
