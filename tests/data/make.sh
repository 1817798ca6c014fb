#!/bin/sh
# Regenerates the address-plan captures from the repository's recordings (needs python3 and editcap).
# The stack plays the host that received the SYN (the recorded server); each case moves the two hosts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
caps=$here/../../captures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rw=$here/rewrite.py
# The peer in the other half of the IPv4 space (the two differ in the top bit): only /0 holds both.
python3 "$rw" "$caps/http-get.pcap" "$here/other-half.pcap" 10.77.0.2=145.254.160.237 10.77.0.1=65.208.228.223
# The longest common prefix (/30, 10.0.0.0/30) would make the client the subnet's broadcast address.
python3 "$rw" "$caps/http-get.pcap" "$here/broadcast-clash.pcap" 10.77.0.2=10.0.0.1 10.77.0.1=10.0.0.3
# The client in another /64 (and another /48): /64 would put it off-link.
editcap -F pcap "$caps/ipv6-tcp.pcapng" "$tmp/v6.pcap"
python3 "$rw" "$tmp/v6.pcap" "$here/other-64.pcap" fd77::2=2001:db8:1::2 fd77::1=2001:db8:2::1

# --- Holes: segments the capturing tool missed (editcap deletes them; frame numbers count from 1) ---
# http-post: one hole each way: the client's 2nd data segment (frame 8) and the server's response head (16).
editcap "$caps/http-post.pcapng" "$here/hole-each-way.pcapng" 8 16
# http-post: the client's 2nd data segment and the server's ack of it (9): a later ack proves the hole.
editcap "$caps/http-post.pcapng" "$here/hole-ack-lost.pcapng" 8 9
# upload, its first 60 records: three consecutive client data segments (10, 12, 14), their acks kept.
editcap -r "$caps/upload.pcap" "$tmp/upload-60.pcap" 1-60
editcap "$tmp/upload-60.pcap" "$here/hole-three-segments.pcap" 10 12 14
# upload: a client data segment (10) and the server's next two acks (11, 13): the ack that proves the hole
# (15) comes two segments after it, so at recorded speed the segment past the hole goes in before the proof.
editcap "$tmp/upload-60.pcap" "$here/hole-late-proof.pcap" 10 11 13
# bulk, its first 40 records: one server data segment (11), which the client's ack (16) proves was sent.
editcap -r "$caps/bulk.pcap" "$tmp/bulk-40.pcap" 1-40
editcap "$tmp/bulk-40.pcap" "$here/hole-server.pcap" 11
# bulk, its first 24 records: a server data segment (22) whose acks were not captured: no ack proves it.
editcap -r "$caps/bulk.pcap" "$here/hole-unproven.pcap" 1-21 23-24
