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

# Mid-flow joins (needs editcap and mergecap): cuts whose TCP flows start after their handshake (editcap -r keeps
# a frame range), so the replay's peer opens each flow with a synthetic handshake (tests/replay_midflow.rs).
# The client's data first, mid-upload (its 1 MiB POST near its end; the server answers and closes first).
editcap -r "$caps/upload.pcap" "$here/midflow-upload.pcap" 960-986
# The server's data first, mid-download (the last 34 KB of the 1 MiB GET; acks from before the cut among them).
editcap -r "$caps/bulk.pcap" "$here/midflow-bulk.pcap" 1040-1072
# IPv6, the server's data first; the client closes first.
editcap -F pcap -r "$caps/ipv6-tcp.pcapng" "$here/midflow-v6.pcap" 10-18
# Five parallel echo flows, each cut after its handshake and first write.
editcap -r "$caps/parallel.pcap" "$here/midflow-parallel.pcap" 28-62
# Cuts that start at a FIN: the server's (HTTP POST) and the client's (IPv6 GET).
editcap -F pcap -r "$caps/http-post.pcapng" "$here/midflow-server-fin.pcap" 20-22
editcap -F pcap -r "$caps/ipv6-tcp.pcapng" "$here/midflow-client-fin.pcap" 16-18
# Segments from before the join point among the cut's frames (mergecap -a keeps file order): the server's data
# sent again (bulk.pcap 1030-1031 after 1040-1045), and the client's (upload.pcap 950 after 960-965).
editcap -r "$caps/bulk.pcap" "$tmp/a.pcap" 1040-1045
editcap -r "$caps/bulk.pcap" "$tmp/b.pcap" 1030-1031
editcap -r "$caps/bulk.pcap" "$tmp/c.pcap" 1046-1072
mergecap -a -F pcap -w "$here/midflow-stale-server.pcap" "$tmp/a.pcap" "$tmp/b.pcap" "$tmp/c.pcap"
editcap -r "$caps/upload.pcap" "$tmp/a.pcap" 960-965
editcap -r "$caps/upload.pcap" "$tmp/b.pcap" 950
editcap -r "$caps/upload.pcap" "$tmp/c.pcap" 966-986
mergecap -a -F pcap -w "$here/midflow-stale-client.pcap" "$tmp/a.pcap" "$tmp/b.pcap" "$tmp/c.pcap"
# The client's ack first, the server's bytes up to its first captured segment in flight when the cut begins
# (sent before it, never captured): the server's stream starts at that segment.
editcap -r "$caps/bulk.pcap" "$here/midflow-in-flight.pcap" 1063-1072
