#!/usr/bin/env python3
"""Echo peers for captures/record.sh.

  echo.py tcp-clients HOST PORT N   N simultaneous TCP connections: all connect, each sends its own bytes in
                                    two writes, each reads its bytes back, then all close
  echo.py udp-server HOST PORT      UDP echo server (every datagram goes back to its sender)
  echo.py udp-client HOST PORT N    N datagrams of distinct sizes from one socket, each answered before the next
"""
import socket
import sys


def payload(tag, size):
    pattern = f"[{tag}] the quick brown fox jumps over the lazy dog 0123456789 ".encode()
    return (pattern * (size // len(pattern) + 1))[:size]


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SystemExit(f"peer closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def tcp_clients(host, port, n):
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
    msgs = [payload(f"conn {i}", 200 + 300 * i) for i in range(n)]
    for s, m in zip(socks, msgs):
        s.sendall(m[: len(m) // 2])
    for s, m in zip(socks, msgs):
        s.sendall(m[len(m) // 2 :])
    for s, m in zip(socks, msgs):
        if recv_exactly(s, len(m)) != m:
            raise SystemExit("echo mismatch")
    for s in socks:
        s.shutdown(socket.SHUT_WR)
    for s in socks:
        s.recv(1)
        s.close()


def udp_server(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def udp_client(host, port, n):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect((host, port))
    for i in range(n):
        m = payload(f"datagram {i}", 16 + 150 * i)
        s.send(m)
        if s.recv(65535) != m:
            raise SystemExit("udp echo mismatch")
    s.close()


def main():
    cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "tcp-clients":
        tcp_clients(host, port, int(sys.argv[4]))
    elif cmd == "udp-server":
        udp_server(host, port)
    elif cmd == "udp-client":
        udp_client(host, port, int(sys.argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
