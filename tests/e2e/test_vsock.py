"""virtio-vsock end to end: the default guest (whose initramfs loads
vmw_vsock_virtio_transport) talks to programs in the nested host through
`tabique run --vsock cid=3,socket=/tmp/vm.sock`, both ways:

  guest -> host  the guest connects to CID 2 port 6000; tabique forwards the
                 stream to the Unix socket /tmp/vm.sock_6000, where
                 vsock_peer.py listens;
  host -> guest  vsock_peer.py connects to /tmp/vm.sock, writes
                 "CONNECT 5000\\n", gets "OK <port>\\n" once the guest's
                 `vsockcat listen 5000` accepted, and gets its line echoed;

then 1 MiB each way (ports 6001 and 5001), checked by sha256 at the other
end: long enough for the credit-based flow control to stop and restart both
sides many times.

busybox has no vsock tool, so vsockcat.c is built static here and reaches the
guest in an extra initramfs appended to the default one (Linux unpacks
concatenated archives). One boot (~30-60 s in the nested host) serves every
check.
"""

import gzip
import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import InnerVM, tabique_run_argv

HERE = os.path.dirname(os.path.abspath(__file__))
SOCK = "/tmp/vm.sock"  # the nested host's own tmpfs
CID = 3
PEER_LOG = "/tmp/vsock-peer.log"
BULK_SHA = hashlib.sha256(bytes(range(256)) * 4096).hexdigest()  # vsock_peer.BULK


def build_vsockcat(work):
    root = os.path.join(work, "root")
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    exe = os.path.join(root, "bin", "vsockcat")
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                    os.path.join(HERE, "vsockcat.c")], check=True)
    os.chmod(exe, 0o755)
    return root


@pytest.fixture(scope="module")
def vsock_guest(tabique_bin, default_guest):
    """The default guest with /bin/vsockcat; files next to the binary under
    test, which the nested host sees."""
    for tool in ("gcc", "cpio"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to build the guest's vsock tool")
    work = os.path.join(os.path.dirname(tabique_bin), "e2e-vsock")
    root = build_vsockcat(work)
    # Only the file: /bin is the default guest's, and must stay as it is.
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"],
                          input=b"bin/vsockcat\n", cwd=root, capture_output=True,
                          check=True).stdout
    with open(default_guest["initrd"], "rb") as f:
        base = f.read()
    combined = os.path.join(work, "initrd-vsock.img")
    with open(combined, "wb") as f:
        # Zeros between archives are skipped by the kernel; keep the second aligned.
        f.write(base + b"\0" * (-len(base) % 512) + gzip.compress(cpio))
    return dict(default_guest, initrd=combined)


@pytest.fixture
def peer(host):
    """vsock_peer.py in the background of the nested host's shell."""
    script = os.path.join(HERE, "vsock_peer.py")
    host.check(f"rm -f {SOCK} {SOCK}_6000 {PEER_LOG}")
    host.check(f"/usr/bin/python3 {script} {SOCK} 5000 6000 300 >{PEER_LOG} 2>&1 & "
               f"echo $! >/tmp/vsock-peer.pid")
    yield
    host.run("kill $(cat /tmp/vsock-peer.pid) 2>/dev/null; true", timeout=30)


def peer_log(host):
    out, _ = host.run(f"cat {PEER_LOG}", timeout=30)
    return out


def test_vsock_both_ways(host, tabique_bin, vsock_guest, peer):
    argv = tabique_run_argv(tabique_bin, vsock_guest, 1, "512M",
                            ["--vsock", f"cid={CID},socket={SOCK}"])
    vm = InnerVM(host, argv).start()
    vm.wait_ready()

    out, status = vm.shell("cat /sys/bus/virtio/devices/*/device | grep -c 0x0013")
    assert status == 0, f"no virtio socket device in the guest: {out!r}"

    # guest -> host: through /tmp/vm.sock_6000 to the peer, and its answer back.
    out, status = vm.shell("echo hello-from-guest | vsockcat connect 2 6000", timeout=120)
    assert status == 0, out
    assert "host got: hello-from-guest" in out, out

    # A host port nobody listens on: the guest's connect is refused.
    out, status = vm.shell("vsockcat connect 2 7777 </dev/null", timeout=60)
    assert status != 0 and "vsockcat: connect" in out, out

    # host -> guest: the peer keeps trying CONNECT 5000 until this listens.
    out, status = vm.shell("vsockcat listen 5000", timeout=200)
    assert status == 0, f"{out}\npeer log:\n{peer_log(host)}"
    assert "hello-from-host" in out, out
    assert "accepted cid 2 port" in out, out

    # 1 MiB guest -> host: the peer reports the size and digest it received.
    out, status = vm.shell("head -c 1048576 /dev/urandom >/tmp/blob && sha256sum /tmp/blob && "
                           "vsockcat connect 2 6001 </tmp/blob", timeout=300)
    assert status == 0, f"{out}\npeer log:\n{peer_log(host)}"
    sent = out.split()[0]
    assert f"got 1048576 bytes sha256 {sent}" in out, out

    # 1 MiB host -> guest, echoed back to the peer at the same time.
    out, status = vm.shell("vsockcat listen 5001 | sha256sum", timeout=300)
    assert status == 0, f"{out}\npeer log:\n{peer_log(host)}"
    assert BULK_SHA in out, f"{out}\npeer log:\n{peer_log(host)}"

    vm.stop()
    assert vm.rc == 0, f"the guest did not power off cleanly: {vm.rc}"
    log = peer_log(host)
    assert "guest->host received b'hello-from-guest\\n'" in log, log
    assert "host->guest answer b'OK " in log, log
    assert "host->guest echo b'hello-from-host\\n'" in log, log
    assert "bulk echo 1048576 bytes, intact" in log, log
    out, _ = host.run(f"test -e {SOCK} && echo present || echo absent", timeout=30)
    assert out.strip().endswith("absent"), "the listening socket outlived tabique"
