#!/bin/bash
# Records the real offload and fragment captures of tests/data (needs root, iproute2, ethtool, dumpcap (tshark),
# python3; ethtool's ioctls are made from python). Every packet stays inside two network namespaces made here and deleted at the end:
#   ppo-client  veth ppo-c0  10.77.0.1/24  fd77::1/64  mac 02:77:00:00:00:01
#   ppo-server  veth ppo-s0  10.77.0.2/24  fd77::2/64  mac 02:77:00:00:00:02
# dumpcap listens on the client's veth, the sending side of the client's frames.
#   offload-http.pcap  one HTTP-like exchange; the client's veth keeps TX checksum offload on, so its frames
#                      are captured with partial checksums (CHECKSUM_PARTIAL); the server's are complete
#   frag-udp4.pcap     a 3000-byte UDP datagram to 10.77.0.2:7 (three IPv4 fragments), answered "ok 3000"
#   frag-udp6.pcap     the same over IPv6 (three fragments with a fragment header), answered "ok 3000"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
teardown() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  ip netns del ppo-client 2>/dev/null || true
  ip netns del ppo-server 2>/dev/null || true
}
trap 'teardown; rm -rf "$work"' EXIT
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# offloads NS DEV on|off: TSO, GSO and GRO off; TX checksum offload on or off (the legacy ethtool ioctls,
# so ethtool itself need not be installed).
offloads() {
  nsx "$1" python3 -c '
import fcntl, socket, struct, sys
dev, tx = sys.argv[1].encode(), int(sys.argv[2] == "on")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# ETHTOOL_STXCSUM, ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO
for cmd, value in ((0x17, tx), (0x1f, 0), (0x24, 0), (0x2c, 0)):
    data = struct.pack("II", cmd, value)
    buf = bytearray(data)
    ifr = struct.pack("16sP", dev, __import__("ctypes").addressof((__import__("ctypes").c_char * 8).from_buffer(buf)))
    fcntl.ioctl(s.fileno(), 0x8946, ifr)
' "$2" "$3"
}

setup() {
  teardown
  for ns in ppo-client ppo-server; do
    ip netns add $ns
    nsx $ns ip link set lo up
    for scope in all default; do
      nsx $ns sysctl -qw net.ipv6.conf.$scope.router_solicitations=0
      nsx $ns sysctl -qw net.ipv6.conf.$scope.accept_dad=0
      nsx $ns sysctl -qw net.ipv6.conf.$scope.accept_ra=0
    done
  done
  ip link add ppo-c0 netns ppo-client address 02:77:00:00:00:01 type veth \
    peer name ppo-s0 netns ppo-server address 02:77:00:00:00:02
  # Segments on-wire sized on both sides; the client keeps (or not) its TX checksum offload.
  offloads ppo-client ppo-c0 "$1"
  offloads ppo-server ppo-s0 off
  nsx ppo-client ip addr add 10.77.0.1/24 dev ppo-c0
  nsx ppo-server ip addr add 10.77.0.2/24 dev ppo-s0
  nsx ppo-client ip -6 addr add fd77::1/64 dev ppo-c0 nodad
  nsx ppo-server ip -6 addr add fd77::2/64 dev ppo-s0 nodad
  nsx ppo-client ip link set ppo-c0 up
  nsx ppo-server ip link set ppo-s0 up
  sleep 2
}

capture() {
  # dumpcap (Wireshark's capture engine) where tcpdump is not installed; -P writes classic pcap.
  nsx ppo-client dumpcap -q -P -i ppo-c0 -s 0 -f "$2" -w "$1" 2>"$work/tcpdump.err" &
  pids+=("$!")
  for _ in $(seq 100); do grep -q "Capturing on" "$work/tcpdump.err" && sleep 0.3 && return 0; sleep 0.05; done
  echo "dumpcap did not start: $(cat "$work/tcpdump.err")" >&2
  return 1
}

stop_capture() {
  sleep 0.5
  kill "${pids[-1]}"
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
}

wait_listen() {
  for _ in $(seq 100); do [ -n "$(nsx ppo-server ss "$1" "sport = :$2")" ] && return 0; sleep 0.05; done
  return 1
}

server_tcp='
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.77.0.2", 8080)); s.listen()
c, _ = s.accept(); req = b""
while not req.endswith(b"\r\n\r\n"):
    req += c.recv(4096)
body = bytes((i * 7) % 251 for i in range(2500))
c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2500\r\n\r\n" + body); c.close()
'
client_tcp='
import socket
c = socket.create_connection(("10.77.0.2", 8080))
c.sendall(b"GET /" + b"x" * 2000 + b" HTTP/1.0\r\nHost: offload\r\n\r\n")
while c.recv(4096):
    pass
c.close()
'
server_udp='
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((sys.argv[1], 7))
d, peer = s.recvfrom(65535); s.sendto(b"ok %d" % len(d), peer)
'
client_udp='
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(bytes((i * 13 + 5) % 256 for i in range(3000)), (sys.argv[1], 7)); s.recvfrom(100)
'

setup on
nsx ppo-server python3 -c "$server_tcp" &
pids+=("$!")
wait_listen -ltnH 8080
capture "$work/offload.pcap" "tcp port 8080"
nsx ppo-client python3 -c "$client_tcp"
stop_capture
cp "$work/offload.pcap" "$here/offload-http.pcap"

setup off
for pair in "udp4 10.77.0.2" "udp6 fd77::2"; do
  set -- $pair
  nsx ppo-server python3 -c "$server_udp" "$2" &
  pids+=("$!")
  wait_listen -lunH 7
  # The neighbour first, so the capture holds only the datagram, its fragments and the answer.
  nsx ppo-client ping -c 1 -W 1 "$2" >/dev/null
  capture "$work/$1.pcap" "udp or (ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)"
  nsx ppo-client python3 -c "$client_udp" "$2"
  stop_capture
  cp "$work/$1.pcap" "$here/frag-$1.pcap"
done
