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
# Segments merged as a receiver's GRO would (tests/replay_merged.rs): the first 140 frames of the upload, each
# run of up to 44 client data segments made one (up to 64 KiB), the server's acks inside a run dropped.
editcap -F pcap -r "$caps/upload.pcap" "$tmp/up140.pcap" 1-140
python3 "$here/gro.py" "$tmp/up140.pcap" "$here/merged-upload.pcap" 10.77.0.1 44
