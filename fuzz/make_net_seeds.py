#!/usr/bin/env python3
"""Writes valid inputs for fuzz_net.c into fuzz/corpus/net/, in the layout that
fuzz_net.c documents: an 8-byte header, then guest RAM from gpa 0 with the
transmit rings at 0, the receive rings at 0x2000 and buffers from 0x4000."""
import os
import struct
import sys

F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
MRG, VNET, CSUM, HOST_TSO4, GUEST_CSUM, EVENT_IDX, INDIRECT, GUEST_TSO4 = (1 << i for i in range(8))
HDR = 12
TX, RX = 0, 0x2000


def layout(base, size):
    avail = base
    used = (avail + 6 + 2 * size + 3) & ~3
    desc = (used + 6 + 8 * size + 15) & ~15
    return avail, used, desc


class Seed:
    def __init__(self, features, log2tx=4, log2rx=4, frames=0, frame_len=1000, rx_hdr=(0, 0),
                 rounds=1):
        self.header = bytes([features, log2tx | log2rx << 4, frames]) + \
            struct.pack("<H", frame_len) + bytes([rx_hdr[0], rx_hdr[1], rounds - 1])
        self.ram = bytearray(0x4000)
        self.q = {TX: [1 << log2tx, 0, 0], RX: [1 << log2rx, 0, 0]}  # size, next desc, avail idx
        self.buf = 0x4000

    def put(self, gpa, fmt, *v):
        data = struct.pack(fmt, *v)
        if gpa + len(data) > len(self.ram):
            self.ram.extend(bytes(gpa + len(data) - len(self.ram)))
        self.ram[gpa:gpa + len(data)] = data

    def alloc(self, data):
        at = self.buf
        self.put(at, f"{len(data)}s", data)
        self.buf += (len(data) + 15) & ~15
        return at

    def chain(self, base, bufs):
        """bufs: list of (addr, len, writable); returns the head."""
        size, nxt, idx = self.q[base]
        avail, _, desc = layout(base, size)
        head = nxt
        for i, (addr, length, w) in enumerate(bufs):
            d = (head + i) % size
            flags = (F_NEXT if i + 1 < len(bufs) else 0) | (F_WRITE if w else 0)
            self.put(desc + 16 * d, "<QIHH", addr, length, flags, (d + 1) % size)
        self.put(avail + 4 + 2 * (idx % size), "<H", head)
        self.put(avail + 2, "<H", idx + 1)
        self.q[base] = [size, (head + len(bufs)) % size, idx + 1]
        return head

    def indirect_chain(self, base, bufs):
        table = self.buf
        self.buf += 16 * len(bufs)
        for i, (addr, length, w) in enumerate(bufs):
            flags = (F_NEXT if i + 1 < len(bufs) else 0) | (F_WRITE if w else 0)
            self.put(table + 16 * i, "<QIHH", addr, length, flags, i + 1)
        size, nxt, idx = self.q[base]
        avail, _, desc = layout(base, size)
        self.put(desc + 16 * nxt, "<QIHH", table, 16 * len(bufs), F_INDIRECT, 0)
        self.put(avail + 4 + 2 * (idx % size), "<H", nxt)
        self.put(avail + 2, "<H", idx + 1)
        self.q[base] = [size, (nxt + 1) % size, idx + 1]

    def tx(self, frame_len, pieces=1, hdr=bytes(HDR)):
        data = hdr + bytes((i * 7) & 0xff for i in range(frame_len))
        at = self.alloc(data)
        cut = [len(data) * k // pieces for k in range(pieces + 1)]
        self.chain(TX, [(at + cut[k], cut[k + 1] - cut[k], False) for k in range(pieces)])

    def rx(self, count, length):
        for _ in range(count):
            self.chain(RX, [(self.alloc(bytes(length)), length, True)])

    def bytes(self):
        return self.header + bytes(self.ram)


def seeds():
    s = Seed(MRG, frames=3, frame_len=1000)
    s.tx(60)
    s.tx(1500, pieces=3)
    s.rx(4, 2048)
    yield "mrg_simple", s

    s = Seed(0, frames=2, frame_len=1514)
    s.tx(1514, pieces=2)
    s.rx(2, HDR + 1514)
    yield "single_buffers", s

    s = Seed(MRG, frames=1, frame_len=5000)
    s.rx(6, 1000)
    yield "merged_5000", s

    csum = struct.pack("<BBHHHHH", 1, 0, 0, 0, 34, 16, 0)
    s = Seed(MRG | VNET | CSUM | GUEST_CSUM, frames=2, frame_len=200, rx_hdr=(2, 0))
    s.tx(100, hdr=csum)
    s.rx(2, 2048)
    yield "vnet_csum", s

    tso = struct.pack("<BBHHHHH", 1, 1, 54, 1448, 34, 16, 0)
    s = Seed(MRG | VNET | CSUM | HOST_TSO4 | GUEST_CSUM | GUEST_TSO4, log2tx=5,
             frames=1, frame_len=20000, rx_hdr=(1, 1))
    s.tx(20000, pieces=5, hdr=tso)
    s.rx(12, 2048)
    yield "vnet_tso", s

    s = Seed(MRG | INDIRECT | EVENT_IDX, frames=1, frame_len=300)
    data = bytes(HDR) + bytes(range(200))
    at = s.alloc(data)
    s.indirect_chain(TX, [(at, HDR, False), (at + HDR, 200, False)])
    s.rx(1, 2048)
    yield "indirect_event_idx", s

    s = Seed(MRG, frames=4, frame_len=60)
    s.tx(70000 - HDR, pieces=2)
    at = s.alloc(bytes(100))
    s.chain(TX, [(at, 50, False), (at + 50, 50, True)])
    yield "oversized_then_writable", s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "net")
    os.makedirs(out, exist_ok=True)
    for name, seed in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(seed.bytes())


if __name__ == "__main__":
    main()
