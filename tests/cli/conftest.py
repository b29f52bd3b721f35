"""Shared helpers for the command-line tests: run tabique on a pseudo-terminal."""
import os
import pty
import select
import subprocess
import termios
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def tabique():
    path = os.environ.get("TABIQUE_BIN", os.path.join(ROOT, "build", "tabique"))
    assert os.access(path, os.X_OK), f"{path} is not built: run scripts/build"
    return path


class Result:
    def __init__(self, status, output, tty_restored):
        self.status = status  # exit code, or -signal
        self.output = output  # everything printed, stdout and stderr
        self.tty_restored = tty_restored

    @property
    def lines(self):
        return [l for l in self.output.replace("\r", "").split("\n") if l.strip()]


def run_on_pty(argv, timeout=60, preexec=None):
    """Runs argv with stdin/stdout/stderr on a fresh pty, as a user's terminal.

    Returns a Result; checks afterwards that the terminal settings are the ones
    it had before (tabique must never leave it in raw mode)."""
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=preexec)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                out += chunk
            if proc.poll() is not None and not ready:
                break
        else:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{argv} did not finish in {timeout}s; output: {out!r}")
        after = termios.tcgetattr(slave)
    finally:
        os.close(master)
        os.close(slave)
    return Result(proc.returncode, out.decode(errors="replace"), before == after)
