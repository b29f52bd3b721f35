"""qcow2 disks under the real Debian kernel: ext4 on a qcow2 image with 4 KiB
clusters (allocations across many L2 tables and refcount blocks, discards
through fstrim, flushes), then an overlay on it as a backing file. What the
guest wrote passes `qemu-img check`, converts back to a raw image that
`fsck.ext4` finds clean, and the backing file is never written.

The images live in the nested host's /tmp (a tmpfs); ext4 is made there with
the outer machine's e2fsprogs, on a raw image that `tabique disk convert`
turns into qcow2."""

import re

from conftest import InnerVM, tabique_run_argv

Q = "/tmp/tabique-e2e-q.qcow2"
O = "/tmp/tabique-e2e-q-overlay.qcow2"
R = "/tmp/tabique-e2e-q.raw"


def checksum(out):
    m = re.search(r"\b([0-9a-f]{64})\b", out)
    assert m, f"no sha256 in {out!r}"
    return m.group(1)


def guest_ok(vm, cmd, timeout=120):
    out, status = vm.shell(cmd, timeout)
    assert status == 0, f"guest `{cmd}` exited {status}: {out!r}"
    return out


def boot(host, tabique_bin, default_guest, disk):
    vm = InnerVM(host, tabique_run_argv(tabique_bin, default_guest, 1, "512M",
                                        ["--disk", disk]))
    vm.start()
    vm.wait_ready()
    return vm


def poweroff(vm):
    vm.send("poweroff\n")
    rc = vm.wait_exit(120)
    assert rc == 0, f"tabique exited {rc}; stderr: {vm.stderr()!r}"


def qemu_img_check(host, path):
    out, status = host.run(f"qemu-img check {path}", timeout=120)
    assert status == 0 and "No errors" in out, out


def fsck_clean(host, tabique_bin, path):
    host.check(f"rm -f {R} && {tabique_bin} disk convert {path} {R} --format raw >/dev/null",
               timeout=120)
    out, status = host.run(f"fsck.ext4 -n -f {R}", timeout=120)
    assert status == 0, f"fsck.ext4 -n -f exited {status}:\n{out}"


def test_ext4_on_a_qcow2_image(host, tabique_bin, default_guest):
    host.check(f"rm -f {Q} {O} {R} && truncate -s 64M {R} && mkfs.ext4 -q -F {R} && "
               f"{tabique_bin} disk convert {R} {Q} --cluster-size 4K >/dev/null", timeout=120)
    vm = boot(host, tabique_bin, default_guest, f"{Q},format=qcow2")
    try:
        guest_ok(vm, "mkdir -p /mnt && mount -t ext4 /dev/vda /mnt")
        guest_ok(vm, "dd if=/dev/urandom of=/mnt/data bs=64k count=160 2>/dev/null")
        data = checksum(guest_ok(vm, "sha256sum /mnt/data"))
        guest_ok(vm, "dd if=/dev/urandom of=/mnt/junk bs=64k count=96 2>/dev/null && sync"
                     " && rm /mnt/junk && sync && fstrim /mnt")
        # Read back from the disk, not from the page cache.
        guest_ok(vm, "umount /mnt && echo 3 > /proc/sys/vm/drop_caches && "
                     "mount -t ext4 /dev/vda /mnt")
        assert checksum(guest_ok(vm, "sha256sum /mnt/data")) == data
        guest_ok(vm, "umount /mnt")
        poweroff(vm)
    finally:
        vm.stop()
    qemu_img_check(host, Q)
    fsck_clean(host, tabique_bin, Q)

    # An overlay: the guest writes it; the base stays as it was.
    base = checksum(host.check(f"sha256sum {Q}", timeout=120))
    host.check(f"{tabique_bin} disk create {O} --backing {Q} >/dev/null")
    vm = boot(host, tabique_bin, default_guest, f"{O},format=qcow2")
    try:
        guest_ok(vm, "mkdir -p /mnt && mount -t ext4 /dev/vda /mnt")
        assert checksum(guest_ok(vm, "sha256sum /mnt/data")) == data
        guest_ok(vm, "dd if=/dev/urandom of=/mnt/more bs=64k count=32 2>/dev/null && "
                     "rm /mnt/data && sync && fstrim /mnt && umount /mnt")
        poweroff(vm)
    finally:
        vm.stop()
    assert checksum(host.check(f"sha256sum {Q}", timeout=120)) == base, "the base was written"
    qemu_img_check(host, O)
    fsck_clean(host, tabique_bin, O)
    host.run(f"rm -f {Q} {O} {R}")
