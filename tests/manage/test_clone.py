"""tabique clone: what each kind of clone leaves on disk, checked with
qemu-img and qemu-io (the guest's view of a linked clone is in
tests/e2e/test_manage.py)."""

import json
import os
import subprocess
import time

import pytest


def qemu_img_info(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def qemu_io(path, fmt, command):
    res = subprocess.run(["qemu-io", "-f", fmt, "-c", command, path],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "Pattern verification failed" not in res.stdout, \
        res.stdout + res.stderr
    return res.stdout


def disk_of(store, name, i=0):
    return store.info(name)["disks"][i]["path"]


def test_linked_clone_of_a_big_disk_is_instant(store, tiny):
    store.create_tiny("src", tiny["halt"], "--new-disk", "100G", "--net", "user")
    base = disk_of(store, "src")
    qemu_io(base, "qcow2", "write -P 0x5a 0 1M")
    begin = time.monotonic()
    out = store.run("clone", "src", "dst", "--linked").stdout
    elapsed = time.monotonic() - begin
    assert "cloned src to dst (linked)" in out
    assert elapsed < 1.0, f"a linked clone of a 100G disk took {elapsed:.2f} s"
    src_disk, dst_disk = disk_of(store, "src"), disk_of(store, "dst")
    assert src_disk != base and dst_disk != base
    for overlay in (src_disk, dst_disk):
        info = qemu_img_info(overlay)
        assert info["format"] == "qcow2" and info["virtual-size"] == 100 << 30
        assert info["full-backing-filename"] == base
        qemu_io(overlay, "qcow2", "read -P 0x5a 0 1M")
    # Each side's writes stay its own; the base does not change.
    qemu_io(dst_disk, "qcow2", "write -P 0xd5 0 4k")
    qemu_io(src_disk, "qcow2", "read -P 0x5a 0 4k")
    qemu_io(base, "qcow2", "read -P 0x5a 0 4k")
    assert not os.access(base, os.W_OK) or os.geteuid() == 0
    assert oct(os.stat(base).st_mode & 0o777) == "0o400"
    # New MACs for the clone.
    src_net, dst_net = store.info("src")["nets"][0], store.info("dst")["nets"][0]
    assert src_net.split("mac=")[1] != dst_net.split("mac=")[1]


def test_the_source_of_a_linked_clone_stays_until_the_clone_goes(store, tiny):
    store.create_tiny("src", tiny["halt"], "--new-disk", "64M")
    store.run("clone", "src", "dst", "--linked")
    res = store.run("rm", "src", check=False)
    assert res.returncode == 1 and "'dst' is a linked clone of 'src'" in res.stderr
    assert "src" in store.list()
    store.run("rm", "dst")
    store.run("rm", "src")
    assert store.list() == {}


def test_full_clone_copies_and_flattens(store, tiny):
    store.create_tiny("src", tiny["halt"], "--new-disk", "64M")
    store.run("clone", "src", "mid", "--linked")
    qemu_io(disk_of(store, "mid"), "qcow2", "write -P 0x11 1M 64k")
    store.run("clone", "mid", "copy", "--full")
    copy = disk_of(store, "copy")
    assert os.path.dirname(copy) == store.folder("copy")
    info = qemu_img_info(copy)
    assert "backing-filename" not in info  # flattened: stands alone
    subprocess.run(["qemu-img", "check", copy], check=True, capture_output=True)
    subprocess.run(["qemu-img", "compare", "-U", disk_of(store, "mid"), copy], check=True,
                   capture_output=True)
    store.run("rm", "mid")  # a full copy does not depend on its source
    qemu_io(copy, "qcow2", "read -P 0x11 1M 64k")


def test_a_linked_clone_boots(store, tiny):
    store.create_tiny("src", tiny["halt"], "--new-disk", "64M")
    store.run("clone", "src", "dst", "--linked")
    store.run("start", "dst")
    store.wait_console_log("dst", "tiny guest ready")
    devices = store.info("dst")["devices"]
    vda = [d for d in devices if d["id"] == "vda"][0]
    assert vda["path"] == disk_of(store, "dst")
    store.run("kill", "dst")


@pytest.mark.parametrize("args,why", [
    (["src"], "SRC and DST"),
    (["ghost", "x"], "no VM named 'ghost'"),
    (["src", "../x"], "must start with a letter"),
    (["src", "src"], "already exists"),
])
def test_bad_clones(store, tiny, args, why):
    store.create_tiny("src", tiny["halt"])
    res = store.run("clone", *args, check=False)
    assert res.returncode in (1, 2) and why in res.stderr
    assert sorted(store.list()) == ["src"]


def test_cloning_a_running_vm_is_refused(store, tiny):
    store.create_tiny("src", tiny["halt"])
    store.run("start", "src")
    res = store.run("clone", "src", "dst", check=False)
    assert res.returncode == 1 and "stop it before cloning" in res.stderr
    assert "dst" not in store.list()
