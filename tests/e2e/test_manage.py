"""The manager with the real Debian guest, in the nested test host: three VMs
at once, one VMM killed while the others answer on their consoles, graceful
stop and start again, and a linked clone whose writes stay its own.

Each VM's console is reached the way a user does, `tabique console NAME` in
the foreground of the host's tty; Ctrl-A x detaches. The store is in the
nested host's /tmp. The tests run in file order and share the store."""

import json
import re
import shlex
import time
import warnings

import pytest

from conftest import READY, InnerVM, NestedHostTimeout

HOME = "/tmp/tabique-e2e-home"
GUEST_PROMPT = r"@tabique:~# "  # the default guest's shell


@pytest.fixture(scope="module")
def tq(nested_host, tabique_bin, default_guest):
    """tq("list", "--json") runs tabique on the nested host with the e2e store."""
    def run(*args, timeout=300, check=True):
        cmd = " ".join(shlex.quote(a) for a in ["env", f"TABIQUE_HOME={HOME}",
                                                 tabique_bin, *args])
        out, status = nested_host.run(cmd + " 2>&1", timeout=timeout)
        if check:
            assert status == 0, f"tabique {' '.join(args)} exited {status}: {out}"
        return out
    run.host = nested_host
    run.bin = tabique_bin
    # The default guest, prepared outside: the nested host's / is read-only.
    run.guest = ["--kernel", default_guest["kernel"], "--initrd", default_guest["initrd"],
                 "--cmdline", default_guest["cmdline"]]
    yield run
    # No VM outlives the module (the host has no pkill: tabique removes its own).
    nested_host.run(f"for d in {HOME}/vms/*; do [ -d $d ] && env TABIQUE_HOME={HOME} "
                    f"{tabique_bin} rm --force $(basename $d); done; rm -rf {HOME}",
                    timeout=120)


def listing(tq):
    out = tq("list", "--json")
    return {vm["name"]: vm for vm in json.loads(out[out.index("["):])}


def wait_booted(tq, name, boots=1, timeout=420, retries=1):
    """Until the guest's ready line is in the VM's console log `boots` times
    (the log goes on across starts). A boot that shows nothing in time is
    retried once with a warning, as InnerVM.wait_ready does (about one boot in
    25 hangs silently in the emulated nested host, see conftest.py)."""
    deadline = time.monotonic() + timeout
    log = f"{HOME}/vms/{name}/console.log"
    while time.monotonic() < deadline:
        out, _ = tq.host.run(f"grep -c {shlex.quote(READY)} {log}", timeout=30)
        if out.strip().isdigit() and int(out.strip()) >= boots:
            return
        time.sleep(5)
    out, _ = tq.host.run(f"tail -5 {log}", timeout=30)
    # Where the silent guest is, for whoever hunts that hang.
    vcpus, _ = tq.host.run(f"curl -sS -m 15 --unix-socket {HOME}/vms/{name}/api.sock "
                           f"http://localhost/v1/vm/vcpus", timeout=30)
    if retries > 0:
        warnings.warn(f"{name} showed no ready line in {timeout} s; starting it again. "
                      f"Its console log ended:\n{out}\nIts vCPUs: {vcpus}")
        tq("kill", name)
        tq("start", name)
        return wait_booted(tq, name, boots, timeout, retries - 1)
    raise AssertionError(f"{name} did not boot in {timeout} s; console log ends:\n{out}\n"
                         f"Its vCPUs: {vcpus}")


def attach(tq, name):
    """`tabique console NAME` in the host's foreground, at the guest's prompt."""
    con = InnerVM(tq.host, ["env", f"TABIQUE_HOME={HOME}", tq.bin, "console", name],
                  limit=600)
    con.start()
    # Its greeting goes to stderr (a file here); Enter until the guest's prompt shows: what
    # is typed before the console is up is not for the guest.
    for attempt in range(12):
        con.send("\n")
        try:
            con.expect(GUEST_PROMPT, 5, "the guest's prompt")
            return con
        except NestedHostTimeout:
            continue
    raise AssertionError(f"no guest prompt on the console of {name}")


def detach(con):
    con.send("\x01x")
    assert con.wait_exit(60) == 0


def guest_ok(con, cmd, timeout=120):
    out, status = con.shell(cmd, timeout)
    assert status == 0, f"guest `{cmd}` exited {status}: {out!r}"
    return out


def test_three_vms_one_killed_the_others_answer(tq):
    for name in ("a", "b", "c"):
        tq("create", name, "--memory", "256M", *tq.guest)
        tq("start", name)
    for name in ("a", "b", "c"):
        wait_booted(tq, name)
    vms = listing(tq)
    assert [vms[n]["state"] for n in "abc"] == ["running"] * 3
    tq.host.check(f"kill -9 {vms['b']['pid']}")
    time.sleep(2)
    vms = listing(tq)
    assert vms["b"]["state"] == "crashed"
    assert "killed by signal 9" in vms["b"]["reason"]
    for name in ("a", "c"):
        assert vms[name]["state"] == "running"
        con = attach(tq, name)
        out = guest_ok(con, f"echo answer-{name}-$((6*7))")
        assert f"answer-{name}-42" in out
        detach(con)
    assert listing(tq)["a"]["state"] == "running"


def test_graceful_stop_and_start_again(tq):
    out = tq("stop", "a", "--timeout", "240", timeout=300)
    assert "stopped a: the guest powered off" in out
    assert "stopping it hard" not in out
    assert listing(tq)["a"]["state"] == "stopped"
    tq("start", "a")
    wait_booted(tq, "a", boots=2)
    con = attach(tq, "a")
    assert "up" in guest_ok(con, "echo up")
    detach(con)
    tq("kill", "a")
    tq("rm", "--force", "b")
    tq("rm", "--force", "c")


def test_linked_clone_boots_and_its_writes_stay_its_own(tq):
    tq("rm", "a")
    tq("create", "src", "--memory", "256M", "--new-disk", "64M", *tq.guest)
    tq("start", "src")
    wait_booted(tq, "src")
    con = attach(tq, "src")
    guest_ok(con, "printf SRC-DATA-1 | dd of=/dev/vda conv=notrunc 2>/dev/null; sync")
    con.send("poweroff\n")
    assert con.wait_exit(120) == 0  # the VM powers off: the console says so and ends
    time.sleep(1)
    assert listing(tq)["src"]["state"] == "stopped"

    begin = time.monotonic()
    tq("clone", "src", "dst", "--linked")
    assert time.monotonic() - begin < 30  # the nested host is slow; the real bound is below
    tq("start", "dst")
    wait_booted(tq, "dst")
    con = attach(tq, "dst")
    assert "SRC-DATA-1" in guest_ok(con, "dd if=/dev/vda bs=10 count=1 2>/dev/null")
    guest_ok(con, "printf DST-DATA-2 | dd of=/dev/vda conv=notrunc 2>/dev/null; sync")
    assert "DST-DATA-2" in guest_ok(con, "dd if=/dev/vda bs=10 count=1 2>/dev/null")
    con.send("poweroff\n")
    con.wait_exit(120)

    tq("start", "src")
    wait_booted(tq, "src", boots=2)
    con = attach(tq, "src")
    first = guest_ok(con, "dd if=/dev/vda bs=10 count=1 2>/dev/null")
    assert "SRC-DATA-1" in first and "DST-DATA-2" not in first
    con.send("poweroff\n")
    con.wait_exit(120)
    out = tq("rm", "src", check=False)
    assert "linked clone" in out
    tq("rm", "dst")
    tq("rm", "src")
    assert re.search(r"NAME\s+STATE", tq("list"))
