#!/usr/bin/env python3
"""Writes valid ring images into fuzz/corpus/queue/, in the input layout that
fuzz_queue.c documents: an 8-byte header, then guest RAM from gpa 0 (available
ring, used ring, descriptor table, each at its next aligned address)."""
import os
import struct
import sys

F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
EVENT_IDX, INDIRECT, NO_KICKS, REVERSE, SAVE = 1, 2, 4, 8, 16
BUF = 0x2000  # buffers and indirect tables live here, past the rings


def layout(size):
    avail = 0
    used = (avail + 6 + 2 * size + 3) & ~3
    desc = (used + 6 + 8 * size + 15) & ~15
    return avail, used, desc


class Image:
    def __init__(self, log2size, flags, start=0, max_iov=16, pops=8):
        self.size = 1 << log2size
        self.header = bytes([log2size, flags]) + struct.pack("<H", start) + bytes([max_iov, pops, 3, 40])
        self.ram = bytearray()
        self.avail, self.used, self.desc = layout(self.size)
        self.idx = start

    def put(self, gpa, fmt, *v):
        data = struct.pack(fmt, *v)
        end = gpa + len(data)
        if end > len(self.ram):
            self.ram.extend(bytes(end - len(self.ram)))
        self.ram[gpa:end] = data

    def d(self, i, addr, length, flags=0, nxt=0, table=None):
        base = self.desc if table is None else table
        self.put(base + 16 * i, "<QIHH", addr, length, flags, nxt)

    def publish(self, head):
        self.put(self.avail + 4 + 2 * (self.idx % self.size), "<H", head)
        self.idx = (self.idx + 1) & 0xFFFF
        self.put(self.avail + 2, "<H", self.idx)

    def used_event(self, v):
        self.put(self.avail + 4 + 2 * self.size, "<H", v)

    def bytes(self):
        return self.header + bytes(self.ram)


def seeds():
    s = Image(4, 0)
    s.d(0, BUF, 64)
    s.publish(0)
    yield "simple", s

    s = Image(4, REVERSE)
    s.d(0, BUF, 16, F_NEXT, 3)
    s.d(3, BUF + 0x100, 100, F_NEXT, 7)
    s.d(7, BUF + 0x200, 1, F_WRITE | F_NEXT, 2)
    s.d(2, BUF + 0x300, 512, F_WRITE)
    s.d(5, BUF + 0x400, 8)
    s.publish(0)
    s.publish(5)
    yield "mixed", s

    s = Image(3, INDIRECT | SAVE)
    table = BUF + 0x800
    s.d(0, BUF, 16, F_NEXT, 2, table=table)
    s.d(2, BUF + 0x100, 32, F_NEXT | F_WRITE, 1, table=table)
    s.d(1, BUF + 0x200, 1, F_WRITE, table=table)
    s.d(4, table, 48, F_INDIRECT)
    s.d(6, BUF + 0x300, 8, F_NEXT, 1)
    s.d(1, table + 0x100, 16, F_INDIRECT)
    s.d(0, BUF + 0x400, 4, F_WRITE, table=table + 0x100)
    s.publish(4)
    s.publish(6)
    yield "indirect", s

    s = Image(2, EVENT_IDX | NO_KICKS, start=65534, pops=6)
    s.used_event(0)
    for i in range(4):
        s.d(i, BUF + 0x100 * i, 64, F_WRITE)
        s.publish(i)
    yield "event_idx_wrap", s

    s = Image(8, EVENT_IDX | INDIRECT, max_iov=2, pops=4)
    s.d(0, BUF, 8, F_NEXT, 1)
    s.d(1, BUF + 8, 8, F_NEXT, 2)
    s.d(2, BUF + 16, 8, F_WRITE)
    s.d(9, BUF + 0x100, 0, F_NEXT, 10)
    s.d(10, 0x100000000, 4096)
    s.publish(0)
    s.publish(9)
    yield "enobufs_zero_len_high_ram", s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "queue")
    os.makedirs(out, exist_ok=True)
    for name, image in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(image.bytes())


if __name__ == "__main__":
    main()
