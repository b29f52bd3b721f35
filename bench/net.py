#!/usr/bin/python3
"""Network throughput: tabique's virtio-net against QEMU's, side by side.

Boots ONE nested test host (tests/nested) and, inside it, boots each VMM in
turn (alternating, so drifts in the host hit every VMM alike) on the same
default guest with two network cards: one on user-mode NAT, one on a tap
(tbq0, 192.168.77.1/24 on the nested host side).  In the guest,
bench/netperf.c (built static here, fetched by the guest over the user
network) moves BYTES over one TCP connection to or from bench/net_peer.py on
the nested host: "tx" is guest -> host, "rx" host -> guest, each timed in the
guest from connect until the peer has everything.

tabique: --net user --net tap,ifname=tbq0.
QEMU:    -netdev user / -netdev tap,ifname=tbq0,script=no,downscript=no, each
         with -device virtio-net-pci (no vhost: this host has no vhost-net).

The nested host is a TCG-emulated machine: absolute figures are far below
real hardware; only the ratios mean something.  Nothing leaves the nested
host: user-mode traffic goes to its loopback, tap traffic to its tap.

usage: bench/net.py [--runs 3] [--mib 32] [--vmms tabique,qemu]
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
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "nested"))

import hostimage  # noqa: E402
from host import NestedHost, NestedHostError, prepare_default_guest  # noqa: E402

READY = "tabique: default guest ready"
TAP, TAP_HOST, TAP_GUEST = "tbq0", "192.168.77.1", "192.168.77.2"
USER_HOST = "10.0.2.2"  # the nested host's loopback, seen from the user network
HTTP_PORT, PEER_PORT = 8000, 9000
MAC = {"user": "52:54:00:00:00:01", "tap": "52:54:00:00:00:02"}
JOBS = [  # name, card, netperf mode
    ("user-tx", "user", "send"),
    ("user-rx", "user", "recv"),
    ("tap-tx", "tap", "send"),
    ("tap-rx", "tap", "recv"),
]
NOTE = ("measured inside a TCG-emulated nested host: absolute figures are far "
        "below real hardware; compare the ratios")
DHCP_SCRIPT = ("printf '#!/bin/sh\\n[ \"$1\" = bound ] && ifconfig $interface $ip "
               "netmask $subnet up && route add default gw $router\\nexit 0\\n' "
               "> /tmp/dhcp.sh; chmod +x /tmp/dhcp.sh")


def build_tools(workdir):
    os.makedirs(workdir, exist_ok=True)
    exe = os.path.join(workdir, "netperf")
    subprocess.run(["gcc", "-static", "-O2", "-o", exe, os.path.join(HERE, "netperf.c")],
                   check=True)
    return exe


def tun_module():
    """tun.ko for the nested host's kernel (its image does not carry it), from
    the same Debian package, cached as tests/e2e/test_net.py does."""
    kpkg = hostimage.ensure_built()["kernel_package"]
    kver = kpkg[len("linux-image-"):]
    folder = os.path.join(hostimage.tabique_cache(), "net-e2e")
    path = os.path.join(folder, f"tun-{kver}.ko")
    if not os.path.exists(path):
        deb = hostimage.download(kpkg, os.path.join(folder, "debs"))
        member = f"./lib/modules/{kver}/kernel/drivers/net/tun.ko"
        with tempfile.TemporaryDirectory() as tmp:
            tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb],
                                   stdout=subprocess.PIPE)
            subprocess.run(["tar", "-x", "-C", tmp, member], stdin=tar.stdout, check=True)
            tar.wait()
            os.replace(os.path.join(tmp, member), path)
        os.unlink(deb)
    return path


def vmm_argv(name, tabique, guest, memory):
    if name == "tabique":
        return [tabique, "run", "--kernel", guest["kernel"], "--initrd", guest["initrd"],
                "--cmdline", guest["cmdline"], "--cpus", "1", "--memory", memory,
                "--net", f"user,mac={MAC['user']}",
                "--net", f"tap,ifname={TAP},mac={MAC['tap']}"]
    if name == "qemu":
        return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-smp", "1",
                "-m", memory, "-nodefaults", "-no-user-config", "-display", "none",
                "-no-reboot", "-serial", "stdio",
                "-kernel", guest["kernel"], "-initrd", guest["initrd"],
                "-append", guest["cmdline"],
                "-netdev", "user,id=u0",
                "-device", f"virtio-net-pci,netdev=u0,mac={MAC['user']}",
                "-netdev", f"tap,id=t0,ifname={TAP},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=t0,mac={MAC['tap']}"]
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
        tag = f"{os.getpid()}n{self.ids}"
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


def ifname(g, mac):
    out = g.shell(f"for i in /sys/class/net/*; do grep -q {mac} $i/address && "
                  f"basename $i; done; true")
    names = re.findall(r"^(eth\d+)$", out, re.M)
    if len(names) != 1:
        raise NestedHostError(f"no single card with MAC {mac}: {out!r}")
    return names[0]


def setup_guest(g):
    user, tap = ifname(g, MAC["user"]), ifname(g, MAC["tap"])
    g.shell(f"{DHCP_SCRIPT}; ip link set {user} up && "
            f"udhcpc -i {user} -s /tmp/dhcp.sh -q -n -t 10 -T 2 >/dev/null", 120)
    g.shell(f"ip link set {tap} up && ip addr add {TAP_GUEST}/24 dev {tap}")
    g.shell(f"wget -q -O /tmp/netperf http://{USER_HOST}:{HTTP_PORT}/netperf && "
            f"chmod +x /tmp/netperf", 120)


def measure_vmm(host, name, argv, size):
    g = Guest(host, argv)
    try:
        setup_guest(g)
        figures = {}
        for job, card, mode in JOBS:
            peer = USER_HOST if card == "user" else TAP_HOST
            port = PEER_PORT if mode == "send" else PEER_PORT + 1
            cmd = f"/tmp/netperf {mode} {peer} {port}" + (f" {size}" if mode == "send" else "")
            out = g.shell(cmd, 600)
            m = re.search(r"RESULT bytes=(\d+) seconds=([\d.]+) mibps=([\d.]+)", out)
            if not m or int(m.group(1)) != size:
                raise NestedHostError(f"{job}: bad result {out!r}")
            figures[job] = float(m.group(3))
        return figures
    finally:
        rc = g.poweroff()
        if rc != 0:
            print(f"  {name}: exited {rc}: {host.run('cat /tmp/vmm.err')[0]!r}", flush=True)


def setup_host(host, tools_dir, module, size):
    host.check("ip link set lo up")  # the nested host's init leaves it down
    host.check(f"[ -c /dev/net/tun ] || busybox insmod {module}")
    host.check(f"ip link del {TAP} 2>/dev/null; ip tuntap add dev {TAP} mode tap && "
               f"ip addr add {TAP_HOST}/24 dev {TAP} && ip link set {TAP} up")
    host.check(f"(cd {tools_dir} && exec python3 -m http.server --bind 127.0.0.1 "
               f"{HTTP_PORT}) >/tmp/bench-http.log 2>&1 & echo $! > /tmp/bench-http.pid")
    host.check(f"python3 {HERE}/net_peer.py {PEER_PORT} {size} 127.0.0.1 {TAP_HOST} "
               f">/tmp/bench-peer.log 2>&1 & echo $! > /tmp/bench-peer.pid")


def summarize(runs, vmms):
    summary = {vmm: {job: _median([r["figures"][job] for r in runs if r["vmm"] == vmm])
                     for job, *_ in JOBS} for vmm in vmms}
    ratios = {job: _ratio(summary.get("tabique", {}).get(job),
                          summary.get("qemu", {}).get(job)) for job, *_ in JOBS}
    return summary, ratios


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def print_table(summary, ratios, mib):
    cols = list(summary)
    print(f"\nNOTE: {NOTE}.\n")
    print(f"{'job (MiB/s)':<16}" + "".join(f"{c:>12}" for c in cols) + f"{'tabique/qemu':>14}")
    for job, *_ in JOBS:
        print(f"{job:<16}" + "".join(f"{_fmt(summary[c][job], '.1f'):>12}" for c in cols)
              + f"{_fmt(ratios[job], '.2f'):>14}")
    print(f"\nmedians; one TCP connection of {mib} MiB; tx = guest -> nested host, "
          f"rx = nested host -> guest; guest: 1 vCPU")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="measured boots per VMM")
    ap.add_argument("--warmup", type=int, default=0, help="unmeasured boots per VMM first")
    ap.add_argument("--mib", type=int, default=32, help="MiB per transfer")
    ap.add_argument("--vmms", default="tabique,qemu")
    ap.add_argument("--memory", default="512M")
    ap.add_argument("--tabique", default=os.environ.get("TABIQUE_BIN")
                    or os.path.join(ROOT, "build", "tabique"))
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    return ap.parse_args()


def measure(host, args, vmms, guest):
    runs = []
    for i in range(args.warmup + args.runs):
        warm = i < args.warmup
        for vmm in vmms:  # alternate: a slow phase of the host hits all
            argv = vmm_argv(vmm, os.path.abspath(args.tabique), guest, args.memory)
            begin = time.monotonic()
            figures = measure_vmm(host, vmm, argv, args.mib << 20)
            print(f"  {'warm-up' if warm else f'run {i + 1}'} {vmm:<8} "
                  + "  ".join(f"{k} {v:.1f}" for k, v in figures.items())
                  + f"  ({time.monotonic() - begin:.0f} s)", flush=True)
            if not warm:
                runs.append({"vmm": vmm, "round": i, "figures": figures})
    return runs


def main():
    args = parse_args()
    vmms = args.vmms.split(",")
    for vmm in vmms:
        vmm_argv(vmm, "", {"kernel": "", "initrd": "", "cmdline": ""}, "1M")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.results, exist_ok=True)
    tools = os.path.join(args.results, f"net-tools-{stamp}")
    build_tools(tools)
    try:
        guest = prepare_default_guest(os.path.abspath(args.tabique))
        module = tun_module()
    except (NestedHostError, hostimage.BuildError, OSError) as e:
        print(f"net.py: cannot prepare: {e}", file=sys.stderr)
        return 1
    log = os.path.join(args.results, f"net-{stamp}.console.log")
    print(f"booting the nested host (console log: {log}) ...", flush=True)
    with NestedHost(log_path=log) as host:
        setup_host(host, tools, module, args.mib << 20)
        runs = measure(host, args, vmms, guest)
    summary, ratios = summarize(runs, vmms)
    print_table(summary, ratios, args.mib)
    out = os.path.join(args.results, f"net-{stamp}.json")
    with open(out, "w") as f:
        json.dump({"note": NOTE, "date": stamp,
                   "config": {"runs": args.runs, "warmup": args.warmup, "mib": args.mib,
                              "memory": args.memory, "jobs": JOBS, "guest": guest,
                              "argv": {v: vmm_argv(v, args.tabique, guest, args.memory)
                                       for v in vmms}},
                   "summary": summary, "ratios": ratios, "runs": runs}, f, indent=1)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
