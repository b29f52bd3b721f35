"""The manager with tiny guests: define, start, list, console, pause, stop,
kill, remove; what a user sees in `tabique list` at every step."""

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import time

from conftest import Console


def test_create_shows_a_stopped_vm_with_its_resources(store, tiny):
    store.create_tiny("web", tiny["halt"], "--cpus", "2")
    vm = store.list()["web"]
    assert (vm["state"], vm["cpus"], vm["memory"]) == ("stopped", 2, 32 << 20)
    assert vm["pid"] is None
    with open(os.path.join(store.folder("web"), "vm.json")) as f:
        definition = json.load(f)
    assert definition["name"] == "web" and definition["kernel"] == tiny["halt"]
    table = store.run("list").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATE", "CPUS", "MEMORY", "UPTIME", "PID"]
    assert table[1].split()[:4] == ["web", "stopped", "2", "32M"]


def test_set_changes_a_stopped_vm(store, tiny):
    store.create_tiny("web", tiny["halt"])
    store.run("set", "web", "--cpus", "3", "--memory", "64M")
    info = store.info("web")
    assert (info["cpus"], info["memory"]) == (3, 64 << 20)


def test_start_runs_the_vm_in_the_background(store, tiny):
    store.create_tiny("web", tiny["halt"])
    out = store.run("start", "web").stdout
    vm = store.list()["web"]
    assert vm["state"] == "running" and f"pid {vm['pid']}" in out
    assert os.path.exists(f"/proc/{vm['pid']}")
    store.wait_console_log("web", "tiny guest ready")
    store.run("kill", "web")
    vm = store.wait_state("web", "stopped")
    assert "killed" in vm["reason"]


def test_three_vms_one_killed_the_others_keep_running(store, tiny):
    names = ["a", "b", "c"]
    for name in names:
        store.create_tiny(name, tiny["echo"])
        store.run("start", name)
    vms = store.list()
    assert all(vms[n]["state"] == "running" for n in names)
    os.kill(vms["b"]["pid"], signal.SIGKILL)
    crashed = store.wait_state("b", "crashed")
    assert "killed by signal 9" in crashed["reason"]
    row = [l for l in store.run("list").stdout.splitlines() if l.startswith("b ")][0]
    assert "crashed" in row and "killed by signal 9 (SIGKILL)" in row
    assert not os.path.exists(os.path.join(store.folder("b"), "api.sock"))
    for name in ("a", "c"):
        assert store.list()[name]["state"] == "running"
        con = Console(store, name)
        con.expect(b"Ctrl-A x detaches")
        con.send(f"hello-{name}".encode())
        con.expect(f"hello-{name}".encode())
        con.send(b"\x01x")
        assert con.wait() == 0
    assert store.list()["a"]["state"] == "running"
    store.run("start", "b")  # a crashed VM starts again
    assert store.list()["b"]["state"] == "running"


def test_guest_poweroff_shows_stopped_with_the_reason(store, tiny):
    store.create_tiny("web", tiny["echo"])
    store.run("start", "web")
    con = Console(store, "web")
    con.expect(b"Ctrl-A x detaches")
    con.send(b"bye!")
    con.expect(b"bye!")
    assert con.wait() == 0
    assert b"web stopped" in con.out
    vm = store.wait_state("web", "stopped")
    assert vm["reason"] == "the guest powered off"


def test_stop_falls_back_to_a_hard_stop(store, tiny):
    # The tiny guest has no ACPI: the power button goes unanswered.
    store.create_tiny("web", tiny["halt"])
    store.run("start", "web")
    begin = time.monotonic()
    res = store.run("stop", "web", "--timeout", "1")
    assert time.monotonic() - begin < 15
    assert "stopping it hard" in res.stderr
    assert store.list()["web"]["state"] == "stopped"
    store.run("start", "web")  # and round again
    assert store.list()["web"]["state"] == "running"
    store.run("stop", "web", "--timeout", "0")
    assert store.list()["web"]["state"] == "stopped"


def test_pause_and_resume(store, tiny):
    store.create_tiny("web", tiny["echo"])
    store.run("start", "web")
    store.run("pause", "web")
    assert store.list()["web"]["state"] == "paused"
    con = Console(store, "web")
    con.expect(b"Ctrl-A x detaches")
    con.send(b"ping")
    time.sleep(1.5)
    assert b"ping" not in con.out.split(b"detaches", 1)[1]  # a paused guest does not echo
    store.run("resume", "web")
    con.expect(b"ping")
    con.send(b"\x01x")
    con.wait()
    res = store.run("resume", "web", check=False)
    assert res.returncode == 1 and "not paused" in res.stderr or "paused" in res.stderr


def test_api_answers_curl(store, tiny):
    store.create_tiny("web", tiny["halt"], "--cpus", "2")
    store.run("start", "web")
    sock = os.path.join(store.folder("web"), "api.sock")
    out = subprocess.run(["curl", "-sS", "--unix-socket", sock, "http://localhost/v1/vm"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    vm = json.loads(out)
    assert (vm["state"], vm["cpus"], vm["memory"]) == ("running", 2, 32 << 20)
    assert vm["pid"] == store.list()["web"]["pid"]


def test_api_shows_where_each_vcpu_is(store, tiny):
    """GET /v1/vm/vcpus: the tiny guest ends in `cli; hlt` in its 64-bit entry,
    loaded at 1 MiB; its second vCPU was never started by it."""
    store.create_tiny("web", tiny["halt"], "--cpus", "2")
    store.run("start", "web")
    sock = os.path.join(store.folder("web"), "api.sock")
    deadline = time.monotonic() + 120
    while True:
        out = subprocess.run(["curl", "-sS", "--unix-socket", sock,
                              "http://localhost/v1/vm/vcpus"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        boot, ap = json.loads(out)["vcpus"]
        if boot["state"] == "halted" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (boot["state"], boot["mode"], boot["cpl"]) == ("halted", "long", 0)
    assert 0x100200 < int(boot["rip"], 16) < 0x101000, boot["rip"]
    assert boot["interrupts_enabled"] is False
    assert (ap["index"], ap["state"], ap["mode"]) == (1, "uninitialized", "real")
    assert store.list()["web"]["state"] == "running"  # the read's pause is undone
    # The same on `tabique console`, with Ctrl-A r.
    con = Console(store, "web")
    con.expect(b"Ctrl-A x detaches")
    con.send(b"\x01r")
    con.expect(b"vCPU 1: uninitialized, real mode, CPL 0, rip 0xfff0")
    assert re.search(rb"vCPU 0: halted, long mode, CPL 0, rip 0x10[0-9a-f]{4} .*"
                     rb"\(interrupts off\)", con.out), con.out
    con.send(b"\x01x")
    assert con.wait() == 0


def test_rm_removes_the_folder_and_its_own_disks(store, tiny, tmp_path):
    user_disk = tmp_path / "user.img"
    user_disk.write_bytes(b"\0" * (1 << 20))
    store.create_tiny("web", tiny["halt"], "--disk", str(user_disk), "--new-disk", "64M")
    own = [d["path"] for d in store.info("web")["disks"] if d["path"] != str(user_disk)]
    assert len(own) == 1 and os.path.exists(own[0])
    store.run("rm", "web")
    assert not os.path.exists(store.folder("web"))
    assert not os.path.exists(own[0]) and user_disk.exists()
    assert "web" not in store.list()


def _fds(pid):
    return sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))


def test_twenty_vms_at_once_and_nothing_left_after(store, tiny):
    names = [f"vm{i:02d}" for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda n: store.create_tiny(n, tiny["halt"]), names))
        list(pool.map(lambda n: store.run("start", n, timeout=300), names))
    vms = store.list()
    assert sorted(vms) == names
    assert all(vm["state"] == "running" for vm in vms.values())
    pids = {vm["pid"] for vm in vms.values()}
    assert len(pids) == 20
    for name in names:
        store.wait_console_log(name, "tiny guest ready", timeout=120)
    # Each VMM holds only its own VM's files: nothing of another VM's folder; each
    # monitor holds its log, its pipe to `start`, /dev/null, nothing else.
    for name, vm in vms.items():
        others = [p for p in _fds(vm["pid"]) if "/vms/" in p and f"/vms/{name}/" not in p]
        assert others == [], f"{name}'s VMM holds {others}"
        with open(os.path.join(store.folder(name), "state.json")) as f:
            monitor = json.load(f)["monitor_pid"]
        fds = _fds(monitor)
        assert fds.count("/dev/null") == 3 and len(fds) == 5, fds
        assert fds[-1].endswith(f"/vms/{name}/vmm.log") or \
            f"{store.folder(name)}/vmm.log" in fds, fds
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda n: store.run("rm", "--force", n, timeout=300), names))
    assert store.list() == {}
    assert os.listdir(os.path.join(store.home, "vms")) == []
    assert store.processes() == []
