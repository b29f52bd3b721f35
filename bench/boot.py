#!/usr/bin/python3
"""Boot time and memory overhead: tabique against QEMU, side by side.

Boots ONE nested test host (tests/nested) and, inside it, starts each VMM in
turn (alternating, so drifts in the host hit every VMM alike) on the same
default guest.  vmm_probe.py, run inside the host, times each VMM from
process start to the guest's first userspace line and reads its RSS there.

The nested host is a TCG-emulated machine: absolute figures are far slower
than on real hardware; only the ratios between VMMs mean something.

usage: bench/boot.py [--runs 5] [--vmms tabique,qemu-microvm,qemu-pc] ...
"""

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "nested"))

from host import NestedHost, NestedHostError, prepare_default_guest  # noqa: E402

PROBE = os.path.join(HERE, "vmm_probe.py")
RAM_NAME = {"tabique": "tabique-guest-ram"}  # memfd name; QEMU: by size
NOTE = ("measured inside a TCG-emulated nested host: absolute times are "
        "many times slower than real hardware; compare the ratios")


def vmm_argv(name, tabique, guest, cpus, memory):
    kic = ["-kernel", guest["kernel"], "-initrd", guest["initrd"],
           "-append", guest["cmdline"]]
    qemu = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host",
            "-smp", str(cpus), "-m", memory, "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-serial", "stdio"]
    if name == "tabique":
        return [tabique, "run", "--kernel", guest["kernel"],
                "--initrd", guest["initrd"], "--cmdline", guest["cmdline"],
                "--cpus", str(cpus), "--memory", memory]
    if name == "qemu-microvm":
        return qemu + ["-M", "microvm"] + kic
    if name == "qemu-pc":
        return qemu + ["-M", "pc"] + kic
    raise SystemExit(f"unknown VMM {name}: tabique, qemu-microvm or qemu-pc")


def probe(host, name, argv, memory, timeout):
    """One measured boot inside the host; returns the probe's result dict."""
    cmd = ["/usr/bin/python3", PROBE, "--memory", memory,
           "--timeout", str(timeout)]
    if name in RAM_NAME:
        cmd += ["--ram-name", RAM_NAME[name]]
    cmd += ["--"] + argv
    out, _ = host.run(" ".join(shlex.quote(a) for a in cmd), timeout + 60)
    for line in out.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])
    return {"ready_s": None, "error": "no result from the probe", "tail": out}


def summarize(runs, vmms):
    """Medians per VMM and tabique's ratios to each QEMU flavour."""
    summary = {}
    for name in vmms:
        ok = [r for r in runs if r["vmm"] == name and r.get("ready_s")]
        summary[name] = {
            "ok_runs": len(ok),
            "failed_runs": sum(r["vmm"] == name for r in runs) - len(ok),
            "ready_s_median": _median([r["ready_s"] for r in ok]),
            "ready_s_min": min([r["ready_s"] for r in ok], default=None),
            "overhead_mib_median": _median([r["overhead_kb"] / 1024 for r in ok]),
        }
    base = summary.get("tabique", {})
    for name, s in summary.items():
        if name != "tabique":
            s["tabique_ready_ratio"] = _ratio(base.get("ready_s_median"),
                                              s["ready_s_median"])
            s["tabique_ready_ratio_min"] = _ratio(base.get("ready_s_min"),
                                                  s["ready_s_min"])
            s["tabique_overhead_ratio"] = _ratio(base.get("overhead_mib_median"),
                                                 s["overhead_mib_median"])
    return summary


def _median(values):
    return statistics.median(values) if values else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def print_table(summary, boot_s):
    print(f"\nnested host boot: {boot_s:.1f} s.  NOTE: {NOTE}.\n")
    print(f"{'VMM':<14}{'runs':>6}{'ready median':>14}{'min':>8}"
          f"{'overhead MiB':>14}{'tabique/this':>14}")
    for name, s in summary.items():
        runs = f"{s['ok_runs']}" + (f"+{s['failed_runs']}!" if s["failed_runs"] else "")
        ratio = ""
        if name != "tabique":
            ratio = (f"{_fmt(s['tabique_ready_ratio'], '.2f')} / "
                     f"{_fmt(s['tabique_ready_ratio_min'], '.2f')}")
        print(f"{name:<14}{runs:>6}{_fmt(s['ready_s_median'], '.2f'):>12} s"
              f"{_fmt(s['ready_s_min'], '.2f'):>6} s"
              f"{_fmt(s['overhead_mib_median'], '.1f'):>14}{ratio:>14}")
    print("\nready: time from VMM process start to 'tabique: default guest ready'"
          " (median, min);\noverhead: VMM RSS minus the guest RAM mapping at that"
          " moment (median);\ntabique/this: tabique's boot time divided by this"
          " VMM's (by median / by min).")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="measured runs per VMM")
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured runs per VMM first (page cache, 9p)")
    ap.add_argument("--vmms", default="tabique,qemu-microvm,qemu-pc")
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--memory", default="512M")
    ap.add_argument("--timeout", type=float, default=240,
                    help="seconds one VMM may take to reach the ready line")
    ap.add_argument("--tabique", default=os.environ.get("TABIQUE_BIN")
                    or os.path.join(ROOT, "build", "tabique"))
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    return ap.parse_args()


def measure(host, args, vmms, guest):
    runs = []
    for i in range(-args.warmup, args.runs):  # negative: warm-up rounds
        for name in vmms:  # alternate: a slow phase of the host hits all
            argv = vmm_argv(name, os.path.abspath(args.tabique), guest,
                            args.cpus, args.memory)
            r = probe(host, name, argv, args.memory, args.timeout)
            r.update(vmm=name, round=i, warmup=i < 0)
            _progress(r, i, args.runs)
            if not r["warmup"]:
                runs.append(r)
    return runs


def _progress(r, i, runs):
    tag = "warm-up" if r["warmup"] else f"run {i + 1}/{runs}"
    if r.get("ready_s"):
        print(f"  {tag:<10} {r['vmm']:<13} ready {r['ready_s']:6.2f} s, "
              f"overhead {r['overhead_kb'] / 1024:6.1f} MiB", flush=True)
    else:
        print(f"  {tag:<10} {r['vmm']:<13} FAILED: {r.get('error')}\n"
              f"{r.get('tail', '')[-1500:]}", flush=True)


def _warn_if_busy(load):
    # The nested host needs both cores of a small machine: anything else
    # running shows up as noise of tens of seconds per boot.
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"boot.py: WARNING: load average {load:.1f} on "
              f"{os.cpu_count()} CPUs: other work will make the figures "
              f"noisy; prefer an idle machine", file=sys.stderr, flush=True)


def main():
    args = parse_args()
    vmms = args.vmms.split(",")
    for name in vmms:
        vmm_argv(name, "", {"kernel": "", "initrd": "", "cmdline": ""}, 1, "1M")
    try:
        guest = prepare_default_guest(os.path.abspath(args.tabique))
    except (NestedHostError, OSError) as e:
        print(f"boot.py: cannot prepare the default guest: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.results, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log = os.path.join(args.results, f"boot-{stamp}.console.log")
    load = [os.getloadavg()[0]]
    _warn_if_busy(load[0])
    print(f"booting the nested host (console log: {log}) ...", flush=True)
    with NestedHost(log_path=log) as host:
        runs = measure(host, args, vmms, guest)
        boot_s = host.boot_seconds
        load.append(os.getloadavg()[0])
    summary = summarize(runs, vmms)
    print_table(summary, boot_s)
    out = os.path.join(args.results, f"boot-{stamp}.json")
    with open(out, "w") as f:
        json.dump({"note": NOTE, "date": stamp, "nested_host_boot_s": boot_s,
                   "loadavg_1min_before_after": load,
                   "config": {"cpus": args.cpus, "memory": args.memory,
                              "runs": args.runs, "warmup": args.warmup,
                              "guest": guest},
                   "summary": summary, "runs": runs}, f, indent=1)
    print(f"\nresults: {out}")
    return 0 if all(s["ok_runs"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
