"""Fixtures for the manager's tests: a private store ($TABIQUE_HOME) per test and
tiny bzImage guests (tiny_kernel.S) that boot in milliseconds even where KVM
emulates guest kernel code, so that many VMs can run at once on this host."""

import json
import os
import pty
import select
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TABIQUE_BUILD", os.path.join(ROOT, "build"))


@pytest.fixture(scope="session")
def tabique_bin():
    path = os.environ.get("TABIQUE_BIN", os.path.join(BUILD, "tabique"))
    assert os.access(path, os.X_OK), f"{path} is not built: run scripts/build"
    return path


@pytest.fixture(scope="session")
def tiny():
    """{"halt": path, "echo": path} of the tiny guests built by meson."""
    kernels = {v: os.path.join(BUILD, "tests", "manage", f"tiny-{v}.bzImage")
               for v in ("halt", "echo")}
    for path in kernels.values():
        assert os.path.exists(path), f"{path} is not built: run scripts/build"
    return kernels


class Store:
    """tabique with TABIQUE_HOME pointing at a fresh folder."""

    def __init__(self, binary, home):
        self.binary = binary
        self.home = home
        self.env = dict(os.environ, TABIQUE_HOME=home)

    def run(self, *args, check=True, timeout=120):
        res = subprocess.run([self.binary, *args], env=self.env, capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError(f"tabique {' '.join(args)} exited {res.returncode}:\n"
                                 f"{res.stdout}{res.stderr}")
        return res

    def list(self):
        return {vm["name"]: vm for vm in json.loads(self.run("list", "--json").stdout)}

    def info(self, name):
        return json.loads(self.run("info", name, "--json").stdout)

    def folder(self, name):
        return os.path.join(self.home, "vms", name)

    def create_tiny(self, name, kernel, *extra):
        return self.run("create", name, "--kernel", kernel, "--memory", "32M",
                        "--cmdline", "tiny", *extra)

    def wait_state(self, name, state, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            vm = self.list().get(name)
            if vm and vm["state"] == state:
                return vm
            time.sleep(0.1)
        raise AssertionError(f"{name} not {state} after {timeout} s: {self.list().get(name)}")

    def console_log(self, name):
        try:
            with open(os.path.join(self.folder(name), "console.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_console_log(self, name, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.console_log(name):
                return
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in {name}'s console log: "
                             f"{self.console_log(name)!r}")

    def processes(self):
        """Pids of every process whose command line mentions this store."""
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
                with open(f"/proc/{pid}/stat") as f:
                    zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                continue
            if self.home.encode() in cmd and not zombie:
                found.append(int(pid))
        return found


@pytest.fixture
def store(tabique_bin, tmp_path):
    s = Store(tabique_bin, str(tmp_path / "home"))
    yield s
    # Whatever a test left running goes; a failing test must not leave VMMs behind.
    for pid in s.processes():
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


class Console:
    """`tabique console NAME` on a pseudo-terminal, as a user would run it."""

    def __init__(self, store, name):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([store.binary, "console", name], env=store.env,
                                     stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.out = b""

    def send(self, data):
        os.write(self.master, data)

    def expect(self, data, timeout=20):
        deadline = time.monotonic() + timeout
        while data not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {data!r} on the console; got {self.out!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.out += os.read(self.master, 4096)
                except OSError:
                    break
        return self.out

    def wait(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        finally:
            try:
                while select.select([self.master], [], [], 0.1)[0]:
                    self.out += os.read(self.master, 4096)
            except OSError:
                pass
            os.close(self.master)
