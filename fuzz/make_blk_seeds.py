#!/usr/bin/env python3
"""Writes valid virtio-blk requests into fuzz/corpus/blk/, in the input layout
that fuzz_blk.c documents: a 2-byte header (flags, log2 queue size - 1), then
guest RAM from gpa 0 (available ring, used ring, descriptor table, then the
requests' buffers)."""
import os
import struct
import sys

F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
RO, FLUSH, DISCARD, WZ, INDIRECT, EVENT_IDX, RESET, SAVE = (1 << i for i in range(8))
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13
BUF = 0x1000


class Image:
    def __init__(self, flags, log2size=3):
        self.size = 1 << log2size
        self.header = bytes([flags, log2size - 1])
        self.used = (6 + 2 * self.size + 3) & ~3
        self.desc = (self.used + 6 + 8 * self.size + 15) & ~15
        self.ram = bytearray()
        self.idx = 0
        self.next_desc = 0
        self.next_buf = BUF

    def put(self, gpa, fmt, *v):
        data = struct.pack(fmt, *v)
        if gpa + len(data) > len(self.ram):
            self.ram.extend(bytes(gpa + len(data) - len(self.ram)))
        self.ram[gpa:gpa + len(data)] = data

    def buf(self, data):
        gpa = self.next_buf
        self.put(gpa, f"{len(data)}s", data)
        self.next_buf += (len(data) + 15) & ~15
        return gpa

    def chain(self, bufs, indirect=False):
        """bufs: (gpa, len, writable); returns the head."""
        if indirect:
            table = self.next_buf
            self.next_buf += 16 * len(bufs)
            for i, (gpa, n, w) in enumerate(bufs):
                flags = (F_NEXT if i + 1 < len(bufs) else 0) | (F_WRITE if w else 0)
                self.put(table + 16 * i, "<QIHH", gpa, n, flags, i + 1)
            head = self.next_desc
            self.put(self.desc + 16 * head, "<QIHH", table, 16 * len(bufs), F_INDIRECT, 0)
            self.next_desc += 1
        else:
            head = self.next_desc
            for i, (gpa, n, w) in enumerate(bufs):
                d = self.next_desc
                self.next_desc += 1
                flags = (F_NEXT if i + 1 < len(bufs) else 0) | (F_WRITE if w else 0)
                self.put(self.desc + 16 * d, "<QIHH", gpa, n, flags, d + 1)
        self.put(4 + 2 * (self.idx % self.size), "<H", head)
        self.idx += 1
        self.put(2, "<H", self.idx)
        return head

    def request(self, rtype, sector, data=b"", writable_len=0, indirect=False):
        hdr = self.buf(struct.pack("<IIQ", rtype, 0, sector))
        bufs = [(hdr, 16, False)]
        if data:
            bufs.append((self.buf(data), len(data), False))
        if writable_len:
            bufs.append((self.buf(bytes(writable_len)), writable_len, True))
        bufs.append((self.buf(b"\xee"), 1, True))
        return self.chain(bufs, indirect)

    def bytes(self):
        self.put(self.desc + 16 * self.size, "<B", 0)  # the table is all there
        return self.header + bytes(self.ram)


def seeds():
    rw = FLUSH | DISCARD | WZ
    img = Image(rw)
    img.request(T_IN, 0, writable_len=512)
    yield "read", img
    img = Image(rw)
    img.request(T_OUT, 3, data=b"\x5a" * 1024)
    img.request(T_IN, 3, writable_len=1024)
    yield "write-read", img
    img = Image(rw)
    img.request(T_FLUSH, 0)
    img.request(T_GET_ID, 0, writable_len=20)
    yield "flush-get-id", img
    img = Image(rw)
    img.request(T_DISCARD, 0, data=struct.pack("<QII", 8, 16, 0))
    img.request(T_WZ, 0, data=struct.pack("<QII", 32, 8, 1))
    img.request(T_WZ, 0, data=struct.pack("<QII", 64, 8, 0))
    yield "discard-write-zeroes", img
    img = Image(rw | INDIRECT, 5)
    for i in range(6):
        img.request(T_IN if i % 2 else T_OUT, i * 8, data=b"" if i % 2 else b"\x11" * 4096,
                    writable_len=4096 if i % 2 else 0, indirect=True)
    yield "indirect-batch", img
    img = Image(RO | FLUSH)
    img.request(T_OUT, 0, data=b"\x22" * 512)
    img.request(T_IN, 127, writable_len=512)
    yield "readonly", img
    img = Image(rw | RESET, 4)
    for i in range(8):
        img.request(T_IN, i, writable_len=4096)
    yield "reset-inflight", img
    img = Image(rw | SAVE, 4)
    for i in range(4):
        img.request(T_OUT, i, data=b"\x33" * 512)
    yield "save-restore", img
    img = Image(rw)
    img.request(T_IN, 2 ** 64 - 1, writable_len=512)
    img.request(T_IN, 126, writable_len=2048)
    img.request(99, 0, writable_len=512)
    yield "bad-requests", img


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "blk")
    os.makedirs(out, exist_ok=True)
    for name, img in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(img.bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
