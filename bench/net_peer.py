#!/usr/bin/python3
"""The nested host's end of bench/net.py: on each ADDR, port PORT swallows
what a guest sends until it half-closes, then closes; port PORT+1 sends
BYTES to whoever connects, then closes.

usage: net_peer.py PORT BYTES ADDR...
"""

import socket
import sys
import threading

CHUNK = 1 << 20


def sink(conn):
    with conn:
        while conn.recv(CHUNK):
            pass


def source(conn, size):
    data = bytes(CHUNK)
    with conn:
        left = size
        while left > 0:
            n = conn.send(data[:min(left, CHUNK)])
            left -= n
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(CHUNK):
            pass


def serve(addr, port, handler, *args):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handler, args=(conn, *args), daemon=True).start()


def main():
    port, size, addrs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    threads = []
    for addr in addrs:
        threads.append(threading.Thread(target=serve, args=(addr, port, sink), daemon=True))
        threads.append(threading.Thread(target=serve, args=(addr, port + 1, source, size),
                                        daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
