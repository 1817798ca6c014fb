#!/usr/bin/env bash
# Makes captures/large.pcap (gitignored, for benchmarks): one long HTTP GET with a small MSS, so many frames.
#
#   captures/make-large.sh [OUT]     OUT defaults to captures/large.pcap
#
# Environment: LARGE_MIB (default 48) is the size of the file fetched; LARGE_MSS (default 200) is the MSS the
# client advertises (route advmss), so the server's segments carry LARGE_MSS-12 payload bytes (TCP timestamps).
# The defaults give about 270k frames (~72 MB): 268k data segments of 188 bytes, plus the client's ACKs (the
# kernel acks in long stretches at this rate: a few thousand at most, varying from run to run). The script fails
# below 200000 frames (LARGE_MIN_FRAMES) or if tcpdump dropped any.
# Same namespaces and addresses as record.sh (captures/lib.sh); every packet stays inside them.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=captures/lib.sh
source "$HERE/lib.sh"

OUT=${1:-$HERE/large.pcap}
MIB=${LARGE_MIB:-48}
MSS=${LARGE_MSS:-200}
MIN_FRAMES=${LARGE_MIN_FRAMES:-200000}
WORK=$(mktemp -d)

cleanup() {
  ppc_teardown
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $EUID -ne 0 ]]; then
  ppc_log "run as root (namespaces, tcpdump)"
  exit 1
fi

mkdir -p "$WORK/www"
python3 - "$WORK/www/large.txt" "$MIB" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
block = "".join(f"large line {i:06d}: the quick brown fox jumps over the lazy dog\n" for i in range(16384)).encode()
with open(path, "wb") as f:
    remaining = mib * 1024 * 1024
    while remaining > 0:
        f.write(block[:remaining])
        remaining -= len(block)
PY

ppc_setup direct
ppc_in ppc-client ip route replace 10.77.0.0/24 dev ppc-c0 proto kernel scope link src 10.77.0.1 advmss "$MSS"
ppc_in ppc-server ip route replace 10.77.0.0/24 dev ppc-s0 proto kernel scope link src 10.77.0.2 advmss "$MSS"
ppc_bg ppc-server python3 -m http.server 80 --bind 10.77.0.2 --directory "$WORK/www" >/dev/null 2>&1
ppc_wait_listen ppc-server tcp 80
PPC_TCPDUMP_BUFFER_KIB=262144 ppc_capture_start "$WORK/large.pcap" -s 0
ppc_in ppc-client curl -sS -o /dev/null "http://10.77.0.2/large.txt"
ppc_capture_stop
frames=$(capinfos -c -M "$WORK/large.pcap" | awk -F': *' '/Number of packets/ {print $2}')
if ((frames < MIN_FRAMES)); then
  ppc_log "only $frames frames (want >= $MIN_FRAMES): raise LARGE_MIB or lower LARGE_MSS"
  exit 1
fi
mv "$WORK/large.pcap" "$OUT"
ppc_log "$OUT: $frames frames, $(stat -c %s "$OUT") bytes"
