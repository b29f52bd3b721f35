#!/usr/bin/env python3
"""Writes scenario scripts into fuzz/corpus/vsock/, in the input layout that
fuzz_vsock.c documents: 2 bytes (queue features, queue sizes), then steps.
Each seed is a well-formed conversation (or a well-formed mistake), so that
the fuzzer starts from packets the device accepts and mutates from there."""
import os
import struct
import sys

CID, HOST = 3, 2
REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
HOST_PORT0 = 0x40000000  # the device's first port for a host CONNECT


def hdr(op, sport, dport, length=0, flags=0, buf_alloc=65536, fwd_cnt=0,
        src_cid=CID, dst_cid=HOST, type_=1):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, sport, dport, length,
                       type_, op, flags, buf_alloc, fwd_cnt)


def tx(op, sport, dport, payload=b"", variant=0, length=None, **kw):
    """payload: its length and first byte are what counts (the harness fills)."""
    n = len(payload) if length is None else length
    fill = payload[0] if payload else 0
    return bytes([0 | variant << 4]) + hdr(op, sport, dport, n, **kw) + \
        struct.pack("<IB", len(payload), fill)


def rx(count, size, split=False):
    return bytes([1 | (16 if split else 0), count]) + struct.pack("<H", size)


def connect(port):
    return bytes([2]) + struct.pack("<I", port)


def host_data(i, data):
    return bytes([3, i]) + struct.pack("<H", len(data)) + data


def close(i, shut=False):
    return bytes([4 | (16 if shut else 0), i])


POLL, RESET, TRESET, DRAIN = bytes([5]), bytes([6]), bytes([7]), bytes([10])


def event(size):
    return bytes([8, size])


def accept(listener):
    return bytes([9 | listener << 4])


def seed(features, sizes, *steps):
    return bytes([features, sizes]) + b"".join(steps)


SEEDS = {
    "guest_to_host": seed(0, 0x44, rx(8, 4096), tx(REQUEST, 1000, 1), accept(0),
                          tx(RW, 1000, 1, b"hello"), DRAIN, host_data(0, b"world"),
                          POLL, tx(SHUTDOWN, 1000, 1, flags=3), POLL, tx(RST, 1000, 1)),
    "host_to_guest": seed(1, 0x55, rx(8, 4096), connect(5000), POLL,
                          tx(RESPONSE, 5000, HOST_PORT0), POLL, host_data(0, b"ping"),
                          POLL, tx(RW, 5000, HOST_PORT0, b"pong"), DRAIN, close(0),
                          POLL, tx(RST, 5000, HOST_PORT0)),
    "host_refused": seed(0, 0x44, rx(4, 4096), connect(6000), POLL,
                         tx(RST, 6000, HOST_PORT0), DRAIN),
    "bad_headers": seed(0, 0x44, rx(16, 4096),
                        tx(REQUEST, 1, 1, src_cid=4), tx(REQUEST, 2, 1, dst_cid=9),
                        tx(REQUEST, 3, 1, type_=2), tx(99, 4, 1), tx(0, 5, 1),
                        tx(RW, 6, 1, b"abc"), tx(CREDIT_UPDATE, 7, 1),
                        tx(REQUEST, 8, 77)),
    "len_mismatch": seed(0, 0x44, rx(4, 4096), tx(RW, 1, 1, b"abc", length=10)),
    "oversized": seed(0, 0x44, rx(4, 4096), tx(REQUEST, 17, 1), accept(0),
                      tx(RW, 17, 1, b"o" * 65537)),
    "framing": seed(2, 0x44, rx(4, 4096, split=True), tx(REQUEST, 9, 1, variant=1),
                    accept(0), tx(RW, 9, 1, b"x" * 100, variant=8),
                    tx(RW, 9, 1, b"y" * 10, variant=2), tx(RW, 9, 1, b"", variant=4)),
    "credit": seed(0, 0x48, rx(16, 256), tx(REQUEST, 11, 2, buf_alloc=100),
                   accept(1), host_data(0, b"z" * 1000), POLL,
                   tx(CREDIT_UPDATE, 11, 2, buf_alloc=100, fwd_cnt=100), POLL,
                   tx(CREDIT_REQUEST, 11, 2), tx(RW, 11, 2, b"q" * 3000), DRAIN, POLL),
    "host_stalls": seed(0, 0x44, rx(8, 4096), tx(REQUEST, 12, 1), accept(0),
                        *[tx(RW, 12, 1, b"w" * 30000) for _ in range(8)], DRAIN, POLL),
    "shutdowns": seed(0, 0x44, rx(8, 4096), tx(REQUEST, 13, 1), accept(0),
                      tx(SHUTDOWN, 13, 1, flags=2), host_data(0, b"late"), close(0, True),
                      POLL, close(0), POLL, tx(SHUTDOWN, 13, 1, flags=1),
                      tx(RST, 13, 1)),
    "resets": seed(0, 0x44, event(4), rx(4, 4096), tx(REQUEST, 14, 1), accept(0),
                   connect(5001), POLL, TRESET, event(2), RESET, rx(4, 4096),
                   tx(REQUEST, 15, 1), accept(0), TRESET),
    "table_full": seed(0, 0x55, rx(31, 128),
                       *[tx(REQUEST, 100 + i, 1 + (i & 1)) for i in range(10)],
                       *[connect(7000 + i) for i in range(3)], POLL,
                       *[accept(i & 1) for i in range(10)], DRAIN),
    "tiny_rx": seed(0, 0x44, rx(2, 44), tx(REQUEST, 16, 1)),
    "host_gives_up": seed(0, 0x44, connect(5002), POLL, close(0), POLL, rx(4, 4096),
                          connect(5003), POLL, tx(REQUEST, 18, 1), tx(RESPONSE, 18, 1)),
    "host_lines": seed(0, 0x44, rx(4, 4096), accept(0), host_data(0, b"x"), close(0),
                       connect(5004), host_data(0, b"CONNECT 9\r\nhi"), POLL,
                       tx(RESPONSE, 5004, HOST_PORT0), POLL, DRAIN),
    "queued_for_rx": seed(0, 0x44, *[tx(REQUEST, 20 + i, 1) for i in range(5)],
                          connect(5005), connect(5006), POLL, *[accept(0) for _ in range(5)],
                          rx(3, 4096), POLL, rx(8, 4096), DRAIN),
    "stray_ops": seed(0, 0x44, rx(8, 4096), tx(REQUEST, 30, 1), accept(0),
                      tx(REQUEST, 30, 1), tx(RW, 30, 1, b"after"), tx(RESPONSE, 31, 1),
                      tx(SHUTDOWN, 32, 1, flags=3)),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "vsock")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
