"""Sanity checks of the nested test host itself, with QEMU as the inner VMM:
if these fail, failures in the other e2e tests say nothing about tabique."""

import re
import time

import hostimage
from conftest import InnerVM


def qemu_argv(kernel, initrd, cmdline, cpus=1, memory="512M"):
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host",
            "-smp", str(cpus), "-m", memory, "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline]


def test_host_has_kvm_with_svm(host):
    out, status = host.run("test -c /dev/kvm && grep -cw svm /proc/cpuinfo")
    assert status == 0, f"no /dev/kvm or no svm flag: {out!r}"
    assert int(out.split()[-1]) == host.cpus


def test_host_clock_matches_outer(host):
    out, _ = host.run("date +%s")
    drift = int(out.split()[-1]) - time.time()
    assert abs(drift) < 10, f"nested host clock off by {drift:.0f} s"


def test_host_root_is_outer_root_read_only(host):
    # test -w asks access(2), which says EROFS without writing anything.
    out, status = host.run(f"test -r {hostimage.INIT_SCRIPT} && ! test -w /etc "
                           f"&& touch /tmp/probe && echo fine")
    assert status == 0 and "fine" in out, out


def test_qemu_boots_default_guest(host, default_guest):
    vm = InnerVM(host, qemu_argv(default_guest["kernel"], default_guest["initrd"],
                                 default_guest["cmdline"]))
    vm.start()
    seconds = vm.wait_ready()
    print(f"QEMU -enable-kvm: default guest ready in {seconds:.1f} s")
    out, _ = vm.shell("echo $((6*7)); nproc")
    assert re.search(r"^42$", out, re.M) and re.search(r"^1$", out, re.M), out
    vm.send("poweroff\n")
    assert vm.wait_exit(120) == 0
