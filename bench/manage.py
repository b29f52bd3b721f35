#!/usr/bin/python3
"""Many VMs on one host: how fast they start and what each costs in memory,
tabique against QEMU, side by side in one run.

Rounds alternate between the two (so drifts of this shared machine hit both):
  tabique  `tabique create NAME --kernel tiny-halt --memory 32M` then
           `tabique start NAME` (returns once the VM's control API answers),
           for N VMs one after another; the VMM and its monitor per VM;
  QEMU     `qemu-system-x86_64 -enable-kvm -m 32M -daemonize -qmp unix:...`
           (returns once the machine is built and QMP listens), N of them.
Then, with the N VMs of a round running, each VMM's memory overhead: the
proportional set size (PSS) of its processes minus that of the guest's RAM
mapping (tabique: the memfd "tabique-guest-ram" plus the monitor process;
QEMU: mappings at least as large as the guest RAM).

The guest is the tiny bzImage of tests/manage (it prints a line and halts):
what is measured is the VMM, not a guest's boot (bench/boot.py does that).

usage: bench/manage.py [--vms 10] [--rounds 3]
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, "build")
MIB = 1 << 20
MEMORY = "32M"


def pss_excluding_ram(pid, ram_bytes, ram_name=None):
    """PSS of a process in bytes, without its guest-RAM mapping."""
    total, current_is_ram = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                current_is_ram = (ram_name and ram_name in line) or \
                    (not ram_name and hi - lo >= ram_bytes)
            elif fields[0] == "Pss:" and not current_is_ram:
                total += int(fields[1]) * 1024
    return total


def wait_socket(path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{path} never answered")


class Tabique:
    name = "tabique"

    def __init__(self, binary, kernel, work):
        self.binary, self.kernel = binary, kernel
        self.env = dict(os.environ, TABIQUE_HOME=os.path.join(work, "tabique-home"))

    def tq(self, *args):
        subprocess.run([self.binary, *args], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def start(self, i):
        self.tq("create", f"vm{i}", "--kernel", self.kernel, "--memory", MEMORY)
        self.tq("start", f"vm{i}")

    def overheads(self, n):
        out = []
        listing = json.loads(subprocess.run([self.binary, "list", "--json"], env=self.env,
                                            check=True, capture_output=True).stdout)
        for vm in listing:
            state_path = os.path.join(self.env["TABIQUE_HOME"], "vms", vm["name"], "state.json")
            with open(state_path) as f:
                state = json.load(f)
            out.append(pss_excluding_ram(state["vmm_pid"], 32 * MIB, "tabique-guest-ram") +
                       pss_excluding_ram(state["monitor_pid"], 32 * MIB, "tabique-guest-ram"))
        assert len(out) == n, listing
        return out

    def stop_all(self, n):
        for i in range(n):
            self.tq("rm", "--force", f"vm{i}")


class Qemu:
    name = "qemu"

    def __init__(self, work):
        self.work = work
        self.pids = []

    def start(self, i):
        qmp = os.path.join(self.work, f"qemu{i}.qmp")
        pidfile = os.path.join(self.work, f"qemu{i}.pid")
        subprocess.run(["qemu-system-x86_64", "-enable-kvm", "-m", MEMORY, "-nodefaults",
                        "-no-user-config", "-display", "none", "-daemonize",
                        "-pidfile", pidfile, "-qmp", f"unix:{qmp},server=on,wait=off"],
                       check=True, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_socket(qmp)
        with open(pidfile) as f:
            self.pids.append(int(f.read()))

    def overheads(self, n):
        assert len(self.pids) == n
        return [pss_excluding_ram(pid, 32 * MIB) for pid in self.pids]

    def stop_all(self, n):
        for pid in self.pids:
            os.kill(pid, 9)
        self.pids = []


def one_round(vmm, n):
    begin = time.monotonic()
    for i in range(n):
        vmm.start(i)
    elapsed = time.monotonic() - begin
    time.sleep(1)  # let the tiny guests print and halt
    overheads = vmm.overheads(n)
    vmm.stop_all(n)
    return {"vms_per_second": n / elapsed, "overhead_mib": statistics.median(overheads) / MIB}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vms", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    binary = os.path.join(BUILD, "tabique")
    kernel = os.path.join(BUILD, "tests", "manage", "tiny-halt.bzImage")
    if not os.path.exists(kernel):
        sys.exit(f"{kernel} is missing: run scripts/build")
    work = tempfile.mkdtemp(prefix="tabique-bench-")
    results = {"tabique": [], "qemu": []}
    try:
        for r in range(args.rounds):
            for vmm in (Tabique(binary, kernel, work), Qemu(work)):
                res = one_round(vmm, args.vms)
                results[vmm.name].append(res)
                print(f"round {r + 1} {vmm.name:8} {res['vms_per_second']:6.1f} VMs/s  "
                      f"overhead {res['overhead_mib']:5.1f} MiB/VM", flush=True)
    finally:
        subprocess.run(["pkill", "-9", "-f", work])
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for name, runs in results.items():
        summary[name] = {k: statistics.median(r[k] for r in runs)
                         for k in ("vms_per_second", "overhead_mib")}
    t, q = summary["tabique"], summary["qemu"]
    print(f"\n{args.vms} VMs per round, {args.rounds} rounds, medians:")
    print(f"{'':10} {'VMs/s':>8} {'MiB/VM':>8}")
    for name in ("tabique", "qemu"):
        print(f"{name:10} {summary[name]['vms_per_second']:8.1f} "
              f"{summary[name]['overhead_mib']:8.1f}")
    print(f"tabique/QEMU: start rate x{t['vms_per_second'] / q['vms_per_second']:.2f}, "
          f"memory overhead x{t['overhead_mib'] / q['overhead_mib']:.2f} "
          f"(target: under 5 MiB per VM: {'met' if t['overhead_mib'] < 5 else 'NOT met'})")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results",
                       f"manage-{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
    with open(out, "w") as f:
        json.dump({"vms": args.vms, "rounds": results, "medians": summary}, f, indent=2)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
