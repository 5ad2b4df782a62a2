#!/usr/bin/env python3
"""A blocking, single-threaded client as scripts are commonly written: connect, sendall(request),
shutdown(SHUT_WR), then recv() until EOF, on a socket with no timeout. The server answers later.

Usage: blocking_client.py HOST PORT ROUNDS SIZE[,SIZE...]
The reply starts with one line, "request LEN SHA256 reply LEN SHA256", the server's digests of the request it
received and of the reply body that follows. Exits 0 when every round arrived whole at both ends; otherwise
prints one line saying what happened and exits 1.
"""
import hashlib
import random
import socket
import sys
import time


def main():
    host, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sizes = [int(s) for s in sys.argv[4].split(",")]
    for i in range(rounds):
        request = random.Random(i).randbytes(sizes[i % len(sizes)])
        sock = socket.create_connection((host, port))
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        reply = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError as e:
                waited = (time.monotonic() - started) * 1000
                print(f"round {i}: blocking recv() raised {e!r} after {waited:.1f} ms and {len(reply)} bytes "
                      f"of the reply")
                return 1
            if not chunk:
                break
            reply += chunk
        sock.close()
        head, _, body = bytes(reply).partition(b"\n")
        fields = head.decode(errors="replace").split()
        want = ["request", str(len(request)), hashlib.sha256(request).hexdigest(),
                "reply", str(len(body)), hashlib.sha256(body).hexdigest()]
        if fields != want:
            print(f"round {i}: server saw/sent {fields}, client sent/got {want}")
            return 1
    print(f"ok: {rounds} exchanges")
    return 0


if __name__ == "__main__":
    sys.exit(main())
