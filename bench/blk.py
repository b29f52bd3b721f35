#!/usr/bin/python3
"""Block I/O: tabique's virtio-blk against QEMU's, side by side.

Boots ONE nested test host (tests/nested) and, inside it, boots each VMM in
turn (alternating, so drifts in the host hit every VMM alike) on the same
default guest with the same raw image, readonly, in the host's /tmp (tmpfs).
In the guest, bench/blkio.c (built static here, handed over on a second
small disk) reads /dev/vda with O_DIRECT: 4 KiB random reads at queue depth
1 and 16 (IOPS), 1 MiB sequential reads (MiB/s). The same jobs run on the
nested host against the image file itself: the "host" column.

tabique: --disk IMG,readonly.  QEMU: -drive file=IMG,format=raw,if=virtio,
readonly=on,cache=writeback,aio=io_uring (its page-cache mode, like ours).

The nested host is a TCG-emulated machine: absolute figures are far below
real hardware; only the ratios mean something.  On tmpfs the host column is
a memory copy (tmpfs takes no O_DIRECT before Linux 6.6), a ceiling no VMM
reaches.

usage: bench/blk.py [--runs 3] [--seconds 5] [--vmms tabique,qemu]
"""

import argparse
import datetime
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "nested"))

from host import NestedHost, NestedHostError, prepare_default_guest  # noqa: E402

IMAGE = "/tmp/tabique-bench.img"  # in the nested host's tmpfs
READY = "tabique: default guest ready"
JOBS = [  # name, blkio mode, queue depth, block size, figure
    ("randread-4k-qd1", "rand", 1, 4096, "iops"),
    ("randread-4k-qd16", "rand", 16, 4096, "iops"),
    ("seqread-1m", "seq", 1, 1 << 20, "mibps"),
]
NOTE = ("measured inside a TCG-emulated nested host: absolute figures are far "
        "below real hardware; compare the ratios")


def build_tools(workdir):
    """blkio, static, and a raw disk image that carries it into the guest."""
    os.makedirs(workdir, exist_ok=True)
    exe = os.path.join(workdir, "blkio")
    subprocess.run(["gcc", "-static", "-O2", "-o", exe, os.path.join(HERE, "blkio.c")],
                   check=True)
    data = open(exe, "rb").read()
    disk = os.path.join(workdir, "tools.img")
    with open(disk, "wb") as f:  # whole 4 KiB blocks: dd reads it back, ELF ignores the tail
        f.write(data + bytes(-len(data) % 4096))
    return exe, disk, len(data)


def vmm_argv(name, tabique, guest, tools, memory):
    if name == "tabique":
        return [tabique, "run", "--kernel", guest["kernel"], "--initrd", guest["initrd"],
                "--cmdline", guest["cmdline"], "--cpus", "1", "--memory", memory,
                "--disk", f"{IMAGE},readonly", "--disk", f"{tools},readonly"]
    if name == "qemu":
        return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-smp", "1",
                "-m", memory, "-nodefaults", "-no-user-config", "-display", "none",
                "-no-reboot", "-serial", "stdio",
                "-kernel", guest["kernel"], "-initrd", guest["initrd"],
                "-append", guest["cmdline"],
                "-drive", f"file={IMAGE},format=raw,if=virtio,readonly=on,"
                          "cache=writeback,aio=io_uring",
                "-drive", f"file={tools},format=raw,if=virtio,readonly=on"]
    raise SystemExit(f"unknown VMM {name}: tabique or qemu")


class Guest:
    """A VMM in the foreground of the nested host's tty, its guest's shell on it."""

    def __init__(self, host, argv):
        self.host = host
        self.ids = 0
        host.skip_to_end()
        host.send(f"{' '.join(shlex.quote(a) for a in argv)} 2>/tmp/vmm.err; "
                  f"printf '\\n__VMM_RC=%s__\\n' $?\n")
        host.expect(re.escape(READY), 240, "the default guest's ready line")
        host.expect(r"# ", 60, "the guest's prompt")

    def shell(self, cmd, timeout=120):
        self.ids += 1
        tag = f"{os.getpid()}g{self.ids}"
        self.host.send(f"printf '__GB%s__\\n' {tag}; {cmd}; printf '\\n__GE%s_%s__\\n' {tag} $?\n")
        self.host.expect(f"__GB{tag}__\n", timeout)
        m = self.host.expect(f"(?s)(.*?)\n__GE{tag}_(\\d+)__", timeout)
        self.host.expect(r"# ", timeout)
        if m.group(2) != "0":
            raise NestedHostError(f"guest `{cmd}` exited {m.group(2)}: {m.group(1)!r}")
        return m.group(1)

    def poweroff(self):
        self.host.send("poweroff\n")
        m = self.host.expect(r"__VMM_RC=(\d+)__", 120, "the VMM to exit")
        self.host.run("stty sane -echo", timeout=30)
        return int(m.group(1))


def parse_result(out):
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise NestedHostError(f"no RESULT line in {out!r}")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())
            if k != "mode"}


def run_jobs(run, blkio, path, seconds):
    """Runs every job through run(cmd) -> output; returns {job: figure}."""
    results = {}
    for name, mode, depth, bs, figure in JOBS:
        out = run(f"echo 3 > /proc/sys/vm/drop_caches; {blkio} {mode} {path} {seconds} "
                  f"{depth} {bs}")
        results[name] = parse_result(out)[figure]
    return results


def measure_vmm(host, name, argv, tools_bytes, seconds):
    g = Guest(host, argv)
    try:
        # The tools disk is the second one: vdb.
        blocks = (tools_bytes + 4095) // 4096
        g.shell(f"dd if=/dev/vdb of=/tmp/blkio bs=4096 count={blocks} 2>/dev/null && "
                f"chmod +x /tmp/blkio")
        return run_jobs(lambda c: g.shell(c, 60 + 4 * seconds), "/tmp/blkio", "/dev/vda",
                        seconds)
    finally:
        rc = g.poweroff()
        if rc != 0:
            print(f"  {name}: exited {rc}: {host.run('cat /tmp/vmm.err')[0]!r}", flush=True)


def summarize(runs, vmms, host_figures):
    summary = {}
    for vmm in vmms:
        summary[vmm] = {job: _median([r["figures"][job] for r in runs if r["vmm"] == vmm])
                        for job, *_ in JOBS}
    summary["host"] = {job: _median([h[job] for h in host_figures]) for job, *_ in JOBS}
    ratios = {}
    for job, *_ in JOBS:
        t = summary.get("tabique", {}).get(job)
        ratios[job] = {"tabique/qemu": _ratio(t, summary.get("qemu", {}).get(job)),
                       "tabique/host": _ratio(t, summary["host"][job])}
    return summary, ratios


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def print_table(summary, ratios):
    cols = list(summary)
    print(f"\nNOTE: {NOTE}.\n")
    print(f"{'job':<20}" + "".join(f"{c:>12}" for c in cols)
          + f"{'tabique/qemu':>14}{'tabique/host':>14}")
    for job, _, _, _, figure in JOBS:
        unit = "IOPS" if figure == "iops" else "MiB/s"
        print(f"{job + ' ' + unit:<20}"
              + "".join(f"{_fmt(summary[c][job], '.0f'):>12}" for c in cols)
              + f"{_fmt(ratios[job]['tabique/qemu'], '.2f'):>14}"
              + f"{_fmt(ratios[job]['tabique/host'], '.2f'):>14}")
    print("\nmedians over the measured runs; guest: 1 vCPU, O_DIRECT on /dev/vda; "
          "host: the same jobs on the image file in the nested host")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="measured boots per VMM")
    ap.add_argument("--warmup", type=int, default=0, help="unmeasured boots per VMM first")
    ap.add_argument("--seconds", type=float, default=5, help="per job")
    ap.add_argument("--image-mib", type=int, default=512)
    ap.add_argument("--vmms", default="tabique,qemu")
    ap.add_argument("--memory", default="512M")
    ap.add_argument("--tabique", default=os.environ.get("TABIQUE_BIN")
                    or os.path.join(ROOT, "build", "tabique"))
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    return ap.parse_args()


def measure(host, args, vmms, guest, tools, tools_bytes, exe):
    runs, host_figures = [], []
    host.check(f"dd if=/dev/zero of={IMAGE} bs=1M count={args.image_mib} 2>/dev/null",
               timeout=600)
    for i in range(args.warmup + args.runs):
        warm = i < args.warmup
        for vmm in vmms:  # alternate: a slow phase of the host hits all
            argv = vmm_argv(vmm, os.path.abspath(args.tabique), guest, tools, args.memory)
            begin = time.monotonic()
            figures = measure_vmm(host, vmm, argv, tools_bytes, args.seconds)
            print(f"  {'warm-up' if warm else f'run {i + 1}'} {vmm:<8} "
                  + "  ".join(f"{k} {v:.0f}" for k, v in figures.items())
                  + f"  ({time.monotonic() - begin:.0f} s)", flush=True)
            if not warm:
                runs.append({"vmm": vmm, "round": i, "figures": figures})
        if not warm:
            hf = run_jobs(lambda c: host.check(c, 60 + 4 * args.seconds), exe, IMAGE,
                          args.seconds)
            print("  host     " + "  ".join(f"{k} {v:.0f}" for k, v in hf.items()), flush=True)
            host_figures.append(hf)
    host.run(f"rm -f {IMAGE}")
    return runs, host_figures


def main():
    args = parse_args()
    vmms = args.vmms.split(",")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.results, exist_ok=True)
    exe, tools, tools_bytes = build_tools(os.path.join(args.results, f"blk-tools-{stamp}"))
    for vmm in vmms:
        vmm_argv(vmm, "", {"kernel": "", "initrd": "", "cmdline": ""}, tools, "1M")
    try:
        guest = prepare_default_guest(os.path.abspath(args.tabique))
    except (NestedHostError, OSError) as e:
        print(f"blk.py: cannot prepare the default guest: {e}", file=sys.stderr)
        return 1
    log = os.path.join(args.results, f"blk-{stamp}.console.log")
    print(f"booting the nested host (console log: {log}) ...", flush=True)
    with NestedHost(log_path=log) as host:
        runs, host_figures = measure(host, args, vmms, guest, tools, tools_bytes, exe)
    summary, ratios = summarize(runs, vmms, host_figures)
    print_table(summary, ratios)
    out = os.path.join(args.results, f"blk-{stamp}.json")
    with open(out, "w") as f:
        json.dump({"note": NOTE, "date": stamp,
                   "config": {"runs": args.runs, "warmup": args.warmup,
                              "seconds": args.seconds, "image_mib": args.image_mib,
                              "memory": args.memory, "jobs": JOBS, "guest": guest},
                   "summary": summary, "ratios": ratios, "runs": runs,
                   "host": host_figures}, f, indent=1)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
