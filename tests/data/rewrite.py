#!/usr/bin/env python3
"""Rewrite a classic Ethernet pcap's addresses (IPv4, IPv6, ARP, ND targets) and fix every checksum.

usage: rewrite.py IN.pcap OUT.pcap OLD=NEW [OLD=NEW ...]   (standard library only: tcprewrite need not be there)
"""
import ipaddress
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def fix_l4(proto, pseudo, seg):
    off = {6: 16, 17: 6, 58: 2}.get(proto)
    if off is None or len(seg) < off + 2:
        return seg
    seg = seg[:off] + b"\0\0" + seg[off + 2:]
    c = csum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:off] + struct.pack("!H", c) + seg[off + 2:]


def rewrite(frame, m):
    eth, body = frame[:14], frame[14:]
    etype = struct.unpack("!H", eth[12:14])[0]
    if etype == 0x0806 and len(body) >= 28:
        spa, tpa = body[14:18], body[24:28]
        body = body[:14] + m.get(spa, spa) + body[18:24] + m.get(tpa, tpa) + body[28:]
    elif etype == 0x0800 and len(body) >= 20:
        ihl = (body[0] & 15) * 4
        total = struct.unpack("!H", body[2:4])[0]
        src, dst = m.get(body[12:16], body[12:16]), m.get(body[16:20], body[16:20])
        hdr = body[:10] + b"\0\0" + src + dst + body[20:ihl]
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        seg, rest = body[ihl:total], body[total:]
        frag = struct.unpack("!H", body[6:8])[0] & 0x1FFF
        if frag == 0:
            pseudo = src + dst + struct.pack("!BBH", 0, body[9], len(seg))
            seg = fix_l4(body[9], pseudo, seg)
        body = hdr + seg + rest
    elif etype == 0x86DD and len(body) >= 40:
        plen = struct.unpack("!H", body[4:6])[0]
        src, dst = m.get(body[8:24], body[8:24]), m.get(body[24:40], body[24:40])
        seg, rest = body[40:40 + plen], body[40 + plen:]
        nh = body[6]
        if nh == 58 and len(seg) >= 24 and seg[0] in (135, 136):
            target = m.get(seg[8:24], seg[8:24])
            seg = seg[:8] + target + seg[24:]
            if dst[:13] == bytes.fromhex("ff020000000000000000000001ff"[:26]):
                dst = dst[:13] + target[13:]
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), nh)
        seg = fix_l4(nh, pseudo, seg)
        body = body[:8] + src + dst + seg + rest
    return eth + body


def main():
    src, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    m = {}
    for p in pairs:
        a, b = p.split("=")
        m[ipaddress.ip_address(a).packed] = ipaddress.ip_address(b).packed
    data = open(src, "rb").read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    assert struct.unpack(endian + "I", data[20:24])[0] == 1, "Ethernet captures only"
    res, pos = [data[:24]], 24
    while pos + 16 <= len(data):
        ts, tu, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frame = rewrite(data[pos + 16:pos + 16 + incl], m)
        res.append(struct.pack(endian + "IIII", ts, tu, len(frame), orig - incl + len(frame)) + frame)
        pos += 16 + incl
    open(out, "wb").write(b"".join(res))


if __name__ == "__main__":
    main()
