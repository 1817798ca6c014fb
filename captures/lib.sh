# shellcheck shell=bash
# Namespace helpers for captures/record.sh and captures/make-large.sh. Source this file; do not run it.
#
# Every packet these helpers cause stays inside network namespaces created here:
#   ppc-client  veth ppc-c0  10.77.0.1/24  fd77::1/64  mac 02:77:00:00:00:01
#   ppc-server  veth ppc-s0  10.77.0.2/24  fd77::2/64  mac 02:77:00:00:00:02
# "direct" joins ppc-c0 and ppc-s0 with one veth pair. "impaired" puts a third namespace, ppc-link, between them:
#   ppc-client:ppc-c0 <-> ppc-link:ppc-lc  [captures/impair.py]  ppc-link:ppc-ls <-> ppc-server:ppc-s0
# ppc-link has no addresses; impair.py bridges its two ends in userspace (AF_PACKET), dropping, delaying and
# reordering frames. The replay tests rely on the addresses above: do not change them.

PPC_NAMESPACES=(ppc-client ppc-server ppc-link)
PPC_CLIENT_MAC=02:77:00:00:00:01
PPC_SERVER_MAC=02:77:00:00:00:02
PPC_PIDS=()
PPC_TCPDUMP_PID=""
PPC_TCPDUMP_ERR=""
PPC_TCPDUMP_FILE=""

ppc_log() { printf '[ppc] %s\n' "$*" >&2; }

# ppc_in NS CMD...: run CMD inside namespace NS.
ppc_in() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# ppc_bg NS CMD...: start CMD in the background inside NS; its pid is remembered and ended by ppc_teardown.
ppc_bg() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@" &
  PPC_PIDS+=("$!")
}

# ppc_quiet_ipv6 NS: no router solicitations and no DAD, so a capture holds only the traffic a script makes.
ppc_quiet_ipv6() {
  local ns=$1 scope
  for scope in all default; do
    ppc_in "$ns" sysctl -qw "net.ipv6.conf.$scope.router_solicitations=0"
    ppc_in "$ns" sysctl -qw "net.ipv6.conf.$scope.accept_dad=0"
    ppc_in "$ns" sysctl -qw "net.ipv6.conf.$scope.accept_ra=0"
  done
}

# ppc_no_offloads NS DEV: segmentation and checksum offloads off, so frames are on-wire sized with real checksums.
ppc_no_offloads() {
  ppc_in "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null
}

# ppc_ns_add NS: a new namespace with loopback up and quiet IPv6.
ppc_ns_add() {
  ip netns add "$1"
  ppc_in "$1" ip link set lo up
  ppc_quiet_ipv6 "$1"
}

# ppc_teardown: end the processes started here (by pid) and delete the namespaces. Safe to call twice.
ppc_teardown() {
  local pid ns
  ppc_capture_abort
  for pid in "${PPC_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PPC_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PPC_PIDS=()
  for ns in "${PPC_NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
}

# ppc_setup [direct|impaired]: fresh namespaces (stale ones from an earlier run are deleted first).
ppc_setup() {
  local mode=${1:-direct} dev
  ppc_teardown
  ppc_ns_add ppc-client
  ppc_ns_add ppc-server
  if [[ $mode == direct ]]; then
    ip link add ppc-c0 netns ppc-client address "$PPC_CLIENT_MAC" type veth \
      peer name ppc-s0 netns ppc-server address "$PPC_SERVER_MAC"
  elif [[ $mode == impaired ]]; then
    ppc_ns_add ppc-link
    ppc_in ppc-link sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ppc_in ppc-link sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip link add ppc-c0 netns ppc-client address "$PPC_CLIENT_MAC" type veth peer name ppc-lc netns ppc-link
    ip link add ppc-s0 netns ppc-server address "$PPC_SERVER_MAC" type veth peer name ppc-ls netns ppc-link
    for dev in ppc-lc ppc-ls; do
      ppc_no_offloads ppc-link "$dev"
      ppc_in ppc-link ip link set "$dev" promisc on up
    done
  else
    ppc_log "unknown topology: $mode"
    return 1
  fi
  ppc_no_offloads ppc-client ppc-c0
  ppc_no_offloads ppc-server ppc-s0
  ppc_in ppc-client ip addr add 10.77.0.1/24 dev ppc-c0
  ppc_in ppc-server ip addr add 10.77.0.2/24 dev ppc-s0
  ppc_in ppc-client ip -6 addr add fd77::1/64 dev ppc-c0 nodad
  ppc_in ppc-server ip -6 addr add fd77::2/64 dev ppc-s0 nodad
  ppc_in ppc-client ip link set ppc-c0 up
  ppc_in ppc-server ip link set ppc-s0 up
  # Let link-up chatter (MLD reports for the link-local addresses) pass before any capture starts.
  sleep 2
}

# ppc_wait_listen NS PROTO PORT: wait (no packets sent) until something listens on PORT (PROTO: tcp or udp).
ppc_wait_listen() {
  local ns=$1 proto=$2 port=$3 i flag=-ltnH
  [[ $proto == udp ]] && flag=-lunH
  for ((i = 0; i < 100; i++)); do
    if [[ -n $(ppc_in "$ns" ss "$flag" "sport = :$port") ]]; then
      return 0
    fi
    sleep 0.05
  done
  ppc_log "nothing listens on $proto/$port in $ns"
  return 1
}

# ppc_capture_start FILE [TCPDUMP-ARGS...]: tcpdump on the server's veth into FILE; returns once it listens.
ppc_capture_start() {
  local file=$1 i
  shift
  PPC_TCPDUMP_FILE=$file
  PPC_TCPDUMP_ERR=$(mktemp)
  ip netns exec ppc-server tcpdump -i ppc-s0 -U --immediate-mode -Z root -B "${PPC_TCPDUMP_BUFFER_KIB:-16384}" "$@" -w "$file" 2>"$PPC_TCPDUMP_ERR" &
  PPC_TCPDUMP_PID=$!
  for ((i = 0; i < 200; i++)); do
    if grep -q 'listening on' "$PPC_TCPDUMP_ERR"; then
      return 0
    fi
    sleep 0.05
  done
  ppc_log "tcpdump did not start: $(cat "$PPC_TCPDUMP_ERR")"
  return 1
}

# ppc_capture_stop: short pause so the last FIN/ACKs are in, then wait until tcpdump has written all it holds
# (its file stops growing: frames still in the kernel ring at SIGINT are lost without being counted as dropped),
# then SIGINT; fails if the kernel dropped packets.
ppc_capture_stop() {
  local summary size=-1
  sleep 0.5
  while [[ $(stat -c %s "$PPC_TCPDUMP_FILE") != "$size" ]]; do
    size=$(stat -c %s "$PPC_TCPDUMP_FILE")
    sleep 0.5
  done
  kill -INT "$PPC_TCPDUMP_PID"
  wait "$PPC_TCPDUMP_PID" || true
  PPC_TCPDUMP_PID=""
  summary=$(grep -E 'captured|dropped' "$PPC_TCPDUMP_ERR" | tr '\n' ' ')
  rm -f "$PPC_TCPDUMP_ERR"
  ppc_log "tcpdump: $summary"
  if [[ ! $summary =~ \ 0\ packets\ dropped\ by\ kernel ]]; then
    ppc_log "tcpdump dropped packets"
    return 1
  fi
}

ppc_capture_abort() {
  if [[ -n $PPC_TCPDUMP_PID ]]; then
    kill -INT "$PPC_TCPDUMP_PID" 2>/dev/null || true
    wait "$PPC_TCPDUMP_PID" 2>/dev/null || true
    PPC_TCPDUMP_PID=""
  fi
  if [[ -n $PPC_TCPDUMP_ERR ]]; then
    rm -f "$PPC_TCPDUMP_ERR"
    PPC_TCPDUMP_ERR=""
  fi
}
