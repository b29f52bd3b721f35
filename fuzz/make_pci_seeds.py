#!/usr/bin/env python3
"""Seeds for fuzz_pci: a driver's probe of the virtio-pci function at 00:01.0
through both config mechanisms, then BAR sizing, placement and enabling.
Run from the repository root: fuzz/make_pci_seeds.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pci")
WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}


def op(space, write, width, offset, value=0):
    head = space | (4 if write else 0) | (WIDTH[width] << 3)
    return struct.pack("<B", head) + offset.to_bytes(3, "little") + struct.pack("<Q", value)


def cf8(devfn, reg):
    return 0x80000000 | (devfn << 8) | reg


def type1_probe():
    ops = b""
    for reg in range(0, 0x40, 4):
        ops += op(0, True, 4, 0, cf8(1 << 3, reg)) + op(0, False, 4, 4)
    return ops


def ecam_bar_setup():
    dev = (1 << 3) << 12
    return (op(1, True, 4, dev + 0x10, 0xffffffff) + op(1, False, 4, dev + 0x10)
            + op(1, True, 4, dev + 0x10, 0x00000000) + op(1, True, 4, dev + 0x14, 0x1)
            + op(1, True, 2, dev + 0x04, 0x6) + op(2, False, 4, 0x0) + op(2, True, 1, 0x14, 0x1)
            + op(2, True, 1, 0x14, 0x3) + op(2, False, 4, 0x2000) + op(3, False, 1, 0))


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, blob in {"type1_probe": type1_probe(), "ecam_bar_setup": ecam_bar_setup()}.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
