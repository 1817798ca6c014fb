#!/usr/bin/env python3
"""Tiny HTTP server for captures/record.sh: answers POST with what it received, GET with a short text.

Usage: post_server.py ADDRESS PORT
"""
import hashlib
import http.server
import socket
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "ppc-post/1"
    sys_version = ""

    def _answer(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        remaining, digest = length, hashlib.sha256()
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        got = length - remaining
        self._answer(200, f"received {got} bytes for {self.path}\nsha256 {digest.hexdigest()}\n")

    def do_GET(self):
        self._answer(200, f"POST something to {self.path}\n")

    def log_message(self, fmt, *args):
        pass


class Server(http.server.HTTPServer):
    allow_reuse_address = True


def main():
    address, port = sys.argv[1], int(sys.argv[2])
    Server.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
    Server((address, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
