#!/usr/bin/python3
"""Time one VMM from process start to the guest's first userspace line and
measure its memory overhead at that moment.  Runs inside the nested test host
(bench/boot.py starts it there), so both clocks are the same machine's.

usage: vmm_probe.py --memory SIZE [--ram-name NAME] [--timeout S] -- VMM ARGS...

Prints one line: BENCH-RESULT {json}.  The VMM gets a pty as its terminal,
as with a user at a console, and is killed (SIGKILL) once measured.
"""

import argparse
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

READY = b"tabique: default guest ready"
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_bytes(text):
    return int(text[:-1]) * UNITS[text[-1].upper()]


def spawn(argv):
    """Start argv on a new pty; returns (Popen, master fd)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    return proc, master


def wait_for(master, proc, needle, timeout):
    """Read the VMM's terminal until needle; returns (seconds waited or None,
    tail of the output)."""
    begin = time.monotonic()
    seen = b""
    while True:
        left = begin + timeout - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            return None, seen[-3000:]
        ready, _, _ = select.select([master], [], [], min(left, 1.0))
        if not ready:
            continue
        try:
            seen += os.read(master, 65536)
        except OSError:  # EIO: the VMM closed its terminal
            return None, seen[-3000:]
        if needle in seen:
            return time.monotonic() - begin, seen[-3000:]


def smaps(pid):
    """[(name, size_kb, rss_kb)] for each mapping of pid."""
    maps, cur = [], None
    header = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$")
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = header.match(line)
            if m:
                cur = [m.group(1), 0, 0]
                maps.append(cur)
            elif line.startswith("Size:"):
                cur[1] = int(line.split()[1])
            elif line.startswith("Rss:"):
                cur[2] = int(line.split()[1])
    return [tuple(m) for m in maps]


def memory_use(pid, guest_bytes, ram_name):
    """Total RSS and the RSS of the guest RAM mapping(s), in KiB.

    Guest RAM is the mapping named ram_name when given (tabique's memfd),
    else every mapping at least as large as the guest's memory (QEMU)."""
    total = ram = 0
    for name, size_kb, rss_kb in smaps(pid):
        total += rss_kb
        if ram_name and ram_name in name:
            ram += rss_kb
        elif not ram_name and size_kb * 1024 >= guest_bytes:
            ram += rss_kb
    return total, ram


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", required=True)
    ap.add_argument("--ram-name")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("argv", nargs="+")
    args = ap.parse_args()

    start = time.monotonic()
    proc, master = spawn(args.argv)
    waited, tail = wait_for(master, proc, READY, args.timeout)
    result = {"argv": args.argv, "ready_s": None}
    if waited is not None:
        result["ready_s"] = time.monotonic() - start
        total, ram = memory_use(proc.pid, size_bytes(args.memory), args.ram_name)
        result.update(rss_kb=total, ram_rss_kb=ram, overhead_kb=total - ram)
    else:
        result["error"] = ("exited with status %s" % proc.returncode
                           if proc.poll() is not None else "timeout")
        result["tail"] = tail.decode(errors="replace")
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: only the VMM
    proc.wait()
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0 if waited is not None else 1


if __name__ == "__main__":
    sys.exit(main())
