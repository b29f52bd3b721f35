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
    out, status = host.run(f"test -r {hostimage.INIT_SCRIPT} && "
                           f"! touch /etc/nested-host-probe 2>/dev/null && "
                           f"touch /tmp/probe && echo fine")
    assert status == 0 and "fine" in out, out


def test_qemu_boots_kernel_to_init(host):
    image = hostimage.ensure_built()
    vm = InnerVM(host, qemu_argv(image["kernel"], image["initrd"],
                                 "console=ttyS0 tabique.mode=guest"))
    vm.start()
    vm.expect("Run /init as init process", 240)
    vm.expect(r"guest mode ok, 1 cpus", 60)
    assert vm.wait_exit(60) == 0


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
