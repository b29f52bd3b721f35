"""virtio-net with real Linux guests, in the nested test host: user-mode NAT
(DHCP, the guest reaching a server on the host, a host port forwarded to a
server in the guest) and a tap device (ping and HTTP across, with two cards
in one VM).  One boot per class; the servers on the nested host run in the
background of its shell, since the VMM holds the foreground.

Only loopback, libslirp's private 10.0.2.0/24 and a tap inside the
disposable nested host (192.168.77.0/24) are used: nothing leaves it.
"""

import os
import re
import secrets
import subprocess
import tempfile
import warnings

import pytest

from conftest import InnerVM, tabique_run_argv

import hostimage
from host import NestedHostTimeout

WEB = "/tmp/net-web"  # inside the nested host (tmpfs): the servers' folder
HTTP_PORT = 8000      # python's http.server on the nested host
FWD_PORT = 18080      # host port forwarded to the guest's port 80
TAP_HOST, TAP_GUEST = "192.168.77.1", "192.168.77.2"
BIG = 2 << 20         # bytes of the file checked end to end

# udhcpc runs a script for each event; the default guest has none.
DHCP_SCRIPT = ("printf '#!/bin/sh\\n[ \"$1\" = bound ] && ifconfig $interface $ip "
               "netmask $subnet up && route add default gw $router\\nexit 0\\n' "
               "> /tmp/dhcp.sh; chmod +x /tmp/dhcp.sh")


def guest_ok(vm, cmd, timeout=60):
    out, status = vm.shell(cmd, timeout)
    assert status == 0, f"guest `{cmd}` exited {status}: {out}"
    return out


def start_background(host, cmd, name):
    """Starts cmd in the background of the nested host's shell; its pid goes
    to /tmp/net-NAME.pid so that stop_background() ends exactly it."""
    host.check(f"({cmd}) >/tmp/net-{name}.log 2>&1 & echo $! > /tmp/net-{name}.pid")


def stop_background(host, name):
    host.run(f"kill $(cat /tmp/net-{name}.pid) 2>/dev/null; rm -f /tmp/net-{name}.pid")


def serve_files(host, bind, token):
    """A web folder on the nested host with a token file and a big random file."""
    stop_background(host, "http")
    host.check(f"rm -rf {WEB}; mkdir -p {WEB} && echo {token} > {WEB}/hello.txt && "
               f"head -c {BIG} /dev/urandom > {WEB}/big.bin && "
               f"md5sum {WEB}/big.bin | cut -d' ' -f1 > {WEB}/big.md5")
    start_background(host, f"cd {WEB} && exec python3 -m http.server --bind {bind} "
                           f"{HTTP_PORT}", "http")


def boot(host, argv, setup):
    """Boots argv in the nested host's foreground after setup(host).

    A boot that hangs silently (about one in 25 in the emulated host, see
    InnerVM.wait_ready) is retried once, setup included: quitting the hung
    VMM may have cost a restart of the host, and with it the servers and
    the tap."""
    for attempt in (0, 1):
        setup(host)
        vm = InnerVM(host, argv, owner="class").start()
        try:
            vm.wait_ready(retries=0)
            return vm
        except NestedHostTimeout:
            if attempt == 1:
                raise
            warnings.warn(f"a guest boot showed no ready line ({' '.join(argv)}); "
                          f"setting up and retrying once. Its vCPUs:\n"
                          + vm.where_are_the_vcpus())
            vm._abandon()


def dhcp(vm):
    guest_ok(vm, f"{DHCP_SCRIPT}; ip link set eth0 up; "
                 f"udhcpc -i eth0 -s /tmp/dhcp.sh -q -n -t 10 -T 2", 120)


@pytest.fixture(scope="class")
def user_vm(nested_host, tabique_bin, default_guest):
    """A guest with --net user and a forward of host port FWD_PORT to its
    port 80; a poller on the host fetches that port until it answers and
    leaves what it got in the web folder, where the guest can read it."""
    host = nested_host
    token = secrets.token_hex(8)

    def setup(h):
        stop_background(h, "poll")
        h.check("ip link set lo up")  # the nested host's init leaves it down
        serve_files(h, "127.0.0.1", token)
        start_background(h, f"for i in $(seq 600); do curl -sf -m 2 "
                            f"http://127.0.0.1:{FWD_PORT}/index.html > {WEB}/fwd.tmp && "
                            f"mv {WEB}/fwd.tmp {WEB}/fwd.txt && break; sleep 0.5; done",
                         "poll")

    argv = tabique_run_argv(tabique_bin, default_guest, 1, "512M",
                            ["--net", f"user,hostfwd=tcp::{FWD_PORT}-:80",
                             "--on-reboot", "restart"])
    vm = boot(host, argv, setup)
    vm.token = token
    try:
        dhcp(vm)
        yield vm
    finally:
        vm.stop()
        stop_background(host, "poll")
        stop_background(host, "http")


class TestUserNetwork:
    def test_dhcp_gives_the_default_address(self, user_vm):
        out = guest_ok(user_vm, "ip -4 addr show eth0; ip route")
        assert "inet 10.0.2.15/24" in out, out
        assert re.search(r"default via 10\.0\.2\.2 dev eth0", out), out

    def test_guest_fetches_a_file_from_the_host(self, user_vm):
        out = guest_ok(user_vm, f"wget -q -O - http://10.0.2.2:{HTTP_PORT}/hello.txt")
        assert user_vm.token in out

    def test_big_file_arrives_intact(self, user_vm):
        out = guest_ok(user_vm, f"wget -q -O - http://10.0.2.2:{HTTP_PORT}/big.bin | "
                                f"md5sum; wget -q -O - http://10.0.2.2:{HTTP_PORT}/big.md5",
                       180)
        sums = re.findall(r"\b[0-9a-f]{32}\b", out)
        assert len(sums) == 2 and sums[0] == sums[1], out

    def test_host_port_forward_reaches_a_guest_server(self, user_vm):
        marker = f"served-by-guest-{user_vm.token}"
        guest_ok(user_vm, f"mkdir -p /tmp/www && echo {marker} > /tmp/www/index.html && "
                          f"httpd -p 80 -h /tmp/www")
        # The host's poller leaves what it fetched in the web folder.
        out = guest_ok(user_vm, f"for i in $(seq 60); do wget -q -O - "
                                f"http://10.0.2.2:{HTTP_PORT}/fwd.txt && break; sleep 1; "
                                f"done", 120)
        assert marker in out, out

    def test_ipv6_router_advertisements(self, user_vm):
        """libslirp's IPv6 side runs on its timers: the guest autoconfigures."""
        out = guest_ok(user_vm, "for i in $(seq 30); do ip -6 addr show dev eth0 | "
                                "grep -q 'inet6 fec0::' && break; sleep 1; done; "
                                "ip -6 addr show dev eth0", 60)
        assert re.search(r"inet6 fec0::[0-9a-f:]+/64", out), out

    def test_reboot_keeps_the_network(self, user_vm):
        """A reboot makes a new card on the same backend: forwards and NAT go on."""
        user_vm.send("reboot\n")
        user_vm.wait_ready(retries=0)  # a retry would boot afresh: no reboot tested
        dhcp(user_vm)
        out = guest_ok(user_vm, f"wget -q -O - http://10.0.2.2:{HTTP_PORT}/hello.txt")
        assert user_vm.token in out


# --- tap ------------------------------------------------------------------------

def tun_module():
    """tun.ko for the nested host's kernel, which its image does not carry:
    taken from the same Debian kernel package, cached next to the image."""
    kpkg = hostimage.ensure_built()["kernel_package"]
    kver = kpkg[len("linux-image-"):]
    folder = os.path.join(hostimage.tabique_cache(), "net-e2e")
    path = os.path.join(folder, f"tun-{kver}.ko")
    if os.path.exists(path):
        return path
    debdir = os.path.join(folder, "debs")
    deb = hostimage.download(kpkg, debdir)
    member = f"./lib/modules/{kver}/kernel/drivers/net/tun.ko"
    with tempfile.TemporaryDirectory() as tmp:
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, member], stdin=tar.stdout, check=True)
        tar.wait()
        os.replace(os.path.join(tmp, member), path)
    os.unlink(deb)
    return path


@pytest.fixture(scope="class")
def tap_vm(nested_host, tabique_bin, default_guest):
    """A guest with two cards: eth0 on --net user, eth1 on a tap of the
    nested host addressed TAP_HOST/24."""
    host = nested_host
    module = tun_module()
    token = secrets.token_hex(8)

    def setup(h):
        h.check(f"[ -c /dev/net/tun ] || busybox insmod {module}")
        h.check(f"ip link del tbq0 2>/dev/null; ip tuntap add dev tbq0 mode tap && "
                f"ip addr add {TAP_HOST}/24 dev tbq0 && ip link set tbq0 up")
        serve_files(h, TAP_HOST, token)

    argv = tabique_run_argv(tabique_bin, default_guest, 1, "512M",
                            ["--net", "user", "--net", "tap,ifname=tbq0"])
    vm = boot(host, argv, setup)
    vm.token = token
    try:
        guest_ok(vm, f"ip link set eth1 up && ip addr add {TAP_GUEST}/24 dev eth1")
        yield vm
    finally:
        vm.stop()
        stop_background(host, "http")
        host.run("ip link del tbq0")


class TestTap:
    def test_two_cards_with_distinct_macs(self, tap_vm):
        out = guest_ok(tap_vm, "cat /sys/class/net/eth0/address /sys/class/net/eth1/address")
        macs = re.findall(r"52:54:00(?::[0-9a-f]{2}){3}", out)
        assert len(macs) == 2 and macs[0] != macs[1], out

    def test_ping_the_host(self, tap_vm):
        out = guest_ok(tap_vm, f"ping -c 3 -W 5 {TAP_HOST}", 60)
        assert "3 packets received" in out, out

    def test_fetch_across_the_tap(self, tap_vm):
        out = guest_ok(tap_vm, f"wget -q -O - http://{TAP_HOST}:{HTTP_PORT}/hello.txt")
        assert tap_vm.token in out
        out = guest_ok(tap_vm, f"wget -q -O - http://{TAP_HOST}:{HTTP_PORT}/big.bin | "
                               f"md5sum; wget -q -O - http://{TAP_HOST}:{HTTP_PORT}/big.md5",
                       120)
        sums = re.findall(r"\b[0-9a-f]{32}\b", out)
        assert len(sums) == 2 and sums[0] == sums[1], out
