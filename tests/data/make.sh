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

# --- Checksum offload and fragments (tests/replay_offload.rs, tests/replay_fragments.rs). ---------------------
# offload-http.pcap, frag-udp4.pcap and frag-udp6.pcap are real recordings: record-offload.sh (root) makes them.
fr=$here/frames.py
# The offloaded recording with every checksum completed, then one bit of the client's first data segment's TCP
# checksum flipped (frame 4; its checksum field is at 14 + 20 + 16 = 50): damage, not offload.
python3 "$rw" "$here/offload-http.pcap" "$tmp/complete.pcap"
python3 "$fr" "$tmp/complete.pcap" "$here/offload-damaged.pcap" flip:4:51:01
# The IPv4 datagram's middle fragment (of three) lost.
editcap -F pcap "$here/frag-udp4.pcap" "$here/frag-udp4-lost.pcap" 2
# The same, with the answer 61 s later: past the 60 s reassembly timeout, so the held fragments expire.
python3 "$fr" "$here/frag-udp4-lost.pcap" "$here/frag-udp4-timeout.pcap" later:3:61
# The HTTP GET (frame 6 of http-get.pcap: a 32-byte TCP header and 81 bytes) sent as four IPv4 fragments.
python3 "$fr" "$caps/http-get.pcap" "$here/frag-tcp4.pcap" frag4:6:32

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

# Loopback recordings (tests/replay_loopback.rs): both ends at the same address, as `lo` records them —
# Linux's Ethernet header with zero MACs, and BSD's LINKTYPE_NULL; IPv4 (127.0.0.1) and IPv6 (::1).
lo=$here/to_loopback.py
python3 "$rw" "$caps/http-get.pcap" "$tmp/lo4.pcap" 10.77.0.2=127.0.0.1 10.77.0.1=127.0.0.1
python3 "$lo" "$tmp/lo4.pcap" "$here/loopback-null.pcap" null
python3 "$lo" "$tmp/lo4.pcap" "$here/loopback-ether.pcap" ethernet
python3 "$rw" "$tmp/v6.pcap" "$tmp/lo6.pcap" fd77::2=::1 fd77::1=::1
python3 "$lo" "$tmp/lo6.pcap" "$here/loopback-v6-null.pcap" null
python3 "$lo" "$tmp/lo6.pcap" "$here/loopback-v6-ether.pcap" ethernet
python3 "$rw" "$caps/udp-echo.pcap" "$tmp/lo-udp.pcap" 10.77.0.2=127.0.0.1 10.77.0.1=127.0.0.1
python3 "$lo" "$tmp/lo-udp.pcap" "$here/loopback-udp.pcap" null

# Flows that do not play (tests/replay_flows.rs): a second GET between two other hosts merged in, and a cut
# that starts after the handshake (no SYN captured).
python3 "$rw" "$caps/http-get.pcap" "$tmp/others.pcap" 10.77.0.2=10.0.0.5 10.77.0.1=10.0.0.9
editcap -t 0.5 "$tmp/others.pcap" "$tmp/others-later.pcap"
mergecap -F pcap -w "$here/other-hosts.pcap" "$caps/http-get.pcap" "$tmp/others-later.pcap"
editcap -F pcap -r "$caps/http-get.pcap" "$here/no-syn.pcap" 6-19

# 802.11 (tests/replay_wifi.rs): the GET as a monitor-mode capture's data frames (LLC/SNAP), a beacon first,
# under radiotap with an FCS and bare.
python3 "$here/to_wifi.py" "$caps/http-get.pcap" "$here/wifi-radiotap.pcap" radiotap 02:77:00:00:00:01
python3 "$here/to_wifi.py" "$caps/http-get.pcap" "$here/wifi-bare.pcap" bare 02:77:00:00:00:01
# Fifteen flows between other hosts (three copies of parallel.pcap's five) beside the stack's GET: the
# summary names nine and counts the rest.
for n in 1 2 3; do
  python3 "$rw" "$caps/parallel.pcap" "$tmp/par$n.pcap" 10.77.0.2=10.0.$n.5 10.77.0.1=10.0.$n.9
  editcap -t $n "$tmp/par$n.pcap" "$tmp/par$n-later.pcap"
done
mergecap -F pcap -w "$here/many-others.pcap" "$caps/http-get.pcap" "$tmp/par1-later.pcap" "$tmp/par2-later.pcap" "$tmp/par3-later.pcap"
