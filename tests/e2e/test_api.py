"""The control API end to end, in the nested test host: the default guest runs
under `tabique run --api-socket`, and the API is driven with curl on that
socket.

Once the VMM holds the nested host's tty, the test can only type into the
guest; so the guest asks for the calls: api_agent.py listens on the nested
host's 127.0.0.1, the guest reaches it through --net user (10.0.2.2) with
busybox nc, and the agent runs curl --unix-socket. What must be seen while
the guest cannot answer (paused, shutting down) the agent prints on the tty.

Two VMM runs, three guest boots:
  1. GET /v1/vm; pause (a `date` typed meanwhile shows nothing) and resume
     (its output comes); counters move with disk I/O; shutdown: the ACPI
     power button, acpid in the guest powers off, the VMM exits 0;
  2. reboot (a second boot, boots = 2), then poweroff: the VMM exits 5.
Each time the socket is gone after the VMM.
"""

import json
import os
import re
import shutil

import pytest

from conftest import InnerVM, tabique_run_argv

HERE = os.path.dirname(os.path.abspath(__file__))
SOCK = "/tmp/api-e2e.sock"  # the nested host's own tmpfs
DISK = "/tmp/api-e2e.img"
PORT = 7070
NAME = "e2e-vm"
MEMORY = "384M"
NET_UP = "ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up"


@pytest.fixture
def agent(host):
    """api_agent.py in the background of the nested host's shell, its stdout
    on the tty (where its markers reach the test)."""
    # The nested host runs this machine's programs (its / is ours, over 9p).
    if shutil.which("curl") is None:
        pytest.fail("curl is needed on this machine, and so in the nested host: "
                    "apt-get install curl (scripts/install-deps does)")
    script = os.path.join(HERE, "api_agent.py")
    # The nested host's init leaves lo down; slirp reaches 127.0.0.1 through it.
    host.check(f"ip link set lo up && rm -f {SOCK} && truncate -s 16M {DISK}")
    host.check(f"/usr/bin/python3 {script} {SOCK} {PORT} 2>/tmp/api-agent.log & "
               f"echo $! >/tmp/api-agent.pid")
    yield
    host.run("kill $(cat /tmp/api-agent.pid) 2>/dev/null; rm -f /tmp/api-agent.pid "
             f"{DISK}; true", timeout=30)


def boot(host, tabique_bin, default_guest, *extra):
    argv = tabique_run_argv(tabique_bin, default_guest, 2, MEMORY,
                            ["--api-socket", SOCK, "--name", NAME, "--net", "user", *extra])
    vm = InnerVM(host, argv).start()
    vm.wait_ready()
    guest_ok(vm, NET_UP)
    return vm


def guest_ok(vm, cmd, timeout=60):
    out, status = vm.shell(cmd, timeout)
    assert status == 0, f"guest `{cmd}` exited {status}: {out!r}"
    return out


def ask(vm, line):
    """One line to the agent, from the guest; its one-line answer."""
    out = guest_ok(vm, f"echo '{line}' | nc 10.0.2.2 {PORT}", timeout=90)
    return out.strip().splitlines()[-1] if out.strip() else ""


def call(vm, method, path):
    """(status, JSON body or None) of an API call made by the agent."""
    answer = ask(vm, f"call {method} {path}")
    m = re.match(r"API (\d{3}) ?(.*)$", answer)
    assert m, f"the agent answered {answer!r}"
    return int(m.group(1)), json.loads(m.group(2)) if m.group(2) else None


def assert_socket_gone(host):
    out, _ = host.run(f"test -e {SOCK} && echo present || echo absent", timeout=30)
    assert out.strip().endswith("absent"), "the API socket outlived the VMM"


def test_state_pause_counters_and_shutdown(host, tabique_bin, default_guest, agent):
    vm = boot(host, tabique_bin, default_guest, "--disk", DISK)

    status, info = call(vm, "GET", "/v1/vm")
    assert status == 200, info
    assert info["name"] == NAME
    assert info["state"] == "running"
    assert info["cpus"] == 2
    assert info["memory"] == 384 << 20
    assert info["boots"] == 1 and info["uptime_seconds"] > 0
    ids = {d["id"]: d for d in info["devices"]}
    assert ids["vda"]["type"] == "block" and ids["vda"]["size"] == 16 << 20
    assert ids["net0"]["type"] == "net" and ids["net0"]["backend"] == "user"

    # Paused: the guest does not even echo what is typed. Resumed: all of it comes.
    assert ask(vm, "pause-for 12") == "ok"
    m = vm.expect(r"__AGENT_PAUSED (\d+) (\w+) (\d+)__", 60, "the agent's pause")
    assert m.group(1, 2, 3) == ("204", "paused", "409"), m.group(0)
    vm.send("date +__DATE_%s__\n")
    m = vm.expect(r"__AGENT_RESUMING__|__DATE_\d+__", 60, "the resume")
    assert m.group(0) == "__AGENT_RESUMING__", "the guest answered while paused"
    # The date and the agent's report race each other from here.
    m = vm.expect(r"(?s:__AGENT_RESUMED (\d+) (\w+)__.*?__DATE_\d+__|"
                  r"__DATE_\d+__.*?__AGENT_RESUMED (\d+) (\w+)__)", 60,
                  "the date typed while paused, and the resume")
    assert (m.group(1, 2) if m.group(1) else m.group(3, 4)) == ("204", "running"), m.group(0)

    # Counters move with disk I/O: 4 MiB read, 64 KiB written and flushed.
    status, before = call(vm, "GET", "/v1/vm/counters")
    assert status == 200, before
    guest_ok(vm, "dd if=/dev/vda of=/dev/null bs=64k count=64 && "
                 "dd if=/dev/zero of=/dev/vda bs=4k count=16 conv=fsync")
    status, after = call(vm, "GET", "/v1/vm/counters")
    assert after["vda"]["read_bytes"] >= before["vda"]["read_bytes"] + (4 << 20), after
    assert after["vda"]["write_bytes"] >= before["vda"]["write_bytes"] + (64 << 10), after
    assert after["vda"]["flush_ops"] > before["vda"]["flush_ops"], after
    assert after["vda"]["errors"] == 0, after
    assert after["net0"]["tx_packets"] > before["net0"]["tx_packets"], after

    # The power button: acpid in the guest runs poweroff, the VMM exits 0.
    assert ask(vm, "later PUT /v1/vm/shutdown") == "ok"
    vm.expect(r"__AGENT_DONE_202__", 60, "the shutdown call")
    rc = vm.wait_exit(120)
    assert rc == 0, f"tabique exited {rc} after the power button; stderr: {vm.stderr()!r}"
    assert_socket_gone(host)


def test_reboot_then_poweroff(host, tabique_bin, default_guest, agent):
    vm = boot(host, tabique_bin, default_guest)

    # Without --on-reboot restart: an API reboot boots the guest again all the same.
    assert ask(vm, "later PUT /v1/vm/reboot") == "ok"
    vm.expect(r"__AGENT_DONE_202__", 60, "the reboot call")
    vm.wait_ready()
    guest_ok(vm, NET_UP)
    status, info = call(vm, "GET", "/v1/vm")
    assert status == 200 and info["boots"] == 2, info
    assert info["state"] == "running"

    assert ask(vm, "later PUT /v1/vm/poweroff") == "ok"
    vm.expect(r"__AGENT_DONE_202__", 60, "the poweroff call")
    rc = vm.wait_exit(60)
    assert rc == 5, f"tabique exited {rc} after an API poweroff; stderr: {vm.stderr()!r}"
    assert "control API" in vm.stderr()
    assert_socket_gone(host)
