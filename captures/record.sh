#!/usr/bin/env bash
# Records the captures in this folder from the Linux kernel's own TCP/IP stack.
#
#   captures/record.sh            record all of them
#   captures/record.sh NAME...    record only these (names: see CAPTURES below, e.g. demo lossy)
#
# Needs root and: tcpdump iproute2 ethtool socat curl python3 tshark (editcap). Every packet stays inside the
# network namespaces that captures/lib.sh creates and deletes again (ppc-client, ppc-server, ppc-link).
# Output: captures/NAME.pcap or captures/NAME.pcapng (PPC_OUT=DIR writes elsewhere).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=captures/lib.sh
source "$HERE/lib.sh"

OUT=${PPC_OUT:-$HERE}
CAPTURES=(demo http-get http-post parallel refused udp-echo ipv6-tcp bulk lossy truncated upload iperf3)
SERVER=10.77.0.2
WORK=$(mktemp -d)

cleanup() {
  ppc_teardown
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Content served over HTTP: deterministic, readable text.
make_content() {
  local www=$WORK/www
  mkdir -p "$www"
  printf 'Hello from the Linux TCP/IP stack.\nThis file came through pktpath.\n' >"$www/hello.txt"
  python3 - "$WORK" <<'EOF'
import sys
work = sys.argv[1]
www = f"{work}/www"
def lines(n, tag):
    return "".join(f"{tag} line {i:06d}: the quick brown fox jumps over the lazy dog\n" for i in range(n)).encode()
def sized(size, tag):
    data = lines(size // 40 + 1, tag)
    return data[:size]
open(f"{www}/page.txt", "wb").write(sized(3000, "page"))
open(f"{www}/lossy-48k.txt", "wb").write(sized(48 * 1024, "lossy"))
open(f"{www}/bulk-1m.txt", "wb").write(sized(1024 * 1024, "bulk"))
open(f"{work}/post-6k.txt", "wb").write(sized(6000, "post"))
open(f"{work}/post-96k.txt", "wb").write(sized(96 * 1024, "upload"))
open(f"{work}/post-1m.txt", "wb").write(sized(1024 * 1024, "upload"))
EOF
}

http_server() { # http_server BIND PORT: python3 -m http.server over $WORK/www, in ppc-server
  ppc_bg ppc-server python3 -m http.server "$2" --bind "$1" --directory "$WORK/www" >/dev/null 2>&1
  ppc_wait_listen ppc-server tcp "$2"
}

post_server() { # post_server BIND PORT: captures/post_server.py, in ppc-server
  ppc_bg ppc-server python3 "$HERE/post_server.py" "$1" "$2"
  ppc_wait_listen ppc-server tcp "$2"
}

client() { ppc_in ppc-client "$@"; }

# finish NAME FORMAT: move the raw tcpdump file into $OUT as NAME.pcap, or convert it to NAME.pcapng.
finish() {
  local name=$1 format=$2 raw=$WORK/$1.raw.pcap
  rm -f "$OUT/$name.pcap" "$OUT/$name.pcapng"
  if [[ $format == pcapng ]]; then
    editcap -F pcapng "$raw" "$OUT/$name.pcapng"
  else
    cp "$raw" "$OUT/$name.pcap"
  fi
  ppc_teardown
  ppc_log "$name: $(capinfos -c -M "$OUT/$name.$format" | awk -F': *' '/Number of packets/ {print $2}') frames"
}

rec_demo() {
  ppc_setup direct
  http_server "$SERVER" 80
  ppc_capture_start "$WORK/demo.raw.pcap" -s 0 --time-stamp-precision=nano
  client curl -sS -o /dev/null "http://$SERVER/hello.txt"
  ppc_capture_stop
  finish demo pcapng
}

rec_http_get() {
  ppc_setup direct
  http_server "$SERVER" 80
  ppc_capture_start "$WORK/http-get.raw.pcap" -s 0
  client curl -sS -o /dev/null "http://$SERVER/page.txt"
  ppc_capture_stop
  finish http-get pcap
}

rec_http_post() {
  ppc_setup direct
  post_server "$SERVER" 8000
  ppc_capture_start "$WORK/http-post.raw.pcap" -s 0 --time-stamp-precision=nano
  client curl -sS -o /dev/null -H 'Expect:' -H 'Content-Type: text/plain' \
    --data-binary "@$WORK/post-6k.txt" "http://$SERVER:8000/upload"
  ppc_capture_stop
  finish http-post pcapng
}

rec_parallel() {
  ppc_setup direct
  ppc_bg ppc-server socat "TCP-LISTEN:7,bind=$SERVER,fork,reuseaddr" EXEC:cat
  ppc_wait_listen ppc-server tcp 7
  ppc_capture_start "$WORK/parallel.raw.pcap" -s 0 --time-stamp-precision=nano
  client python3 "$HERE/echo.py" tcp-clients "$SERVER" 7 5
  ppc_capture_stop
  finish parallel pcap
}

rec_refused() {
  ppc_setup direct
  ppc_capture_start "$WORK/refused.raw.pcap" -s 0
  if client curl -sS --max-time 5 -o /dev/null "http://$SERVER:81/" 2>/dev/null; then
    ppc_log "refused: the connection was accepted"
    return 1
  fi
  ppc_capture_stop
  finish refused pcap
}

rec_udp_echo() {
  ppc_setup direct
  ppc_bg ppc-server python3 "$HERE/echo.py" udp-server "$SERVER" 7
  ppc_wait_listen ppc-server udp 7
  ppc_capture_start "$WORK/udp-echo.raw.pcap" -s 0
  client python3 "$HERE/echo.py" udp-client "$SERVER" 7 6
  ppc_capture_stop
  finish udp-echo pcap
}

rec_ipv6_tcp() {
  ppc_setup direct
  http_server fd77::2 8080
  ppc_capture_start "$WORK/ipv6-tcp.raw.pcap" -s 0 --time-stamp-precision=nano
  client curl -sS -g -o /dev/null "http://[fd77::2]:8080/page.txt"
  ppc_capture_stop
  finish ipv6-tcp pcapng
}

rec_bulk() {
  ppc_setup direct
  http_server "$SERVER" 80
  ppc_capture_start "$WORK/bulk.raw.pcap" -s 0
  client curl -sS -o /dev/null "http://$SERVER/bulk-1m.txt"
  ppc_capture_stop
  finish bulk pcap
}

rec_upload() {
  ppc_setup direct
  post_server "$SERVER" 8000
  ppc_capture_start "$WORK/upload.raw.pcap" -s 0
  client curl -sS -o /dev/null -H 'Expect:' -H 'Content-Type: text/plain' \
    --data-binary "@$WORK/post-1m.txt" "http://$SERVER:8000/upload"
  ppc_capture_stop
  finish upload pcap
}

rec_iperf3() {
  ppc_setup direct
  ppc_bg ppc-server iperf3 -s -B "$SERVER" -1
  ppc_wait_listen ppc-server tcp 5201
  ppc_capture_start "$WORK/iperf3.raw.pcap" -s 0
  client iperf3 -c "$SERVER" -n 256K >/dev/null
  ppc_capture_stop
  finish iperf3 pcap
}

rec_lossy() {
  ppc_setup impaired
  ppc_bg ppc-link python3 "$HERE/impair.py" --seed 7 --loss 0.05 --reorder 0.15 --delay-ms 10 --extra-ms 3 \
    ppc-lc ppc-ls
  http_server "$SERVER" 80
  post_server "$SERVER" 8000
  sleep 0.5 # impair.py binds its sockets
  ppc_capture_start "$WORK/lossy.raw.pcap" -s 0 --time-stamp-precision=nano
  client curl -sS -o /dev/null -H 'Expect:' -H 'Content-Type: text/plain' \
    --data-binary "@$WORK/post-96k.txt" "http://$SERVER:8000/upload"
  client curl -sS -o /dev/null "http://$SERVER/lossy-48k.txt"
  ppc_capture_stop
  finish lossy pcap
}

rec_truncated() {
  ppc_setup direct
  http_server "$SERVER" 80
  ppc_capture_start "$WORK/truncated.raw.pcap" -s 96
  client curl -sS -o /dev/null "http://$SERVER/page.txt"
  ppc_capture_stop
  finish truncated pcap
}

main() {
  local name
  if [[ $EUID -ne 0 ]]; then
    ppc_log "run as root (namespaces, tcpdump)"
    exit 1
  fi
  (($# > 0)) || set -- "${CAPTURES[@]}"
  for name in "$@"; do
    if [[ ! " ${CAPTURES[*]} " == *" $name "* ]]; then
      ppc_log "unknown capture: $name (known: ${CAPTURES[*]})"
      exit 1
    fi
  done
  mkdir -p "$OUT"
  make_content
  for name in "$@"; do
    ppc_log "recording $name"
    "rec_${name//-/_}"
  done
}

main "$@"
