"""`tabique run` boots Debian's kernel with the default guest, checked by what
the guest prints on its serial console.  Each boot costs ~20-40 s in the
nested host, so the checks on a running guest share one boot per
configuration (class-scoped fixture)."""

import re
import time

import pytest

from conftest import InnerVM, NestedHostError, READY, tabique_run_argv

MIB = 1 << 20
UNITS = {"M": MIB, "G": 1 << 30}

# Exit statuses documented by `tabique run --help`.
EXIT_POWEROFF, EXIT_REBOOT, EXIT_CRASH = 0, 3, 4


def size_bytes(text):
    return int(text[:-1]) * UNITS[text[-1]]


def number_line(out):
    """The last line of out that is a bare number (kernel messages may be
    interleaved with the output of a command)."""
    found = re.findall(r"^\s*(\d+)\s*$", out, re.M)
    assert found, f"no number in guest output {out!r}"
    return int(found[-1])


@pytest.fixture(scope="class")
def booted(request, nested_host, tabique_bin, default_guest):
    """A default guest booted with (cpus, memory), kept for the class."""
    cpus, memory = request.param
    argv = tabique_run_argv(tabique_bin, default_guest, cpus, memory)
    vm = InnerVM(nested_host, argv, owner="class").start()
    vm.cpus, vm.memory = cpus, memory
    vm.boot_seconds = vm.wait_ready()
    yield vm
    vm.stop()


@pytest.mark.parametrize("booted", [(1, "1G"), (2, "4G")], indirect=True,
                         ids=["1cpu-1G", "2cpu-4G"], scope="class")
class TestRunningGuest:
    def test_shell_runs_typed_command(self, booted):
        booted.send("echo $((6*7))\n")
        booted.expect(r"\n42\n", 30, "42 from `echo $((6*7))`")
        booted.expect(booted.PROMPT.pattern, 30)

    def test_nproc_matches_cpus(self, booted):
        out, _ = booted.shell("nproc")
        assert number_line(out) == booted.cpus

    def test_memtotal_matches_memory(self, booted):
        out, _ = booted.shell("grep MemTotal /proc/meminfo")
        m = re.search(r"MemTotal:\s+(\d+) kB", out)
        assert m, f"no MemTotal in {out!r}"
        total, want = int(m.group(1)) * 1024, size_bytes(booted.memory)
        # Within 10%. Debian's kernel keeps ~57 MiB for itself (code, bss,
        # struct pages) whatever the RAM size, so 512M gives 89% (QEMU too):
        # the guests here have 1G and 4G.
        assert 0.9 * want <= total <= want, (
            f"MemTotal {total / MIB:.0f} MiB for --memory {booted.memory}")

    def test_clock_matches_host(self, booted):
        # The nested host's clock is the outer machine's (test_nested_host).
        out, _ = booted.shell("date +%s")
        drift = number_line(out) - time.time()
        assert abs(drift) < 120, f"guest clock off by {drift:.0f} s"

    def test_poweroff_exits_0(self, booted):
        booted.send("poweroff\n")
        rc = booted.wait_exit(120)
        assert rc == EXIT_POWEROFF, f"stderr: {booted.stderr()!r}"


def test_reboot_exits_3(tabique_vm):
    vm = tabique_vm()
    vm.wait_ready()
    vm.send("reboot\n")
    rc = vm.wait_exit(120)
    assert rc == EXIT_REBOOT, f"stderr: {vm.stderr()!r}"


def test_panic_exits_4_with_reason(tabique_vm):
    vm = tabique_vm()
    vm.wait_ready()
    vm.send("echo c > /proc/sysrq-trigger\n")
    rc = vm.wait_exit(120)
    err = vm.stderr()
    assert rc == EXIT_CRASH, f"stderr: {err!r}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "tabique said nothing on stderr about the crash"
    assert len(lines) == 1, f"the reason should be one line: {err!r}"


def test_on_reboot_restart_boots_again(tabique_vm):
    vm = tabique_vm(extra=["--on-reboot", "restart"])
    vm.wait_ready()
    vm.send("reboot\n")
    try:
        vm.wait_ready()
    except NestedHostError as e:
        pytest.fail(f"no second {READY!r} after reboot: {e}")
    vm.send("poweroff\n")
    assert vm.wait_exit(120) == EXIT_POWEROFF
