"""`tabique run` in the foreground of a terminal, with a tiny guest: the
console's Ctrl-A commands."""
import os
import pty
import re
import select
import subprocess
import time


class Terminal:
    """tabique on a fresh pty, as a user's terminal."""

    def __init__(self, argv):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.out = b""

    def expect(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {timeout} s; output: {self.out!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:  # the VMM is gone
                    assert re.search(pattern, self.out), f"no {pattern!r}: {self.out!r}"
        return re.search(pattern, self.out)

    def send(self, data):
        os.write(self.master, data)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        os.close(self.master)


def test_ctrl_a_r_shows_where_each_vcpu_is(tabique_bin, tiny):
    """The tiny guest ends in `cli; hlt` in its 64-bit entry at 1 MiB; it never
    starts its second vCPU. Ctrl-A r says so and the guest runs on; Ctrl-A x quits."""
    term = Terminal([tabique_bin, "run", "--kernel", tiny["halt"], "--cpus", "2",
                     "--memory", "32M"])
    try:
        term.expect(rb"tiny guest ready")
        term.send(b"\x01r")
        m = term.expect(rb"vCPU 0: (\w+), (\w+) mode, CPL (\d), rip (0x[0-9a-f]+).*"
                        rb"interrupts (on|off)")
        state, mode, cpl, rip, irqs = m.groups()
        if state != b"halted":  # it may not have reached its hlt yet: ask again
            time.sleep(1)
            term.out = b""
            term.send(b"\x01r")
            state, mode, cpl, rip, irqs = term.expect(
                rb"vCPU 0: (\w+), (\w+) mode, CPL (\d), rip (0x[0-9a-f]+).*"
                rb"interrupts (on|off)").groups()
        assert (state, mode, cpl, irqs) == (b"halted", b"long", b"0", b"off")
        assert 0x100200 < int(rip, 16) < 0x101000, rip
        term.expect(rb"vCPU 1: uninitialized, real mode, CPL 0, rip 0xfff0")
        assert b"\x01" not in term.out and b"r\x01" not in term.out  # not typed to the guest
        term.send(b"\x01x")
        assert term.proc.wait(30) == 5, term.out  # stopped from the host
    finally:
        term.close()
