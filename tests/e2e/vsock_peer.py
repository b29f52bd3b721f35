#!/usr/bin/env python3
"""The host's end of tests/e2e/test_vsock.py, started in the background of the
nested host next to `tabique run --vsock cid=N,socket=SOCKET`:

    vsock_peer.py SOCKET GUEST_PORT HOST_PORT [SECONDS]

does these at once and logs each step as one "peer: ..." line:

  guest -> host  listens on SOCKET_HOST_PORT, accepts one stream, reads it to
                 the end, answers "host got: <what it read>" and closes;
  host -> guest  connects to SOCKET, writes "CONNECT GUEST_PORT\\n" and waits
                 for "OK <port>\\n", retrying while the guest does not listen
                 yet (the device then closes the socket); sends a line, reads
                 its echo, and closes its sending side; then the same with
                 BULK bytes to GUEST_PORT + 1, reading the echo meanwhile;
  bulk           listens on SOCKET_<HOST_PORT + 1>, reads a stream to the end
                 and answers "got N bytes sha256 HEX".

Standard library only: it runs on the outer machine's python3 inside the
nested host.
"""

import hashlib
import os
import socket
import sys
import threading
import time

MESSAGE = b"hello-from-host\n"
BULK = bytes(range(256)) * 4096  # 1 MiB; its sha256 is what the guest must print


def log(text):
    print(f"peer: {text}", flush=True)


def read_line(sock):
    """Bytes up to and including the first newline (or EOF), one at a time:
    nothing past the protocol line is taken."""
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def accept_one(path, port, deadline):
    lpath = f"{path}_{port}"
    if os.path.exists(lpath):
        os.unlink(lpath)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(lpath)
    srv.listen(1)
    srv.settimeout(max(1.0, deadline - time.monotonic()))
    log(f"listening on {lpath}")
    conn, _ = srv.accept()
    srv.close()
    os.unlink(lpath)
    conn.settimeout(120)
    return conn


def guest_to_host(path, port, deadline):
    conn = accept_one(path, port, deadline)
    data = read_all(conn)
    log(f"guest->host received {data!r}")
    conn.sendall(b"host got: " + data)
    conn.close()


def bulk_sink(path, port, deadline):
    conn = accept_one(path, port, deadline)
    data = read_all(conn)
    digest = hashlib.sha256(data).hexdigest()
    log(f"bulk received {len(data)} bytes sha256 {digest}")
    conn.sendall(f"got {len(data)} bytes sha256 {digest}\n".encode())
    conn.close()


def try_connect(path, port):
    """One attempt; returns the connected socket after OK, or None."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    try:
        sock.connect(path)
        sock.sendall(f"CONNECT {port}\n".encode())
        line = read_line(sock)
    except OSError:
        sock.close()
        return None
    if not line.startswith(b"OK "):
        sock.close()
        return None
    log(f"host->guest answer {line!r}")
    return sock


def connect_retrying(path, port, deadline):
    """Retries while the guest does not listen yet; None at the deadline."""
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        sock = try_connect(path, port)
        if sock is not None:
            log(f"host->guest port {port} connected after {attempts} attempts")
            return sock
        time.sleep(0.5)
    log(f"host->guest port {port} gave up after {attempts} attempts")
    return None


def host_to_guest(path, port, deadline):
    sock = connect_retrying(path, port, deadline)
    if sock is None:
        return
    sock.sendall(MESSAGE)
    log(f"host->guest echo {read_exactly(sock, len(MESSAGE))!r}")
    sock.shutdown(socket.SHUT_WR)
    log(f"host->guest end {sock.recv(4096)!r}")
    sock.close()
    host_to_guest_bulk(path, port + 1, deadline)


def host_to_guest_bulk(path, port, deadline):
    """BULK to the guest while its echo comes back: both ways at once, or
    each side would stop on a full buffer."""
    sock = connect_retrying(path, port, deadline)
    if sock is None:
        return
    echo = []
    reader = threading.Thread(target=lambda: echo.append(read_all(sock)))
    reader.start()
    sock.sendall(BULK)
    sock.shutdown(socket.SHUT_WR)
    reader.join()
    back = echo[0] if echo else b""
    log(f"bulk echo {len(back)} bytes, {'intact' if back == BULK else 'CORRUPT'}")
    sock.close()


def run(job, *args):
    try:
        job(*args)
    except Exception as e:  # reported, never silent: the test reads this log
        log(f"{job.__name__} failed: {e!r}")


def main():
    path, gport, hport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 600)
    jobs = [threading.Thread(target=run, args=(guest_to_host, path, hport, deadline)),
            threading.Thread(target=run, args=(bulk_sink, path, hport + 1, deadline)),
            threading.Thread(target=run, args=(host_to_guest, path, gport, deadline))]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    log("done")


if __name__ == "__main__":
    main()
