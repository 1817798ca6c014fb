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
