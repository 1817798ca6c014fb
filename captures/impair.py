#!/usr/bin/env python3
"""Userspace link impairment for captures/record.sh (the kernel here has no sch_netem).

Bridges two interfaces with AF_PACKET raw sockets, frame by frame, in both directions:
  * every frame is held --delay-ms before it is sent on (like `netem delay`);
  * a TCP frame without SYN is dropped with probability --loss;
  * a surviving TCP frame without SYN is held --extra-ms longer with probability --reorder, so the frames
    right behind it overtake it (adjacent swaps and short reorderings).
ARP, ICMPv6 and SYNs are never dropped or reordered, so no connection waits out a 1 s SYN timeout.
Each direction draws from its own random.Random seeded with (--seed, direction), so the same run of frames
gets the same fate. Runs until SIGTERM/SIGINT, then prints what it did to stderr.

Usage: impair.py [--seed N] [--loss P] [--reorder P] [--delay-ms MS] [--extra-ms MS] IF_A IF_B
"""
import argparse
import heapq
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def impairable(frame):
    """True for a TCP segment without SYN (IPv4 without options-parsing surprises, or IPv6 without ext headers)."""
    if len(frame) < 14:
        return False
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0800 and len(frame) >= 34 and frame[23] == 6:
        ihl = (frame[14] & 0x0F) * 4
        flags_at = 14 + ihl + 13
    elif ethertype == 0x86DD and len(frame) >= 54 and frame[20] == 6:
        flags_at = 14 + 40 + 13
    else:
        return False
    return len(frame) > flags_at and not frame[flags_at] & 0x02


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--loss", type=float, default=0.03)
    ap.add_argument("--reorder", type=float, default=0.05)
    ap.add_argument("--delay-ms", type=float, default=10.0)
    ap.add_argument("--extra-ms", type=float, default=2.0)
    ap.add_argument("if_a")
    ap.add_argument("if_b")
    args = ap.parse_args()

    socks = {}
    for name in (args.if_a, args.if_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        socks[name] = s
    other = {args.if_a: args.if_b, args.if_b: args.if_a}
    rngs = {name: random.Random(f"{args.seed}:{name}") for name in socks}
    stats = {name: {"in": 0, "dropped": 0, "held": 0} for name in socks}
    queue = []  # (release time, order, out interface, frame)
    order = 0
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    by_fd = {s.fileno(): name for name, s in socks.items()}
    while running:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            socks[out].send(frame)
        timeout = max(0.0, queue[0][0] - now) if queue else 0.2
        try:
            ready, _, _ = select.select(list(by_fd), [], [], timeout)
        except InterruptedError:
            continue
        for fd in ready:
            name = by_fd[fd]
            while True:
                try:
                    frame, addr = socks[name].recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                st, rng = stats[name], rngs[name]
                st["in"] += 1
                delay = args.delay_ms
                if impairable(frame):
                    # Two draws per impairable frame, always, so one fate does not shift the next ones.
                    lose, hold = rng.random() < args.loss, rng.random() < args.reorder
                    if lose:
                        st["dropped"] += 1
                        continue
                    if hold:
                        st["held"] += 1
                        delay += args.extra_ms
                order += 1
                heapq.heappush(queue, (time.monotonic() + delay / 1000.0, order, other[name], frame))
    for name, st in stats.items():
        print(f"impair: from {name}: {st['in']} frames in, {st['dropped']} dropped, {st['held']} held back",
              file=sys.stderr)


if __name__ == "__main__":
    main()
