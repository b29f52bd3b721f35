"""NestedHost: a disposable AMD-V machine emulated by QEMU TCG, for running
real Linux guests under KVM on machines whose own /dev/kvm is too slow.

    with NestedHost() as host:
        out, status = host.run("nproc")
        host.send("build/tabique run ...\\n")
        host.expect(r"tabique: default guest ready", timeout=120)

The host's root filesystem is the outer machine's, read-only over 9p (see
host-init.sh), so paths are the same inside and out.  Its console is ttyS0,
a real tty with a shell on it; send()/expect() talk to that tty directly.
Every wait has a timeout, and QEMU dies with the NestedHost (or with this
process, via PR_SET_PDEATHSIG).
"""

import codecs
import ctypes
import itertools
import os
import re
import signal
import subprocess
import threading
import time

import hostimage

QEMU = "qemu-system-x86_64"
PROMPT = "nested-host# "
TAIL_LINES = 40


class NestedHostError(Exception):
    pass


class NestedHostTimeout(NestedHostError):
    pass


class NestedHostDied(NestedHostError):
    """QEMU itself went away under a test (its output ended)."""


def _die_with_parent():
    # Runs in the child between fork and exec: an orphaned TCG QEMU would
    # otherwise spin on two cores forever.  (The signal comes when the
    # *thread* that started QEMU ends: start hosts from a long-lived thread.)
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Console:
    """Collects QEMU's serial output in a thread; expect() searches it."""

    MAX_BUF = 8 << 20

    def __init__(self, stream, log):
        self._stream = stream
        self._log = log
        self._buf = ""
        self._pos = 0  # expect() never matches before this point
        self._eof = False
        self._cond = threading.Condition()
        self.echo = None  # a binary file that also gets everything (run -i)
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        fd = self._stream.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if self._log:
                self._log.write(data)
                self._log.flush()
            if self.echo and data:
                self.echo.write(data)
                self.echo.flush()
            with self._cond:
                # Carriage returns are dropped: nested ttys turn one newline
                # into \r\r\n, and no pattern needs them.
                self._buf += decoder.decode(data, final=not data).replace(
                    "\r", "")
                self._trim()
                self._eof = not data
                self._cond.notify_all()
            if not data:
                return

    def _trim(self):
        if len(self._buf) > self.MAX_BUF:
            cut = min(self._pos, len(self._buf) - (1 << 20))
            self._buf = self._buf[cut:]
            self._pos -= cut

    def expect(self, pattern, timeout, what=None):
        """Wait for pattern (regex str or compiled) after the last match.

        Returns the match and consumes the output up to its end.  Raises
        NestedHostTimeout, or NestedHostError if QEMU's output ended.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        what = what or f"/{regex.pattern}/"
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = regex.search(self._buf, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                if self._eof:
                    trouble = self.kernel_trouble()
                    raise NestedHostDied(
                        f"nested host console closed while waiting for {what}; "
                        + (f"its kernel said:\n{trouble}\n" if trouble else "")
                        + f"last output:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NestedHostTimeout(
                        f"timed out after {timeout:g} s waiting for {what}; "
                        f"last {TAIL_LINES} lines of console:\n{self.tail()}")
                self._cond.wait(left)

    def skip_to_end(self):
        """Forget output seen so far: later expects only see newer text."""
        with self._cond:
            self._pos = len(self._buf)

    def tail(self, lines=TAIL_LINES):
        return "\n".join(self._buf.splitlines()[-lines:])

    KERNEL_TROUBLE = re.compile(r"^.*(?:Kernel panic|BUG:|Oops|general protection|"
                                r"WARNING: CPU|corrupted stack).*$", re.M)

    def kernel_trouble(self, lines=6):
        """The first lines where the host's kernel said it was in trouble: a
        panic's stack trace fills the tail, its reason comes before it."""
        found = self.KERNEL_TROUBLE.findall(self._buf[-2_000_000:])
        return "\n".join(found[:lines])

    def join(self, timeout):
        """Wait for the reader to see QEMU's output end."""
        self._thread.join(timeout)


class NestedHost:
    """A booted nested test host; use as a context manager."""

    def __init__(self, cpus=2, memory="6G", rw_shares=(), log_path=None,
                 boot_timeout=180, mttcg=True, quiet=True):
        """rw_shares: outer folders made writable inside (same path).
        log_path: file that receives every byte of the console."""
        self.cpus = cpus
        self.memory = memory
        self.rw_shares = [os.path.abspath(p) for p in rw_shares]
        if _hidden(REPO) and REPO not in self.rw_shares:
            self.rw_shares.append(REPO)
        self.log_path = log_path
        self.boot_timeout = boot_timeout
        self.mttcg = mttcg
        self.quiet = quiet
        self.boot_seconds = None
        self._proc = None
        self._log = None
        self.console = None
        self._ids = itertools.count(1)
        # What a caller runs in the foreground of the tty (tests/e2e keeps its
        # running VMM here); forgotten when the host restarts.
        self.current_vm = None

    # --- lifecycle ----------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        image = hostimage.ensure_built()
        self._log = open(self.log_path, "ab") if self.log_path else None
        begin = time.monotonic()
        self._proc = subprocess.Popen(
            self._qemu_argv(image), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        self.console = Console(self._proc.stdout, self._log)
        try:
            m = self.expect(r"tabique-nested-host: (ready|FATAL.*)",
                            self.boot_timeout, "nested host ready line")
            if m.group(1) != "ready":
                raise NestedHostError(f"nested host failed to boot: "
                                      f"{m.group(1)}\n{self.tail()}")
            self._sync()
        except BaseException:
            self.close()
            raise
        self.boot_seconds = time.monotonic() - begin

    def _sync(self, timeout=60):
        """Get a known state on the host's tty: echo off, shell at prompt."""
        self.console.skip_to_end()
        self.send("\n")
        out, status = self.run("stty sane -echo; echo ok", timeout=timeout)
        if status != 0:
            raise NestedHostError(f"nested host shell not usable: {out}")

    def _qemu_argv(self, image):
        accel = "tcg,thread=multi" if self.mttcg else "tcg,thread=single"
        argv = [
            QEMU, "-accel", accel, "-cpu", "max",
            "-smp", str(self.cpus), "-m", self.memory,
            "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-rtc", "base=utc",
            "-kernel", image["kernel"], "-initrd", image["initrd"],
            "-append", self._cmdline(),
            "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,"
                       "readonly=on,multidevs=remap",
        ]
        for i, path in enumerate(self.rw_shares):
            argv += ["-virtfs", f"local,path={path},mount_tag=rw{i},"
                                "security_model=none,multidevs=remap"]
        return argv

    def _cmdline(self):
        args = ["console=ttyS0", "panic=-1", f"tabique.epoch={int(time.time())}"]
        if self.quiet:
            args.append("quiet")
        shares = []
        for i, path in enumerate(self.rw_shares):
            if not re.fullmatch(r"/[\w./+-]*", path):
                raise NestedHostError(f"share path unusable on a kernel "
                                      f"command line: {path!r}")
            shares.append(f"rw{i}:{path}")
        if shares:
            args.append("tabique.rw=" + ",".join(shares))
        return " ".join(args)

    def close(self, grace=10):
        """Power the host off (exit its shell), kill QEMU if that stalls."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None and grace > 0:
            try:
                proc.stdin.write(b"\nexit\n")
                proc.stdin.flush()
                proc.wait(timeout=grace)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        self.console.join(5)  # it writes to the log until the end
        if self._log:
            self._log.close()
            self._log = None

    def restart(self):
        self.close(grace=0)
        self.current_vm = None
        self.start()

    def wait(self, timeout):
        """Wait up to timeout seconds for QEMU to exit; returns alive."""
        try:
            self._proc.wait(timeout)
        except (AttributeError, subprocess.TimeoutExpired):
            pass
        return self.alive

    @property
    def alive(self):
        return self._proc is not None and self._proc.poll() is None

    # --- the console ----------------------------------------------------------

    def exit_status(self):
        """How QEMU ended, for error messages: "" while it runs."""
        proc = self._proc
        if proc is None:
            return "closed by the harness"
        try:
            rc = proc.wait(5)
        except subprocess.TimeoutExpired:
            return ""
        if rc < 0:
            return f"QEMU was killed by signal {-rc} ({signal.Signals(-rc).name})"
        return f"QEMU exited with status {rc}"

    def send(self, text):
        """Type text on the host's ttyS0 (use \\n for Enter)."""
        if not self.alive:
            raise NestedHostDied(f"nested host is not running ({self.exit_status()}); "
                                 + self._death_notes())
        data = text.encode() if isinstance(text, str) else text
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def expect(self, pattern, timeout, what=None):
        """See Console.expect; a QEMU that died says how."""
        try:
            return self.console.expect(pattern, timeout, what)
        except NestedHostDied as e:
            raise NestedHostDied(f"{self.exit_status()}: {e}") from None

    def skip_to_end(self):
        self.console.skip_to_end()

    def _death_notes(self):
        if not self.console:
            return ""
        trouble = self.console.kernel_trouble()
        return ((f"its kernel said:\n{trouble}\n" if trouble else "")
                + "last output:\n" + self.console.tail())

    def tail(self, lines=TAIL_LINES):
        return self.console.tail(lines)

    def run(self, cmd, timeout=60):
        """Run a shell command line on the host; returns (output, status).

        Output is stdout+stderr (without carriage returns).  The markers are
        printed with printf so the echoed command line can never match them.
        """
        if len(cmd) > 3000:  # the tty's line buffer is 4 KiB in canonical mode
            raise ValueError("command too long for the host's tty")
        tag = f"{os.getpid()}x{next(self._ids)}"
        self.send(f"printf '\\n__BEG%s__\\n' {tag}; {{\n{cmd}\n}}; "
                  f"printf '\\n__END%s_%s__\\n' {tag} $?\n")
        self.expect(f"__BEG{tag}__\n", timeout, f"start of `{cmd}`")
        m = self.expect(f"(?s)(.*?)\n__END{tag}_(\\d+)__", timeout,
                        f"end of `{cmd}`")
        return m.group(1), int(m.group(2))

    def check(self, cmd, timeout=60):
        """run() that raises unless the command exits 0; returns output."""
        out, status = self.run(cmd, timeout)
        if status != 0:
            raise NestedHostError(f"`{cmd}` exited {status}:\n{out}")
        return out

    def recover(self, timeout=15):
        """Bring the host's shell back after a test left something on its tty
        (a VMM in the foreground, raw mode).  Restarts the host as a last
        resort.  Returns True if the host had to be restarted."""
        if self.alive:
            # Ctrl-A x quits tabique's console; Ctrl-C and Ctrl-\ stop other
            # foreground programs (when the tty is not raw); then fix the tty.
            for keys in ("\x01x", "\x03", "\x1c"):
                self.send(keys)
                time.sleep(0.5)
            try:
                self._sync(timeout)
                return False
            except NestedHostError:
                pass
        self.restart()
        return True


# --- helpers shared by tests/e2e, bench and run -----------------------------------

# Outer folders the nested host does not see: it mounts tmpfs (or proc, sysfs)
# over them.
HIDDEN_INSIDE = ("/tmp", "/run", "/var/tmp", "/dev/shm", "/proc", "/sys")


# This working tree: every NestedHost shares it in at the same path when it
# lies under one of those folders (a CI clone in /tmp, say).
REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def _under(path, folder):
    return path == folder or path.startswith(folder + "/")


def _hidden(real):
    return any(_under(real, d) for d in HIDDEN_INSIDE)


def visible_inside(path):
    """True if path reads the same inside the nested host as outside."""
    real = os.path.realpath(path)
    return _under(real, REPO) or not _hidden(real)


def prepare_default_guest(tabique_bin, timeout=900):
    """Run `tabique prepare-guest` here, outside the nested host (whose root
    filesystem is read-only); returns {"kernel", "initrd", "cmdline"}."""
    try:
        res = subprocess.run([tabique_bin, "prepare-guest"], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NestedHostError(f"tabique prepare-guest took over {timeout} s")
    if res.returncode != 0:
        raise NestedHostError(f"tabique prepare-guest exited {res.returncode}:"
                              f"\n{res.stderr.strip()}")
    guest = {}
    for line in res.stdout.splitlines():  # "kernel  PATH" etc.
        key, _, value = line.partition(" ")
        guest[key] = value.strip()
    for key in ("kernel", "initrd"):
        if key not in guest:
            raise NestedHostError(f"tabique prepare-guest printed no {key}:\n"
                                  f"{res.stdout}")
        if not visible_inside(guest[key]):
            raise NestedHostError(f"the default guest's {key} {guest[key]} is "
                                  f"not visible in the nested host: set "
                                  f"TABIQUE_CACHE outside {HIDDEN_INSIDE}")
    guest.setdefault("cmdline", "console=ttyS0 panic=-1 quiet")
    return guest
