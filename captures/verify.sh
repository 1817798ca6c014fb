#!/usr/bin/env bash
# Checks captures with tshark and prints one line each: frames, checksum verdicts, TCP analysis counts.
#
#   captures/verify.sh              every *.pcap / *.pcapng in this folder except large.pcap
#   captures/verify.sh FILE...      these files
#
# A capture fails when any IPv4/TCP/UDP checksum is bad (the replayer hands frames to smoltcp, which checks them).
# Truncated frames cannot be checked: their checksums show as unverified, not bad.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# == 0)); then
  shopt -s nullglob
  set --
  for f in "$HERE"/*.pcap "$HERE"/*.pcapng; do
    [[ $(basename "$f") == large.pcap ]] || set -- "$@" "$f"
  done
fi

count() { # count FILE FILTER
  tshark -n -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE -o ip.check_checksum:TRUE \
    -o tcp.analyze_sequence_numbers:TRUE -r "$1" -Y "$2" 2>/dev/null | wc -l
}

status=0
printf '%-18s %-7s %7s %9s %6s %6s %6s %7s %5s %9s\n' file format frames bytes tcp udp bad-ck unverif retx ooo
for f in "$@"; do
  info=$(capinfos -t -M "$f")
  if [[ $info == *pcapng* ]]; then
    format=pcapng
  elif [[ $info == *nsecpcap* ]]; then
    format="pcap ns"
  else
    format="pcap µs"
  fi
  frames=$(count "$f" "frame")
  tcp=$(count "$f" "tcp")
  udp=$(count "$f" "udp")
  bad=$(count "$f" "tcp.checksum.status == 0 || udp.checksum.status == 0 || ip.checksum.status == 0")
  unverified=$(count "$f" "tcp.checksum.status == 2 || udp.checksum.status == 2")
  retx=$(count "$f" "tcp.analysis.retransmission")
  ooo=$(count "$f" "tcp.analysis.out_of_order")
  printf '%-18s %-7s %7s %9s %6s %6s %6s %7s %5s %9s\n' "$(basename "$f")" "$format" "$frames" \
    "$(stat -c %s "$f")" "$tcp" "$udp" "$bad" "$unverified" "$retx" "$ooo"
  ((bad == 0)) || status=1
done
exit "$status"
