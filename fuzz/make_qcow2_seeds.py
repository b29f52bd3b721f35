#!/usr/bin/env python3
"""Writes qcow2 images with requests into fuzz/corpus/qcow2/, in the input
layout that fuzz_qcow2.c documents: the image file, then N requests of 8
bytes (op, data byte, first sector, sectors - 1), then one byte (N, batch,
read-only). The images are built here, byte by byte (no qemu-img needed):
data, zero and compressed clusters, several cluster sizes, version 2, a
backing file, so that the fuzzer starts from every kind of entry; and
requests on new images (the harness makes them), checked against a model."""
import os
import struct
import sys
import zlib

READ, WRITE, ZEROES, ZEROES_UNMAP, DISCARD, FLUSH, FUA = range(7)
COPIED, COMPRESSED, ZERO = 1 << 63, 1 << 62, 1


class Image:
    """A qcow2 file: header, refcount table, one refcount block, L1, then
    whatever is added (L2 tables, data), refcounts kept right."""

    def __init__(self, cluster_bits, size, version=3, backing=None, backing_format=None):
        self.cb, self.cs, self.size, self.version = cluster_bits, 1 << cluster_bits, size, version
        per_l2 = self.cs // 8
        self.l1_entries = max(1, -(-size // (self.cs * per_l2)))
        self.l1_clusters = -(-self.l1_entries * 8 // self.cs)
        # header, refcount table, refcount block, L1
        self.clusters = [bytearray(self.cs) for _ in range(3 + self.l1_clusters)]
        self.l2 = {}  # L1 index -> cluster index
        self.backing, self.backing_format = backing, backing_format

    def alloc(self, data=b""):
        self.clusters.append(bytearray(data.ljust(self.cs, b"\0")))
        return len(self.clusters) - 1

    def l2_entry(self, guest_cluster, entry):
        per = self.cs // 8
        l1i, l2i = divmod(guest_cluster, per)
        if l1i not in self.l2:
            self.l2[l1i] = self.alloc()
        struct.pack_into(">Q", self.clusters[self.l2[l1i]], 8 * l2i, entry)

    def data(self, guest_cluster, byte):
        c = self.alloc(bytes([byte]) * self.cs)
        self.l2_entry(guest_cluster, c * self.cs | COPIED)

    def zero(self, guest_cluster, preallocated=False):
        off = self.alloc() * self.cs | COPIED if preallocated else 0
        self.l2_entry(guest_cluster, off | ZERO)

    def compressed(self, guest_cluster, byte):
        z = zlib.compressobj(9, zlib.DEFLATED, -12)
        stream = z.compress(bytes([byte]) * self.cs) + z.flush()
        c = self.alloc(stream)
        x = 62 - (self.cb - 8)
        sectors = (len(stream) + 511) // 512 - 1
        self.l2_entry(guest_cluster, COMPRESSED | sectors << x | c * self.cs)

    def bytes(self):
        cs, n = self.cs, len(self.clusters)
        assert n <= cs // 2, "one refcount block is enough for a seed"
        hdr = self.clusters[0]
        hdr_len = 104 if self.version == 3 else 72
        struct.pack_into(">IIQIIQIIQQIIQ", hdr, 0, 0x514649FB, self.version, 0, 0,
                         self.cb, self.size, 0, self.l1_entries, 3 * cs, cs, 1, 0, 0)
        if self.version == 3:
            struct.pack_into(">QQQII", hdr, 72, 0, 0, 0, 4, 104)
        at = hdr_len
        if self.backing_format:
            fmt = self.backing_format.encode()
            struct.pack_into(">II", hdr, at, 0xE2792ACA, len(fmt))
            hdr[at + 8:at + 8 + len(fmt)] = fmt
            at += 8 + (len(fmt) + 7) // 8 * 8
        at += 8  # the end of the extensions
        if self.backing:
            name = self.backing.encode()
            struct.pack_into(">QI", hdr, 8, at, len(name))
            hdr[at:at + len(name)] = name
        struct.pack_into(">Q", self.clusters[1], 0, 2 * cs)
        for i in range(n):
            struct.pack_into(">H", self.clusters[2], 2 * i, 1)
        for l1i, c in self.l2.items():
            at, slot = divmod(8 * l1i, cs)
            struct.pack_into(">Q", self.clusters[3 + at], slot, c * cs | COPIED)
        return b"".join(bytes(c) for c in self.clusters)


def req(op, byte, sector, sectors):
    return struct.pack("<BBIH", op, byte, sector, sectors - 1)


def seed(image, reqs, batch=False, readonly=False):
    """image: an Image, or up to 3 bytes: a new image (the first byte picks its clusters)."""
    tail = bytes([len(reqs) | (0x40 if batch else 0) | (0x80 if readonly else 0)])
    head = image if isinstance(image, bytes) else image.bytes()
    return head + b"".join(reqs) + tail


def mixed(sectors):
    """A bit of everything, spread over the disk."""
    s = sectors
    return [req(WRITE, 0x11, 1, 8), req(READ, 0, 0, 16), req(ZEROES, 0, s // 4, 64),
            req(ZEROES_UNMAP, 0, s // 2 + 3, 40), req(DISCARD, 0, 0, 128), req(FLUSH, 0, 0, 1),
            req(FUA, 0x22, s - 8, 8), req(READ, 0, s - 16, 16)]


def seeds():
    img = Image(9, 1 << 20)
    yield "empty-512", seed(img, mixed(2048))
    img = Image(12, 4 << 20)
    for g in (0, 1, 5, 600):
        img.data(g, 0x30 + g % 7)
    img.zero(2)
    img.zero(3, preallocated=True)
    yield "data-zero-4k", seed(img, mixed(8192) + [req(WRITE, 0x44, 24, 8)], batch=True)
    img = Image(12, 1 << 20)
    img.compressed(0, 0x5A)
    img.compressed(3, 0xA5)
    img.data(4, 0x66)
    yield "compressed-4k", seed(img, [req(READ, 0, 0, 32), req(WRITE, 0x77, 7, 2),
                                      req(READ, 0, 24, 16), req(DISCARD, 0, 0, 8)])
    img = Image(16, 8 << 20)
    img.data(1, 0x12)
    yield "data-64k", seed(img, mixed(16384), batch=True)
    img = Image(12, 1 << 20, version=2)
    img.data(0, 0x21)
    yield "version2-readonly", seed(img, [req(READ, 0, 0, 16)], readonly=True)
    img = Image(12, 1 << 20, backing="nonexistent.img", backing_format="raw")
    yield "backing-missing", seed(img, [req(READ, 0, 0, 8)])
    img = Image(9, 16 << 20)
    grow = [req(WRITE, i, i * 256, 256) for i in range(63)]
    yield "refcount-table-growth", seed(img, grow)
    # New images, checked against a model: write, read back, zero, discard, read again.
    model = [req(WRITE, 0x5A, 3, 20), req(READ, 0, 0, 32), req(ZEROES, 0, 8, 200),
             req(WRITE, 0x6B, 120, 256), req(DISCARD, 0, 100, 256), req(READ, 0, 96, 256),
             req(ZEROES_UNMAP, 0, 256, 256), req(FUA, 0x7C, 300, 9), req(READ, 0, 250, 100)]
    for name, head in (("new-512", bytes([0])), ("new-4k", bytes([3])), ("new-64k", b""),
                       ("new-2m", bytes([12]))):
        yield name, seed(head, model)
    yield "new-batch", seed(bytes([7]), model, batch=True)
    img = Image(9, 1 << 20)
    yield "concurrent-same-cluster", seed(img, [req(WRITE, i, i, 1) for i in range(32)],
                                          batch=True)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "qcow2")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
