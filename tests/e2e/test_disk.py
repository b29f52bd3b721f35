"""virtio-blk with the real Debian kernel: the guest sees the disks tabique
gives it, in order and at their sizes; what it writes survives a poweroff
and a new boot, with a clean file system; a readonly disk stays untouched.

The images live in the nested host's /tmp (a tmpfs: tabique's io_uring and
fallocate paths see a real file system there). ext4 is made and checked on
the nested host with the outer machine's e2fsprogs (its / is the outer /):
the default guest's busybox has no mkfs.ext4.  The tests run in file order
and build on each other: one image goes through all of them."""

import re

import pytest

from conftest import InnerVM, tabique_run_argv

D1, D2 = "/tmp/tabique-e2e-d1.img", "/tmp/tabique-e2e-d2.img"
D1_BYTES = 64 << 20
D2_BYTES = (16 << 20) + 512  # an odd number of sectors: 32769
SERIAL = "tabique-e2e-d1"


def number_line(out):
    found = re.findall(r"^\s*(\d+)\s*$", out, re.M)
    assert found, f"no number in guest output {out!r}"
    return int(found[-1])


def checksum(out):
    m = re.search(r"\b([0-9a-f]{64})\b", out)
    assert m, f"no sha256 in {out!r}"
    return m.group(1)


def guest_ok(vm, cmd, timeout=120):
    out, status = vm.shell(cmd, timeout)
    assert status == 0, f"guest `{cmd}` exited {status}: {out!r}"
    return out


def boot(host, tabique_bin, default_guest, *disks):
    extra = []
    for d in disks:
        extra += ["--disk", d]
    vm = InnerVM(host, tabique_run_argv(tabique_bin, default_guest, 1, "512M", extra))
    vm.start()
    vm.wait_ready()
    return vm


def poweroff(vm):
    vm.send("poweroff\n")
    rc = vm.wait_exit(120)
    assert rc == 0, f"tabique exited {rc}; stderr: {vm.stderr()!r}"


@pytest.fixture(scope="module")
def state():
    """What one test leaves for the next."""
    return {}


@pytest.fixture(scope="module")
def images(nested_host):
    """The two disk images on the nested host: made again with the host when
    a test reruns from scratch (see conftest.py)."""
    nested_host.check(f"rm -f {D1} {D2} && truncate -s {D1_BYTES} {D1} && "
                      f"truncate -s {D2_BYTES} {D2} && mkfs.ext4 -q -F -L tabique {D1}",
                      timeout=120)
    yield
    if nested_host.alive:
        nested_host.run(f"rm -f {D1} {D2}")


def test_two_disks_in_order_with_sizes_and_serial(host, images, tabique_bin, default_guest,
                                                  state):
    vm = boot(host, tabique_bin, default_guest, f"{D1},serial={SERIAL}", D2)
    try:
        assert number_line(guest_ok(vm, "cat /sys/block/vda/size")) == D1_BYTES // 512
        assert number_line(guest_ok(vm, "cat /sys/block/vdb/size")) == D2_BYTES // 512
        assert SERIAL in guest_ok(vm, "cat /sys/block/vda/serial")
        assert number_line(guest_ok(vm, "cat /sys/block/vda/ro")) == 0
        # FLUSH offered: Linux runs the disk as a write-back cache and sends flushes.
        assert "write back" in guest_ok(vm, "cat /sys/block/vda/queue/write_cache")
        assert number_line(guest_ok(vm, "cat /sys/block/vda/queue/discard_max_bytes")) > 0
        state["booted"] = True
        # A file with a known checksum, on ext4, then discards through fstrim.
        guest_ok(vm, "mkdir -p /mnt && mount -t ext4 /dev/vda /mnt")
        guest_ok(vm, "dd if=/dev/urandom of=/mnt/data bs=64k count=64 2>/dev/null")
        state["sum"] = checksum(guest_ok(vm, "sha256sum /mnt/data"))
        guest_ok(vm, "dd if=/dev/urandom of=/mnt/junk bs=64k count=32 2>/dev/null && sync"
                 " && rm /mnt/junk && sync && fstrim /mnt")
        guest_ok(vm, "umount /mnt")
        # Raw I/O on the second disk: write, discard, read back.
        guest_ok(vm, "dd if=/dev/urandom of=/tmp/blob bs=4k count=256 2>/dev/null")
        blob = checksum(guest_ok(vm, "sha256sum /tmp/blob"))
        guest_ok(vm, "dd if=/tmp/blob of=/dev/vdb bs=4k conv=fsync 2>/dev/null")
        guest_ok(vm, "echo 3 > /proc/sys/vm/drop_caches")
        back = guest_ok(vm, "dd if=/dev/vdb bs=4k count=256 2>/dev/null | sha256sum")
        assert checksum(back) == blob
        guest_ok(vm, "blkdiscard /dev/vdb")
        poweroff(vm)
    finally:
        vm.stop()
    state["vdb"] = blob


def test_data_reached_the_image_and_fsck_is_clean(host, state):
    if "sum" not in state:
        pytest.skip("needs the writes of the test before")
    out, status = host.run(f"fsck.ext4 -n -f {D1}", timeout=120)
    assert status == 0, f"fsck.ext4 -n -f exited {status}:\n{out}"
    # The second disk was written raw, then discarded: what fallocate left is zeroes.
    out, status = host.run(f"cmp -n 1048576 {D2} /dev/zero")
    assert status == 0, f"discarded sectors still hold data: {out!r}"


def test_data_survives_a_new_boot_readonly(host, tabique_bin, default_guest, state):
    if "sum" not in state:
        pytest.skip("needs the writes of the tests before")
    before = checksum(host.check(f"sha256sum {D1}", timeout=120))
    vm = boot(host, tabique_bin, default_guest, f"{D1},readonly")
    try:
        assert number_line(guest_ok(vm, "cat /sys/block/vda/ro")) == 1
        guest_ok(vm, "mkdir -p /mnt && mount -t ext4 -o ro /dev/vda /mnt")
        assert checksum(guest_ok(vm, "sha256sum /mnt/data")) == state["sum"]
        guest_ok(vm, "umount /mnt")
        out, status = vm.shell("dd if=/dev/zero of=/dev/vda bs=512 count=1 conv=fsync")
        assert status != 0, f"a write to a readonly disk succeeded: {out!r}"
        assert re.search(r"Read-only|I/O error|not permitted|Permission denied", out), out
        poweroff(vm)
    finally:
        vm.stop()
    after = checksum(host.check(f"sha256sum {D1}", timeout=120))
    assert after == before, "the readonly boot changed the image"


# --- qcow2 both ways with QEMU's own tools --------------------------------------

Q = "/tmp/tabique-e2e-qemu.qcow2"
QB = "/tmp/tabique-e2e-qemu-base.qcow2"


def test_a_qemu_img_image_with_a_backing_file_runs_in_tabique(host, tabique_bin, default_guest):
    """qemu-img makes a base and an overlay, qemu-io writes into each; the guest
    sees both patterns through tabique's qcow2 and its backing chain, and what it
    writes passes `qemu-img check` and reads back with qemu-io."""
    host.check(f"rm -f {Q} {QB} && qemu-img create -q -f qcow2 {QB} 32M && "
               f"qemu-io -f qcow2 -c 'write -P 0x41 0 64k' {QB} >/dev/null && "
               f"qemu-img create -q -f qcow2 -b {QB} -F qcow2 {Q} && "
               f"qemu-io -f qcow2 -c 'write -P 0x42 1M 64k' {Q} >/dev/null", timeout=120)
    vm = boot(host, tabique_bin, default_guest, f"{Q},format=qcow2")
    size = number_line(guest_ok(vm, "cat /sys/block/vda/size"))
    assert size * 512 == 32 << 20
    out = guest_ok(vm, "dd if=/dev/vda bs=4 count=1 2>/dev/null; echo; "
                       "dd if=/dev/vda bs=4 count=1 skip=262144 2>/dev/null; echo")
    assert "AAAA" in out and "BBBB" in out, out
    guest_ok(vm, "printf 'CCCCCCCC' | dd of=/dev/vda bs=512 seek=8192 conv=notrunc "
                 "2>/dev/null; sync")
    poweroff(vm)
    out, status = host.run(f"qemu-img check {Q}", timeout=120)
    assert status == 0 and "No errors" in out, out
    out = host.check(f"qemu-io -f qcow2 -c 'read -P 0x43 4M 8' -c 'read -P 0x41 0 64k' "
                     f"-c 'read -P 0x42 1M 64k' {Q}", timeout=120)
    assert "verification failed" not in out, out
    host.check(f"qemu-io -f qcow2 -c 'read -P 0x41 0 64k' -c 'read -P 0 1M 64k' {QB}")
    host.run(f"rm -f {Q} {QB}")
